"""Every file this package writes appears under its final name only when complete.

It is written to a temporary sibling, flushed to disk, and moved into place with
`os.replace` (atomic within one filesystem). A write that fails or is interrupted
leaves the previous version, or nothing, under the final name. Directories are
swapped whole (`replace_dir`, `atomic_dir`): the one way this project replaces a
directory.
"""

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` (same suffix) for the block to write; it
    replaces `path` only if the block succeeds, and is deleted otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; use normal perms
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary sibling directory for the block to fill; it takes the place
    of `path` only if the block succeeds, and is deleted otherwise. An existing
    `path` is moved aside first and deleted after the swap, so `path` holds
    either the old or the new complete directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    )
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                _fsync_file(file)
        os.chmod(tmp, 0o777 & ~_umask())
        replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, path: Path) -> None:
    """Rename the complete directory `new` to `path`, replacing what is there: the
    old one is moved aside first and deleted only after the swap (put back if the
    swap fails), so `path` always holds a complete directory."""
    if not path.exists() and not path.is_symlink():
        os.replace(new, path)
        return
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary sibling."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, **json_kwargs: Any) -> Path:
    """`json.dump(obj)` to `path` through a temporary sibling: an object that
    fails to serialise halfway leaves `path` as it was."""
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        json.dump(obj, f, **json_kwargs)
        f.write("\n")
    return Path(path)


def save_figure_atomic(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """`fig.savefig(path)` through a temporary sibling; closes the figure."""
    import matplotlib.pyplot as plt

    # The format comes from the final name, not the temporary one.
    file_format = Path(path).suffix.lstrip(".") or plt.rcParams["savefig.format"]
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=file_format)
    finally:
        plt.close(fig)
    return Path(path)
