"""`python -m benchmarks COMMAND`: perf (and, as they land, sweep / report / eval)."""

import argparse
import importlib

COMMANDS = {
    "perf": ("benchmarks.perf", "Step-time, memory and roofline of aligned vs base."),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        importlib.import_module(module).add_arguments(
            sub.add_parser(name, help=help_text, description=help_text)
        )
    args = parser.parse_args()
    importlib.import_module(COMMANDS[args.command][0]).main(args)


if __name__ == "__main__":
    main()
