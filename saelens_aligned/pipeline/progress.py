"""Progress lines for long pipeline stages."""

import sys

from tqdm.auto import tqdm


def say(message: str) -> None:
    """A progress line on stderr that does not break tqdm bars."""
    tqdm.write(message, file=sys.stderr)
