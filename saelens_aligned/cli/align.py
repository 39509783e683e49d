"""`saelens-aligned align <sae>`: convert a stock SAE into its aligned variant.

Heavy imports happen in `run`, so `saelens-aligned --help` stays fast.
"""

import argparse
import json
import sys


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Convert a stock SAELens SAE into its aligned variant (a_i = <e_i, d_i> = 1): "
        "project the encoder (keeping the decoder), fine-tune on the model's "
        "activations, and report stock / converted / fine-tuned core metrics and "
        "alignment histograms."
    )
    parser.add_argument(
        "source",
        help="SAELens SAE directory, local folder in HF release layout, release "
        "name, or Hugging Face repo id.",
    )
    parser.add_argument(
        "--sae-id", default=None, help="SAE within a folder/release/repo."
    )
    parser.add_argument(
        "--dataset",
        nargs="+",
        required=True,
        help="Local .jsonl/.json/.txt files, or one Hugging Face dataset path.",
    )
    parser.add_argument("--output-dir", default="align_output")
    parser.add_argument(
        "--alignment",
        choices=["projected", "tied"],
        default="projected",
        help="projected (default): keep the decoder, move each encoder column "
        "along its decoder direction. tied: re-derive the decoder from the encoder.",
    )
    parser.add_argument(
        "--architecture",
        default=None,
        help="Aligned architecture to convert into (default: aligned_<own base>).",
    )
    parser.add_argument(
        "--model",
        dest="model_name",
        default=None,
        help="Model name or local dir (default: the SAE's metadata, else the "
        "embedded SmolLM2-135M-Instruct).",
    )
    parser.add_argument("--model-class-name", default=None)
    parser.add_argument("--hook-name", default=None)
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--context-size", type=int, default=128)
    parser.add_argument(
        "--tokens",
        dest="training_tokens",
        type=int,
        default=200_000,
        help="Fine-tuning token budget (0: projection only).",
    )
    parser.add_argument("--train-batch-size-tokens", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument(
        "--eval-batches",
        type=int,
        default=16,
        help="Batches for explained variance, L0, dead fraction.",
    )
    parser.add_argument(
        "--eval-ce-batches",
        type=int,
        default=4,
        help="Batches for the CE-loss score (3 full forward passes each).",
    )
    parser.add_argument("--eval-batch-size-prompts", type=int, default=8)
    parser.add_argument("--eval-fraction", type=float, default=0.1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--set",
        dest="training_overrides",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Training-config field of the aligned SAE, e.g. --set l1_coefficient=5.",
    )


def run(args: argparse.Namespace) -> None:
    import datasets

    from saelens_aligned.apps.align import format_report, run_align
    from saelens_aligned.apps.align_inputs import AlignConfig

    # datasets' torch formatter imports a torchvision API that no longer exists.
    datasets.config.TORCHVISION_AVAILABLE = False
    options = vars(args).copy()
    options.pop("command", None)
    options["training_overrides"] = dict(options["training_overrides"])
    report = run_align(AlignConfig(**options))
    sys.stdout.write(format_report(report))
    sys.stdout.write(
        f"\nWrote {args.output_dir}/report.json, report.md, alignment_histograms.png\n"
    )
