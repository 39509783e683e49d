"""`python -m benchmarks COMMAND`: sweep, report, eval, perf, sparse-perf, curves,
corpus, scale-estimate, results."""

import argparse
import importlib
import sys

COMMANDS = {
    "sweep": (
        "benchmarks.sweeps.sweep",
        "Train and evaluate a sweep of SAEs (resumable).",
    ),
    "report": (
        "benchmarks.reports.report",
        "Re-render a sweep's report from its records.",
    ),
    "eval": (
        "benchmarks.sweeps.eval_saes",
        "Evaluate existing SAE folders (any SAELens SAE).",
    ),
    "perf": (
        "benchmarks.perf.aligned_cost",
        "Step-time, memory and roofline of aligned vs base.",
    ),
    "sparse-perf": (
        "benchmarks.perf.sparse_step",
        "Step time and memory of the sparse TopK step vs SAELens' own steps.",
    ),
    "curves": (
        "benchmarks.reports.curves",
        "Learning curves and aligned-vs-control gaps of a checkpointed sweep.",
    ),
    "corpus": (
        "benchmarks.corpora.manifest",
        "Build and measure the packaged-english corpus; write docs/corpora.md.",
    ),
    "scale-estimate": (
        "benchmarks.perf.scale_estimate",
        "Estimated wall time of each step of the dictionary-size study.",
    ),
    "results": (
        "benchmarks.reports.published",
        "Regenerate the results blocks of README.md and docs/results.md.",
    ),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (they import torch & co).
        if argv and argv[0] == name:
            importlib.import_module(module).add_arguments(command_parser)
    args = parser.parse_args(argv)
    from saelens_aligned.errors import exit_on_input_error

    # Bad input (saelens_aligned.errors.InputError) ends any command with one
    # `python -m benchmarks COMMAND: error: ...` line and exit status 2.
    with exit_on_input_error(f"python -m benchmarks {args.command}"):
        importlib.import_module(COMMANDS[args.command][0]).main(args)


if __name__ == "__main__":
    main()
