"""Train a stock (non-aligned) SAELens SAE on the embedded default model.

It gives `saelens-aligned align` something to convert when no pretrained SAE is
at hand, fully offline:

    python -m benchmarks.experiments.stock_sae --corpus docs.jsonl --output-dir runs/stock
    saelens-aligned align runs/stock --dataset docs.jsonl --output-dir runs/align

`--corpus` is written first (docstrings of the Python standard library, real
English text every machine has) when the file does not exist. The stock SAE is
trained only on the rows `align` uses for training (the pipeline's fixed-seed
split of the dataset), so the evaluation rows are new to both.
"""

import argparse
import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path

from saelens_aligned.io.files import write_text_atomic


def stdlib_docstring_corpus(path: str | Path, min_chars: int = 200) -> Path:
    """One JSONL row per docstring (>= min_chars) of every importable stdlib module."""
    rows: list[str] = []
    seen: set[str] = set()
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in {"antigravity", "this", "idlelib"}:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # platform-specific or optional modules
            continue
        for obj in [module, *(o for _, o in inspect.getmembers(module))]:
            if obj is not module and not (
                inspect.isclass(obj) or inspect.isroutine(obj)
            ):
                continue
            if obj is not module and getattr(obj, "__module__", None) != name:
                continue
            doc = inspect.getdoc(obj)
            if doc and len(doc) >= min_chars and doc not in seen:
                seen.add(doc)
                rows.append(json.dumps({"text": doc}))
    return write_text_atomic(path, "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="runs/stdlib_docstrings.jsonl")
    parser.add_argument("--output-dir", default="runs/stock_topk")
    parser.add_argument("--architecture", default="topk")
    parser.add_argument("--d-sae", type=int, default=1152)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--l1-coefficient", type=float, default=5.0)
    parser.add_argument("--hook-name", default="model.layers.3")
    parser.add_argument("--context-size", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=150_000)
    parser.add_argument("--train-batch-size-tokens", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from saelens_aligned.pipeline.models import hook_width
    from saelens_aligned.pipeline.source import (
        Source,
        load_source_model,
        resolve_source,
    )
    from saelens_aligned.pipeline.training import TrainingSettings, train_sae
    from saelens_aligned.sae_config import build_sae_config

    if not Path(args.corpus).exists():
        stdlib_docstring_corpus(args.corpus)
    # The same held-out split `saelens-aligned align` evaluates on.
    resolved = resolve_source(
        Source(
            dataset=args.corpus,
            hook=args.hook_name,
            context_size=args.context_size,
            eval_fraction=args.eval_fraction,
        )
    )
    model = load_source_model(resolved)
    sae_cfg = build_sae_config(
        args.architecture,
        hook_width(model, args.hook_name),
        args.d_sae,
        shared={"k": args.k, "l1_coefficient": args.l1_coefficient},
    )
    settings = TrainingSettings(
        training_tokens=args.tokens,
        train_batch_size_tokens=args.train_batch_size_tokens,
        lr=args.lr,
        seed=args.seed,
        model_batch_size=8,
    )
    train_sae(resolved, sae_cfg, settings, model, Path(args.output_dir))
    print(f"Stock {args.architecture} SAE written to {args.output_dir}")


if __name__ == "__main__":
    main()
