"""The `saelens-aligned` command: one subcommand per job.

Subcommands are small modules exposing `add_arguments(parser)` and `run(args)`;
`SUBCOMMANDS` maps each name to its module path so heavy imports (torch, models)
happen only for the command that runs. Bad input (`errors.InputError`) ends any
of them with one `saelens-aligned COMMAND: error: ...` line and exit status 2.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from saelens_aligned.errors import exit_on_input_error

# name -> (module, one-line help). `train` is special: it forwards raw arguments to
# SAELens' own parser, so it is dispatched before argparse sees them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "saelens_aligned.cli.train",
        "Train with SAELens' own CLI (every SAELens flag; aligned architectures added).",
    ),
    "demo": (
        "saelens_aligned.cli.demo",
        "Train an aligned SAE and its base side by side on a real LM (offline by "
        "default) and write a report.",
    ),
    "align": (
        "saelens_aligned.cli.align",
        "Convert a stock SAE into its aligned variant, fine-tune it, and report "
        "before/after metrics.",
    ),
    "dashboard": (
        "saelens_aligned.cli.dashboard",
        "Offline feature pages (SAEDashboard) for SAEs, and SAEs on one hook "
        "compared feature by feature.",
    ),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("saelens-aligned")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saelens-aligned",
        description="Aligned training of sparse autoencoders, as a SAELens plugin.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(
            name, help=help_text, description=help_text, add_help=name != "train"
        )
        if name != "train":
            importlib.import_module(module_name).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":
        from saelens_aligned.cli.train import main as train_main

        train_main(argv[1:])
        return
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        raise SystemExit(2)
    with exit_on_input_error(f"saelens-aligned {args.command}"):
        importlib.import_module(SUBCOMMANDS[args.command][0]).run(args)


if __name__ == "__main__":
    main()
