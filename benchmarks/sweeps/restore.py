"""SAEs of recorded runs, retrained where this machine does not hold them.

A run's record is committed; its SAE (tens of MB at 8x and up) is not. A sweep
that spans sessions on fresh machines therefore reaches its stability phase
with records for every seed of a point but SAEs for only some of them. Training
is seeded (init and data order), so the missing SAEs are retrained, without
evaluation (`benchmarks.sweeps.executor.restore_run`), and each is checked, here,
against what its record measured of the weights it was evaluated on, before
stability reads it."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

RETRAINED_FILENAME = "retrained.json"
# Alignment statistics recomputed from the saved weights agree with the record's
# (computed from the evaluated SAE, which SAELens may have rescaled) to float32
# rounding (3e-8 relative, seen on retrained 8x SAEs); two trainings that differ
# at all differ far more than this.
ALIGNMENT_RTOL = 1e-6
COMPARED_ALIGNMENT_STATS = ("mean", "std", "min", "max")
# Below this spread the scores are all ~1 (an aligned SAE) and say nothing about
# which weights they came from.
MIN_INFORMATIVE_STD = 1e-3


@dataclass(frozen=True)
class Reproduction:
    """How a retrained SAE compares with the one its record evaluated.

    Args:
        run_id: The run.
        reproduced: True when the check matched, False when it did not, None
            when the record holds nothing that tells the weights apart.
        checked: What was compared: `weights_sha256` (the record's hash of the
            saved weights; exact), `alignment` (mean, std, min and max of the
            alignment scores, to `ALIGNMENT_RTOL`) or `none`.
        dead_at_end: SAELens' count of latents dead at the end of training, as
            (record, retrained); None where either lacks it.
    """

    run_id: str
    reproduced: bool | None
    checked: str
    dead_at_end: tuple[int | None, int | None]


def weights_sha256(sae_dir: Path) -> str:
    """The hash of a saved SAE's weights file."""
    digest = hashlib.sha256()
    with open(Path(sae_dir) / SAE_WEIGHTS_FILENAME, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _saved_alignment(sae_dir: Path) -> dict[str, float]:
    from benchmarks.sweeps.stability_record import load_weights
    from saelens_aligned.alignment import alignment_scores, summarize_alignment

    W_enc, W_dec = (torch.from_numpy(w).double() for w in load_weights(sae_dir))
    summary = summarize_alignment(alignment_scores(W_enc, W_dec))
    return {k: getattr(summary, k) for k in COMPARED_ALIGNMENT_STATS}


def _dead_at_end(sae_cfg: dict[str, Any]) -> int | None:
    dead = (sae_cfg.get("metadata") or {}).get("num_dead_features")
    return None if dead is None else int(dead)


def compare_with_record(record: dict[str, Any], sae_dir: Path) -> Reproduction:
    """The retrained SAE in `sae_dir` against the run's `record`."""
    run_id = record["eval_config"]["run"]["run_id"]
    cfg = json.loads((Path(sae_dir) / SAE_CFG_FILENAME).read_text())
    dead = (_dead_at_end(record["sae_cfg_dict"]), _dead_at_end(cfg))
    training = record["eval_result_metrics"].get("training", {})
    if training.get("weights_sha256"):
        same = training["weights_sha256"] == weights_sha256(sae_dir)
        return Reproduction(run_id, same, "weights_sha256", dead)
    recorded = record["eval_result_metrics"].get("alignment", {})
    if recorded.get("std", 0.0) >= MIN_INFORMATIVE_STD:
        saved = _saved_alignment(sae_dir)
        same = all(
            np.isclose(saved[k], recorded[k], rtol=ALIGNMENT_RTOL, atol=1e-9)
            for k in COMPARED_ALIGNMENT_STATS
        )
        return Reproduction(run_id, bool(same), "alignment", dead)
    return Reproduction(run_id, None, "none", dead)


def read_reproduction(sae_dir: Path) -> Reproduction | None:
    """The check written when the SAE in `sae_dir` was retrained; None when it
    is the SAE the run's own training saved."""
    path = Path(sae_dir) / RETRAINED_FILENAME
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Reproduction(
        data["run_id"], data["reproduced"], data["checked"], tuple(data["dead_at_end"])
    )
