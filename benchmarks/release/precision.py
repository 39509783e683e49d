"""How much the stored precision of the shipped encoder changes a released SAE.

    python -m benchmarks.release.precision measure   # needs the float32 build
    python -m benchmarks.release.precision render    # the docs table, from the record
                                                     # (`python -m benchmarks results` writes it)

A compact file stores `W_enc` in 16 bits and the loader derives the decoder from
it (`io/compact.py`). For each layer of the release, the float32 SAE its build
trained and the same SAE through the compact path in bfloat16 and in float16
(written, expanded, loaded as a user gets it) encode the same held-out
activations (the release's dead-latent window cache). Reported per layer and
storage: the fraction of the float32 SAE's TopK choices (token, latent) that the
stored one does not make, and the change of the reconstruction relative to the
float32 one's (Frobenius norms over all tokens). The record is
`benchmarks/results/release/precision.json`.
"""

import argparse
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.release.spec import RELEASE, ReleasePaths, ReleaseSpec, trained_sae_dir
from saelens_aligned.io import write_json_atomic

PRECISION_FILENAME = "precision.json"
STORAGES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class StoredPrecision:
    """One layer's SAE stored one way, against the float32 SAE it was trained as.

    Args:
        sae_id: The layer's id in the release.
        encoder_dtype: How the compact file stores `W_enc`.
        file_bytes: The compact file's size.
        tokens: Held-out tokens encoded.
        topk_changed: Fraction of the float32 SAE's (token, latent) choices
            the stored SAE does not make.
        output_change: ||x̂_stored - x̂_float32|| / ||x̂_float32||.
    """

    sae_id: str
    encoder_dtype: str
    file_bytes: int
    tokens: int
    topk_changed: float
    output_change: float


def heldout_activations(
    spec: ReleaseSpec, layer: int, d_in: int, tokens: int
) -> torch.Tensor:
    """The first `tokens` rows of the layer's held-out (dead-window) cache."""
    from saelens_aligned.pipeline.activations import (
        activation_cache_dir,
        cache_key,
        iter_cached_activations,
    )
    from saelens_aligned.pipeline.source import resolve_source

    resolved = resolve_source(spec.sweep(layer).source())
    key = cache_key(resolved, d_in, spec.dead_window_tokens, spec.seed, "eval")
    rows, seen = [], 0
    for batch in iter_cached_activations(activation_cache_dir(resolved, key), d_in):
        rows.append(batch[: tokens - seen])
        seen += rows[-1].shape[0]
        if seen >= tokens:
            break
    return torch.cat(rows).float()


@torch.no_grad()
def compare(reference: Any, stored: Any, x_BD: torch.Tensor) -> tuple[float, float]:
    """(fraction of TopK choices changed, relative output change) of `stored`
    against `reference` on `x_BD`."""
    acts_ref, acts = reference.encode(x_BD), stored.encode(x_BD)
    chosen_ref = acts_ref > 0
    changed = (chosen_ref & ~(acts > 0)).sum() / chosen_ref.sum()
    out_ref = reference.decode(acts_ref)
    change = (stored.decode(acts) - out_ref).norm() / out_ref.norm()
    return float(changed), float(change)


def measure(
    spec: ReleaseSpec = RELEASE,
    paths: ReleasePaths | None = None,
    tokens: int = 65_536,
) -> list[StoredPrecision]:
    from sae_lens import SAE

    from saelens_aligned.io.compact import expand_compact, write_compact

    paths = paths or ReleasePaths()
    out = []
    for layer in spec.layers:
        sae_dir = trained_sae_dir(spec, layer, paths)
        reference = SAE.load_from_disk(sae_dir)
        x_BD = heldout_activations(spec, layer, reference.cfg.d_in, tokens)
        for name, dtype in STORAGES.items():
            with tempfile.TemporaryDirectory() as tmp:
                compact = write_compact(sae_dir, Path(tmp) / "c.safetensors", dtype)
                stored = SAE.load_from_disk(expand_compact(compact, Path(tmp) / "x"))
                changed, change = compare(reference, stored, x_BD)
                out.append(
                    StoredPrecision(
                        spec.sae_id(layer),
                        name,
                        compact.stat().st_size,
                        x_BD.shape[0],
                        changed,
                        change,
                    )
                )
    return out


def record_file(paths: ReleasePaths | None = None) -> Path:
    return (paths or ReleasePaths()).results_dir / PRECISION_FILENAME


def load(paths: ReleasePaths | None = None) -> list[StoredPrecision]:
    import json

    rows = json.loads(record_file(paths).read_text())
    return [StoredPrecision(**row) for row in rows]


def render(rows: list[StoredPrecision] | None = None) -> str:
    """The docs table of the record."""
    from tabulate import tabulate

    table = [
        [
            r.sae_id,
            r.encoder_dtype,
            f"{r.file_bytes / 1e6:.1f} MB",
            f"{r.tokens:,}",
            f"{100 * r.topk_changed:.4f}%",
            f"{100 * r.output_change:.3f}%",
        ]
        for r in (load() if rows is None else rows)
    ]
    headers = [
        "sae_id",
        "`W_enc` stored as",
        "file",
        "held-out tokens",
        "TopK choices changed",
        "output change",
    ]
    return tabulate(table, headers=headers, tablefmt="github") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.release.precision",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("command", choices=["measure", "render"])
    args = parser.parse_args()
    if args.command == "measure":
        import saelens_aligned  # noqa: F401  (registers the architectures)

        rows = measure()
        write_json_atomic(record_file(), [asdict(r) for r in rows], indent=1)
    print(render(), end="")


if __name__ == "__main__":
    main()
