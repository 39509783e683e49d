"""Compact files of `tied` SAEs: the encoder alone, expanded into an ordinary
SAELens SAE folder when loaded.

A `tied` SAE's decoder is a function of its encoder, d_i = e_i / ||e_i||², so a
release need not store it: a compact file holds `W_enc` (in float16 by default,
half of float32) and every other tensor of the export as it is (biases, in
float32), with the SAE's `cfg.json` in the safetensors metadata. Float16 rather
than bfloat16: the same size, but 10 mantissa bits against 7, so fewer TopK
choices move (`python -m benchmarks.release.precision measure`); an encoder's
entries lie well inside float16's range (a larger one is refused). `expand_compact`
derives W_dec from the stored encoder in float32 and writes `cfg.json` and
`sae_weights.safetensors`: a folder any SAELens tool loads without this package,
whose alignment scores are 1 to float32 precision. `write_compact` refuses an SAE
that is not tied (its decoder would be lost).
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from saelens_aligned.alignment import tied_decoder
from saelens_aligned.io.files import atomic_dir

COMPACT_FORMAT = "saelens-aligned-compact-tied/1"
# How far a stored decoder may be from the tied decoder of its encoder (largest
# elementwise difference relative to the largest entry) and still count as tied.
TIED_TOLERANCE = 1e-4


class NotTiedError(ValueError):
    """The SAE's decoder is not the tied partner of its encoder."""


def write_compact(
    sae_dir: str | Path,
    out_file: str | Path,
    encoder_dtype: torch.dtype = torch.float16,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """The compact file of the tied SAE folder `sae_dir`, written to `out_file`.

    Args:
        sae_dir: A SAELens SAE folder whose decoder is tied to its encoder.
        out_file: The safetensors file to write.
        encoder_dtype: How `W_enc` is stored (the biases stay as they are).
        metadata: Entries that replace or join the cfg's `metadata` (e.g. a
            portable model name instead of the build machine's model path).
    """
    sae_dir = Path(sae_dir)
    state = load_file(sae_dir / SAE_WEIGHTS_FILENAME)
    W_enc_DF, W_dec_FD = state["W_enc"].float(), state["W_dec"].float()
    deviation = (tied_decoder(W_enc_DF) - W_dec_FD).abs().max() / W_dec_FD.abs().max()
    if float(deviation) > TIED_TOLERANCE:
        raise NotTiedError(
            f"{sae_dir}: W_dec differs from the tied decoder of W_enc by "
            f"{float(deviation):.2e} (relative); only `tied` SAEs have a compact "
            "form. Publish the folder itself instead."
        )
    tensors = {
        name: value.contiguous() for name, value in state.items() if name != "W_dec"
    }
    largest = float(W_enc_DF.abs().max())
    if encoder_dtype.is_floating_point and largest > torch.finfo(encoder_dtype).max:
        raise ValueError(
            f"{sae_dir}: W_enc holds {largest:.3g}, beyond {encoder_dtype}'s range; "
            "pass encoder_dtype=torch.bfloat16 or torch.float32."
        )
    tensors["W_enc"] = state["W_enc"].to(encoder_dtype).contiguous()
    cfg = json.loads((sae_dir / SAE_CFG_FILENAME).read_text())
    cfg["metadata"] = {**cfg.get("metadata", {}), **(metadata or {})}
    return _save_compact(tensors, cfg, Path(out_file))


def _save_compact(
    tensors: dict[str, torch.Tensor], cfg: dict[str, Any], out_file: Path
) -> Path:
    """Write a compact file, unless `out_file` already holds these tensors and
    this cfg: safetensors orders its header differently from one write to the
    next, and a release's records name its files' sha256."""
    if out_file.is_file() and _same_content(out_file, tensors, cfg):
        return out_file
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        tensors, out_file, metadata={"format": COMPACT_FORMAT, "cfg": json.dumps(cfg)}
    )
    return out_file


def _same_content(
    path: Path, tensors: dict[str, torch.Tensor], cfg: dict[str, Any]
) -> bool:
    try:
        if compact_cfg(path) != cfg:
            return False
    except ValueError:
        return False
    stored = load_file(str(path))
    return stored.keys() == tensors.keys() and all(
        stored[k].dtype == v.dtype and torch.equal(stored[k], v)
        for k, v in tensors.items()
    )


def restamp_compact(path: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Replace or add entries of a compact file's cfg `metadata` in place; its
    tensors are rewritten unchanged (bit for bit, in their stored dtypes)."""
    cfg = compact_cfg(path)
    cfg["metadata"] = {**cfg.get("metadata", {}), **metadata}
    return _save_compact(load_file(str(path)), cfg, Path(path))


def compact_cfg(path: str | Path) -> dict[str, Any]:
    """The SAELens cfg.json stored in a compact file."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != COMPACT_FORMAT:
        raise ValueError(
            f"{path} is not a compact SAE file (format {metadata.get('format')!r}, "
            f"expected {COMPACT_FORMAT!r})."
        )
    return json.loads(metadata["cfg"])


def expand_compact(path: str | Path, out_dir: str | Path) -> Path:
    """Write the SAELens SAE folder of a compact file to `out_dir` (whole or not
    at all) and return it: W_dec derived in float32, every tensor float32."""
    cfg = compact_cfg(path)
    tensors = {name: value.float() for name, value in load_file(str(path)).items()}
    tensors["W_dec"] = tied_decoder(tensors["W_enc"]).contiguous()
    cfg["dtype"] = "float32"
    with atomic_dir(Path(out_dir)) as partial:
        save_file(tensors, partial / SAE_WEIGHTS_FILENAME)
        (partial / SAE_CFG_FILENAME).write_text(json.dumps(cfg))
    return Path(out_dir)
