"""Reading SAE directories safely.

`load_sae_dir` checks a SAELens SAE directory before SAELens reads it:
cfg.json must exist and be JSON, and sae_weights.safetensors must be a complete
safetensors file. A truncated download or a half-copied file then fails with a
message that names the file and says how to recover, instead of safetensors'
"incomplete metadata, file not fully covered". Weights are only ever read with
safetensors: a pickle-based file (torch.save, .pt, .bin ...) can run arbitrary
code when loaded, so it is refused with a message that says how to convert it.
"""

import json
from pathlib import Path
from typing import Any, TypeVar

from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from sae_lens.saes.sae import SAE
from safetensors import SafetensorError, safe_open

from saelens_aligned.errors import InputError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
PICKLE_PROTO = b"\x80"  # pickle protocol >= 2 starts PROTO <n>
PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")
RECOVERY_HINT = (
    "Re-download it (for a Hugging Face SAE: load_sae(..., force_download=True)), "
    "restore it from a backup or an earlier checkpoint, or retrain the SAE."
)

T_SAE = TypeVar("T_SAE", bound=SAE[Any])


class NotSafetensorsError(InputError):
    """A weights file that is not safetensors; we never unpickle weights."""


class CorruptSAEError(InputError):
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
