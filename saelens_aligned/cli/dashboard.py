"""`saelens-aligned dashboard SAE [SAE ...]`: offline feature pages (SAEDashboard)
and, for SAEs on one hook, a page comparing them feature by feature.

Heavy imports happen in `run`, so `saelens-aligned --help` stays fast.
"""

import argparse
import sys

from saelens_aligned.dashboards.config import DashboardConfig


def _ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated latent indices, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DashboardConfig(saes=())
    parser.add_argument(
        "saes",
        nargs="+",
        metavar="SAE",
        help="SAELens SAE folder, RELEASE/SAE_ID (e.g. "
        "smollm2-135m-instruct-res-aligned-topk-8x/layer_3), or Hugging Face repo "
        "id. The first SAE on a hook is the one the others on it are compared with.",
    )
    parser.add_argument(
        "--features",
        type=int,
        default=defaults.features,
        help="Features of the first SAE with pages (its first N latents); the "
        "other SAEs get pages for their partners of those.",
    )
    parser.add_argument(
        "--feature-ids",
        type=_ids,
        default=None,
        help="The first SAE's features to show, e.g. 3,17,42 (instead of 0..N-1).",
    )
    parser.add_argument("--out", default=defaults.out, help="Output folder.")
    parser.add_argument(
        "--model",
        default=None,
        help="Local model directory (default: the embedded SmolLM2-135M-Instruct).",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="Text whose held-out part is read: local .txt/.md/.jsonl files or "
        "folders, comma-separated, or a named corpus (default: the Python "
        "standard library's source).",
    )
    parser.add_argument("--text-column", default=defaults.text_column)
    parser.add_argument(
        "--tokens", type=int, default=defaults.tokens, help="Tokens read."
    )
    parser.add_argument("--context-size", type=int, default=defaults.context_size)
    parser.add_argument(
        "--minibatch-size",
        type=int,
        default=defaults.minibatch_size,
        help="Sequences per model call.",
    )
    parser.add_argument("--device", default=defaults.device)


def run(args: argparse.Namespace) -> None:
    from saelens_aligned.dashboards.build import run_dashboard

    options = vars(args).copy()
    options.pop("command", None)
    options["saes"] = tuple(options["saes"])
    result = run_dashboard(DashboardConfig(**options))
    sys.stdout.write(
        f"Wrote {result.overview} and {len(result.pages)} feature pages "
        f"({', '.join(p.name for p in result.pages.values())}) in "
        f"{result.seconds['total']:.0f} s\n"
    )
