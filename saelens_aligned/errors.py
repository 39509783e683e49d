"""Bad input to a command: one exception family, reported in one line.

A check that runs before expensive work raises an `InputError` (or one of its
subclasses: `sae_config.ConfigError`, `pipeline.source.SourceError`, the demo's,
align's and the benchmark commands' own) whose message names the field and the
fix. Every command line runs inside `exit_on_input_error`, which prints
`<prog>: error: <message>` as one line on stderr and exits with status 2, the
status argparse gives a usage error, with no traceback.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

# argparse's exit status for a usage error; every command uses it for bad input.
INPUT_ERROR_STATUS = 2


class InputError(ValueError):
    """An input of a command is unusable; the message names it and the fix."""


def one_line(message: object) -> str:
    """`message` with its whitespace (newlines included) collapsed."""
    return " ".join(str(message).split())


@contextmanager
def exit_on_input_error(prog: str) -> Iterator[None]:
    """Run the body; an `InputError` becomes `prog: error: ...` and exit status 2."""
    try:
        yield
    except InputError as e:
        sys.stderr.write(f"{prog}: error: {one_line(e)}\n")
        raise SystemExit(INPUT_ERROR_STATUS) from None
