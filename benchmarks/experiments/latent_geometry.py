"""Where an SAE's latents point: near-copies and encoder-decoder angles.

On synthetic data, aligned `tied` with an L1 base matches far fewer distinct true
features than its stock base (SynthSAEBench's `uniqueness`) and fires with low
precision (docs/results.md). Two weight-only checks ask what that looks like in
the weights, and whether it could be seen on text, which has no ground truth:

- *near-copies*: for every alive latent (it fired in the record's longest
  evaluation window), the cosine to its nearest other alive decoder row; a latent
  is duplicated when that cosine is at least `--threshold`;
- *encoder-decoder angle*: the cosine between each alive latent's encoder column
  and decoder row (1 for `tied` by construction; free for every other arm).

    python -m benchmarks.experiments.latent_geometry benchmarks/results/synthetic_cpu \\
        > benchmarks/results/experiments/latent_geometry_synthetic_cpu.jsonl

One JSON line per main run of the sweep folder whose SAE folder is still there
(weights are not committed; rerunning the sweep recreates them), then one line
per arm and sparsity value with seed means.
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from benchmarks.records.layout import flat_metrics, load_records, run_info
from benchmarks.sweeps.stability_phase import alive_latents


def nearest_cosines(W_dec: torch.Tensor) -> torch.Tensor:
    """Each decoder row's cosine to its nearest other row. [d_sae]"""
    unit = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = unit @ unit.T
    cos.fill_diagonal_(-1.0)
    return cos.max(dim=1).values


def duplicate_summary(W_dec: torch.Tensor, threshold: float) -> dict[str, float]:
    """The fraction of rows of `W_dec` (alive latents) with a near-copy, and the
    mean nearest-row cosine."""
    nearest = nearest_cosines(W_dec.float())
    return {
        "duplicated_fraction": float((nearest >= threshold).float().mean()),
        "mean_nearest_cos": float(nearest.mean()),
    }


def encoder_decoder_cosines(W_enc: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """Cosine between each latent's encoder column and decoder row. [d_sae]"""
    return torch.nn.functional.cosine_similarity(W_enc.T.float(), W_dec.float(), dim=1)


def rows(sweep_dir: Path, threshold: float) -> list[dict[str, Any]]:
    records, _ = load_records(sweep_dir)
    out = []
    for record in records:
        info = run_info(record)
        weights = sweep_dir / "saes" / info["run_id"] / "sae_weights.safetensors"
        if not weights.exists():
            continue
        tensors = load_file(str(weights))
        W_enc, W_dec = tensors["W_enc"], tensors["W_dec"]
        alive = alive_latents(record)
        if alive is not None:
            keep = torch.from_numpy(np.asarray(alive))
            W_enc, W_dec = W_enc[:, keep], W_dec[keep]
        ground_truth = record["eval_result_metrics"].get("ground_truth", {})
        out.append(
            {
                "run_id": info["run_id"],
                "label": info["label"],
                "sparsity_value": info["sparsity_value"],
                "l0": flat_metrics(record)["l0"],
                "alive": int(W_dec.shape[0]),
                "uniqueness": ground_truth.get("uniqueness"),
                "precision": ground_truth.get("precision"),
                "mean_encoder_decoder_cos": float(
                    encoder_decoder_cosines(W_enc, W_dec).mean()
                ),
                **duplicate_summary(W_dec, threshold),
            }
        )
    return out


def seed_means(per_run: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for row in per_run:
        groups[(row["label"], row["sparsity_value"])].append(row)
    means = []
    for (label, value), group in sorted(groups.items()):
        mean: dict[str, Any] = {
            "arm": label,
            "sparsity_value": value,
            "seeds": len(group),
        }
        for key in (
            "l0",
            "uniqueness",
            "precision",
            "duplicated_fraction",
            "mean_nearest_cos",
            "mean_encoder_decoder_cos",
        ):
            values = [r[key] for r in group if r[key] is not None and r[key] == r[key]]
            if values:
                mean[key] = round(statistics.mean(values), 4)
        means.append(mean)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--threshold", type=float, default=0.9)
    args = parser.parse_args()
    per_run = rows(args.sweep_dir, args.threshold)
    if not per_run:
        raise SystemExit(
            f"{args.sweep_dir}: no SAE folder under saes/ matches a record; rerun "
            "the sweep there to recreate the weights."
        )
    for row in per_run:
        print(json.dumps({"threshold": args.threshold, **row}))
    for mean in seed_means(per_run):
        print(json.dumps({"threshold": args.threshold, **mean}))


if __name__ == "__main__":
    main()
