"""Evaluate SAEs that already exist: aligned or not, ours or stock SAELens ones.

    python -m benchmarks eval path/to/sae_dir [more dirs] --out DIR
    python -m benchmarks eval stock_sae/ --model ~/models/gpt2 --dataset data.txt

Each folder is a SAELens SAE folder (cfg.json + sae_weights.safetensors). Its
model, hook and context size come from its own cfg.json metadata unless given;
the evaluation is the sweep's (SAEBench core against the live model, meta_structure,
alignment scores), and each SAE gets a record in `DIR/records/` in the sweep's
layout, so `python -m benchmarks report DIR` draws them.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sae_lens.constants import SAE_CFG_FILENAME

from benchmarks.records.layout import record_path, write_json_atomic
from benchmarks.sweeps.config import EvalSettings
from benchmarks.sweeps.runs import RunSpec
from saelens_aligned.errors import InputError
from saelens_aligned.io.sae_dirs import check_sae_dir
from saelens_aligned.pipeline.models import EMBEDDED_WEIGHTS
from saelens_aligned.pipeline.source import Source, load_source_model, resolve_source
from saelens_aligned.pipeline.transformer_lens_view import hook_for_view


class EvalInputError(InputError):
    """An SAE folder or option is unusable; the message names it and the fix."""


def read_sae_cfg(sae_dir: Path) -> dict[str, Any]:
    """The folder's cfg.json, once `check_sae_dir` has found a parseable config
    and complete safetensors weights (a pickle-only folder is refused)."""
    try:
        check_sae_dir(sae_dir)
    except FileNotFoundError as e:
        raise EvalInputError(str(e)) from e
    return json.loads((sae_dir / SAE_CFG_FILENAME).read_text())


# Options that must be positive, and those that may be 0 (0 skips that part).
_POSITIVE = ("batch_size_prompts", "sparsity_variance_batches")
_NON_NEGATIVE = ("reconstruction_batches",)


def check_options(args: argparse.Namespace) -> None:
    """The options' checks, before any folder or model is read."""
    for name in (*_POSITIVE, *_NON_NEGATIVE):
        value = getattr(args, name)
        if value < 0 or (value == 0 and name in _POSITIVE):
            bound = "> 0" if name in _POSITIVE else ">= 0 (0 skips it)"
            flag = "--" + name.replace("_", "-")
            raise EvalInputError(f"{flag} {value}: must be {bound}.")
    if args.context_size is not None and args.context_size <= 0:
        raise EvalInputError(f"--context-size {args.context_size}: must be > 0.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EvalInputError(f"--out {str(out)!r} is a file; choose a folder.")


def run_spec_for(cfg: dict[str, Any]) -> RunSpec:
    """A run identity for an SAE that no sweep trained: its architecture (the
    training architecture when recorded), alignment form and sparsity knob."""
    metadata = cfg.get("metadata") or {}
    architecture = metadata.get("training_architecture") or cfg.get("architecture")
    details = metadata.get("training_architecture_details") or {}
    param, value = ("k", cfg["k"]) if "k" in cfg else ("none", 0.0)
    return RunSpec(
        architecture=str(architecture),
        alignment=details.get("alignment"),
        sparsity_param=param,
        sparsity_value=float(value),
        d_sae=int(cfg["d_sae"]),
        seed=0,
    )


def source_for(cfg: dict[str, Any], args: argparse.Namespace) -> Source:
    """The model, hook and text an SAE is evaluated on: given on the command line,
    else its cfg.json metadata, else the embedded model and corpus."""
    metadata = cfg.get("metadata") or {}
    embedded = not args.model and metadata.get("model_weights") == EMBEDDED_WEIGHTS
    # Trained on the embedded model (e.g. a packaged release): that model, local.
    model = None if embedded else args.model or metadata.get("model_name")
    hook = args.hook or metadata.get("hook_name")
    if not hook:
        raise EvalInputError(
            "The SAE's cfg.json records no hook_name; pass --hook (e.g. "
            "model.layers.3 or blocks.3.hook_resid_post)."
        )
    model_class = (
        args.model_class
        or (None if embedded else metadata.get("model_class_name"))
        # No model recorded means the embedded default, an AutoModelForCausalLM.
        or ("HookedTransformer" if model else "AutoModelForCausalLM")
    )
    return Source(
        model=model,
        model_class=model_class,
        hook=hook_for_view(hook, model_class),
        dataset=args.dataset,
        context_size=args.context_size or int(metadata.get("context_size") or 128),
        device=args.device,
    )


def evaluate_sae_dirs(args: argparse.Namespace) -> list[Path]:
    """Evaluate every folder in `args.sae_dirs`; returns the record paths."""
    from benchmarks.sweeps.backends.lm import lm_run_result
    from benchmarks.sweeps.run_records import build_record

    check_options(args)
    out_dir = Path(args.out)
    dirs = [Path(d).expanduser() for d in args.sae_dirs]
    cfgs = [read_sae_cfg(d) for d in dirs]  # every folder checked before any work
    settings = EvalSettings(
        batch_size_prompts=args.batch_size_prompts,
        n_eval_reconstruction_batches=args.reconstruction_batches,
        n_eval_sparsity_variance_batches=args.sparsity_variance_batches,
        meta_structure=not args.no_meta_structure,
    )
    sources = [source_for(cfg, args) for cfg in cfgs]
    resolved = {s: resolve_source(s) for s in set(sources)}  # all checked first
    models: dict[Source, Any] = {}
    written = []
    for sae_dir, cfg, source in zip(dirs, cfgs, sources):
        if source not in models:
            models[source] = load_source_model(resolved[source])
        run = run_spec_for(cfg)
        result = lm_run_result(
            sae_dir, models[source], resolved[source], settings, 0, sae_dir.name
        )
        sweep = {"name": "eval", **asdict(source), "eval": asdict(settings)}
        record = build_record(sweep, run, result, seconds=0.0)
        record["sae_lens_id"] = sae_dir.name
        record["eval_config"]["run"]["run_id"] = sae_dir.name
        record["eval_config"]["run"]["sae_dir"] = str(sae_dir.resolve())
        path = record_path(out_dir, sae_dir.name)
        write_json_atomic(path, record)
        print(f"{sae_dir}: record written to {path}", file=sys.stderr)
        written.append(path)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sae_dirs", nargs="+", help="SAELens SAE folders")
    parser.add_argument("--out", default="sae-evals", help="folder for the records")
    parser.add_argument("--model", default=None, help="model dir/name (default: cfg)")
    parser.add_argument("--model-class", default=None, help="default: from cfg.json")
    parser.add_argument("--hook", default=None, help="default: cfg.json's hook_name")
    parser.add_argument("--dataset", default=None, help="default: embedded corpus")
    parser.add_argument("--context-size", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size-prompts", type=int, default=4)
    parser.add_argument("--reconstruction-batches", type=int, default=2)
    parser.add_argument("--sparsity-variance-batches", type=int, default=16)
    parser.add_argument("--no-meta-structure", action="store_true")


def main(args: argparse.Namespace) -> None:
    evaluate_sae_dirs(args)
