"""Reading SAE directories safely, and writing every file atomically.

Reading: `load_sae_dir` checks a SAELens SAE directory before SAELens reads it:
cfg.json must exist and be JSON, and sae_weights.safetensors must be a complete
safetensors file. A truncated download or a half-copied file then fails with a
message that names the file and says how to recover, instead of safetensors'
"incomplete metadata, file not fully covered". Weights are only ever read with
safetensors: a pickle-based file (torch.save, .pt, .bin ...) can run arbitrary
code when loaded, so it is refused with a message that says how to convert it.

Writing: every file this package writes appears under its final name only when
complete. It is written to a temporary sibling, flushed to disk, and moved into
place with `os.replace` (atomic within one filesystem). A write that fails or is
interrupted leaves the previous version, or nothing, under the final name.
"""

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from sae_lens.saes.sae import SAE
from safetensors import SafetensorError, safe_open

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
PICKLE_PROTO = b"\x80"  # pickle protocol >= 2 starts PROTO <n>
PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")
RECOVERY_HINT = (
    "Re-download it (for a Hugging Face SAE: load_sae(..., force_download=True)), "
    "restore it from a backup or an earlier checkpoint, or retrain the SAE."
)

T_SAE = TypeVar("T_SAE", bound=SAE[Any])


class NotSafetensorsError(ValueError):
    """A weights file that is not safetensors; we never unpickle weights."""


class CorruptSAEError(ValueError):
    """A file of a saved SAE is damaged; the message names it and how to recover."""


class CorruptWeightsError(CorruptSAEError):
    """sae_weights.safetensors is truncated, empty or not safetensors at all."""


# ---------------------------------------------------------------------------
# Reading


def not_safetensors_error(path: Path, reason: str) -> NotSafetensorsError:
    """The refusal of a pickle-based (or otherwise non-safetensors) weights file."""
    return NotSafetensorsError(
        f"Refusing to load {path}: {reason}. saelens-aligned reads SAE weights only "
        "from safetensors files, because pickle-based files (.pt, .pth, .bin, .pkl, "
        ".ckpt) can execute arbitrary code when loaded. If you trust the file, "
        "convert it once: `from safetensors.torch import save_file; "
        "save_file(torch.load(path, weights_only=True), "
        f"'{SAE_WEIGHTS_FILENAME}')` next to a SAELens cfg.json."
    )


def check_safetensors(path: str | Path) -> Path:
    """`path`, once safetensors has read its header and checked that the file
    holds every byte the header promises. Raises `NotSafetensorsError` for a
    pickle or torch.save file and `CorruptWeightsError` for anything else that
    is not a complete safetensors file (truncated, empty, garbage)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise not_safetensors_error(path, f"'{path.suffix}' is a pickle-based format")
    if not path.is_file():
        raise FileNotFoundError(f"No weights file {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except SafetensorError as e:
        with path.open("rb") as f:
            head = f.read(4)
        if head == ZIP_MAGIC:
            raise not_safetensors_error(
                path, "it is a zip archive (torch.save format)"
            ) from e
        if head[:1] == PICKLE_PROTO and head[1:2] in PICKLE_PROTOCOLS:
            raise not_safetensors_error(path, "it is a pickle") from e
        size = path.stat().st_size
        raise CorruptWeightsError(
            f"The SAE weights file {path} is corrupted or truncated ({size} bytes; "
            f"safetensors says: {e}). {RECOVERY_HINT}"
        ) from e
    return path


def check_sae_dir(path: str | Path) -> Path:
    """`path` as a SAELens SAE directory whose cfg.json parses and whose weights
    are a complete safetensors file; otherwise an error naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "does not exist"
        raise FileNotFoundError(f"The SAE directory {path} {what}.")
    cfg_file = path / SAE_CFG_FILENAME
    if not cfg_file.is_file():
        inside = sorted(p.name for p in path.iterdir())
        raise FileNotFoundError(
            f"{path} is not a SAELens SAE directory: it has no {SAE_CFG_FILENAME} "
            f"(it holds {inside or 'nothing'}). Point at the folder that holds "
            f"{SAE_CFG_FILENAME} and {SAE_WEIGHTS_FILENAME} (SAELens' save_model "
            "and save_inference_model write both), or restore the missing "
            f"{SAE_CFG_FILENAME}."
        )
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptSAEError(
            f"The SAE config {cfg_file} is not valid JSON ({e}). {RECOVERY_HINT}"
        ) from e
    if not isinstance(cfg, dict):
        raise CorruptSAEError(
            f"The SAE config {cfg_file} holds a {type(cfg).__name__}, not a JSON "
            f"object. {RECOVERY_HINT}"
        )
    weights = path / SAE_WEIGHTS_FILENAME
    if not weights.exists():
        pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise not_safetensors_error(
                path / pickled[0],
                f"{path} holds no {SAE_WEIGHTS_FILENAME}, only {pickled}",
            )
        raise FileNotFoundError(
            f"{path} has {SAE_CFG_FILENAME} but no {SAE_WEIGHTS_FILENAME}. "
            f"{RECOVERY_HINT}"
        )
    check_safetensors(weights)
    return path


def load_sae_dir(
    path: str | Path,
    device: str = "cpu",
    dtype: str | None = None,
    sae_class: type[T_SAE] = SAE,  # type: ignore[assignment]
) -> T_SAE:
    """`sae_class.load_from_disk(path)` (SAELens), after `check_sae_dir`.

    `sae_class` is `SAE` (inference) or `TrainingSAE` (training checkpoints).
    """
    check_sae_dir(path)
    return sae_class.load_from_disk(path, device=device, dtype=dtype)


# ---------------------------------------------------------------------------
# Writing


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
