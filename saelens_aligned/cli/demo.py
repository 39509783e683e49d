"""`saelens-aligned demo`: an aligned SAE against its base and its fair control on a
real LM, offline.

With no flags it uses the embedded SmolLM2-135M-Instruct and the Python standard
library's source as text, and finished in 11-12 minutes on two busy CPU cores.
"""

import argparse
import sys
from dataclasses import fields

from saelens_aligned.apps.demo import DEFAULT_OUTPUT_DIR, DemoConfig
from saelens_aligned.pipeline.models import MODEL_CLASSES

# flag -> (config field, help). Defaults come from DemoConfig.
FLAGS: dict[str, tuple[str, str]] = {
    "--model": (
        "model",
        "Local model directory or Hugging Face model name "
        "(default: the embedded SmolLM2-135M-Instruct).",
    ),
    "--model-class": (
        "model_class",
        f"How SAELens loads --model: {' or '.join(MODEL_CLASSES)}.",
    ),
    "--dataset": (
        "dataset",
        "Local .txt/.md/.jsonl files or folders, comma-separated, "
        "or a Hugging Face dataset path when online (default: the Python "
        "standard library's source).",
    ),
    "--hook": (
        "hook",
        "Hook whose activations the SAEs learn (module path for "
        "AutoModelForCausalLM, e.g. model.layers.3).",
    ),
    "--architecture": ("architecture", "The aligned architecture to train."),
    "--baseline": (
        "baseline",
        "The architecture it is compared with (default: its base, "
        "e.g. topk for aligned_topk).",
    ),
    "--k": ("k", "Active latents per token for TopK-family SAEs (same for every SAE)."),
    "--l1-coefficient": ("l1_coefficient", "L1 coefficient for ReLU+L1 SAEs."),
    "--d-sae": ("d_sae", "Number of SAE latents."),
    "--context-size": ("context_size", "Tokens per sequence."),
    "--training-tokens": ("training_tokens", "Tokens cached once and trained on."),
    "--train-batch-size-tokens": (
        "train_batch_size_tokens",
        "Tokens per optimizer step.",
    ),
    "--lr": ("lr", "Learning rate."),
    "--seed": ("seed", "Seed of SAE initialisation and activation shuffling."),
    "--model-batch-size": (
        "model_batch_size",
        "Prompts per model forward pass when caching.",
    ),
    "--eval-batch-size-prompts": (
        "eval_batch_size_prompts",
        "Prompts per forward pass in the eval.",
    ),
    "--eval-reconstruction-batches": (
        "eval_reconstruction_batches",
        "Batches for the CE-loss and KL scores.",
    ),
    "--eval-sparsity-variance-batches": (
        "eval_sparsity_variance_batches",
        "Batches for L0, variance and densities.",
    ),
    "--pretrained": (
        "pretrained",
        "Explore a released SAE instead of training three: RELEASE/SAE_ID, e.g. "
        "smollm2-135m-instruct-res-aligned-topk-8x/layer_3 (shipped with the "
        "package; evaluated on held-out text at its own hook, in about a minute).",
    ),
    "--device": ("device", "Device for the model and SAEs: cpu, cuda, mps."),
    "--output": ("output_dir", "Report folder."),
    "--cache-dir": (
        "cache_dir",
        "Cache for the converted model and the corpus (default "
        "$SAELENS_ALIGNED_CACHE, else $XDG_CACHE_HOME/saelens-aligned).",
    ),
    "--activations-dir": (
        "activations_dir",
        "Where activation caches live (default <cache dir>/activations).",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoConfig()
    types = {f.name: f.type for f in fields(DemoConfig)}
    for flag, (name, help_text) in FLAGS.items():
        default = getattr(defaults, name)
        kind = types[name] if types[name] in (int, float) else str
        shown = DEFAULT_OUTPUT_DIR if name == "output_dir" else default
        suffix = f" (default: {shown})" if shown is not None else ""
        parser.add_argument(
            flag, dest=name, type=kind, default=default, help=help_text + suffix
        )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace an output folder that holds a different run.",
    )


def run(args: argparse.Namespace) -> None:
    from sae_lens.training._interruption import InterruptedException

    from saelens_aligned.apps.demo import DemoInputError, run_demo
    from saelens_aligned.apps.report import SUMMARY_FILENAME

    config = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig)})
    try:
        result = run_demo(config)
    except DemoInputError as e:
        sys.stderr.write(f"saelens-aligned demo: error: {e}\n")
        raise SystemExit(2) from e
    except (KeyboardInterrupt, InterruptedException) as e:
        sys.stderr.write(
            "\nInterrupted. A completed activation cache is kept and reused when "
            "you rerun the same command.\n"
        )
        raise SystemExit(130) from e
    names = list(result.results)
    ev = [result.results[n]["metrics"]["explained_variance"] for n in names]
    sys.stdout.write(
        f"Done in {result.seconds / 60:.1f} min: explained variance (about the "
        "mean) "
        + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, ev))
        + f". Report: {result.output_dir / SUMMARY_FILENAME}\n"
    )
