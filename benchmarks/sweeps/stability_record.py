"""The stability record of one sweep point: every pair of its seeds' SAEs read
from disk and compared by `benchmarks.analysis.stability.pair_stability`, in SAEBench's
result layout (`benchmarks.records.layout`)."""

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from sae_lens.constants import SAE_WEIGHTS_FILENAME

from benchmarks.analysis.stability import PairStability, pair_stability
from benchmarks.records import layout
from saelens_aligned.latent_matching import HUNGARIAN_MAX_N


def load_weights(sae_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(W_enc, W_dec) of the SAE saved in `sae_dir`, as float32 arrays."""
    from safetensors.torch import load_file

    state = load_file(str(Path(sae_dir) / SAE_WEIGHTS_FILENAME))
    missing = [k for k in ("W_enc", "W_dec") if k not in state]
    if missing:
        raise ValueError(f"{sae_dir}/{SAE_WEIGHTS_FILENAME} has no {missing}.")
    return state["W_enc"].float().numpy(), state["W_dec"].float().numpy()


Weights = tuple[np.ndarray, np.ndarray]
"""(W_enc [d_in, d_sae], W_dec [d_sae, d_in]) of one SAE."""

# Numbers of a stability record summarised as mean, min and max over seed pairs.
_SUMMARISED = (
    "shared_fraction_decoder",
    "shared_fraction_decoder_alive",
    "shared_fraction_enc_dec",
    "shared_fraction_enc_dec_alive",
)


def _summarise(details: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """`key_mean`, `key_min`, `key_max` over the pairs (None when any is None)."""
    values = [d[key] for d in details]
    if any(v is None for v in values):
        return {f"{key}_{s}": None for s in ("mean", "min", "max")}
    return {
        f"{key}_mean": float(np.mean(values)),
        f"{key}_min": float(np.min(values)),
        f"{key}_max": float(np.max(values)),
    }


def _as_json(result: PairStability) -> dict[str, Any]:
    """The result as a JSON-ready dict (n_alive as a list)."""
    out = asdict(result)
    if out["n_alive"] is not None:
        out["n_alive"] = list(out["n_alive"])
    return out


def _mean_or_none(details: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [d[key] for d in details]
    return None if any(v is None for v in values) else float(np.mean(values))


def point_stability(
    members: Sequence[tuple[dict[str, Any], Path, Any]],
    threshold: float = 0.7,
    chance: tuple[Weights, Weights] | None = None,
    max_hungarian: int = HUNGARIAN_MAX_N,
) -> dict[str, Any]:
    """The stability record of one sweep point, over every pair of its seeds.

    Args:
        members: (run info, SAE folder, alive_F) for each seed of the point: run
            info as in `layout.run_info`; the folder holding
            `sae_weights.safetensors`; alive_F a bool array [d_sae] of the
            latents that fired in the run's evaluation window (the long one when
            measured), or None. If any member has None, every alive fraction is
            None (the record never mixes criteria across pairs).
        threshold: See `pair_stability`.
        chance: Two independently initialised, untrained SAEs of the point's
            architecture and shape, as ((W_enc, W_dec), (W_enc, W_dec)); their
            `pair_stability` is the record's chance baseline. None: no baseline.
        max_hungarian: See `match_latents`.

    The record (`layout.STABILITY_TYPE_ID`) holds the point's run info without
    seed and run_id in `eval_config["point"]`; each pair's `PairStability` (with
    its seeds) in `eval_result_details`; and in `eval_result_metrics["stability"]`
    `<fraction>_mean/_min/_max` over pairs for each of the four fractions, the
    mean matched cosines, `n_pairs`, `chance_<number>` for the chance pair, and
    `shared_fraction_mean/_min/_max`: the headline, named by
    `eval_config["headline"]` (the decoder criterion over alive latents, or over
    all latents without alive masks).
    """
    entries = sorted(members, key=lambda e: e[0]["seed"])
    point_ids = {info["point_id"] for info, _, _ in entries}
    seeds = [info["seed"] for info, _, _ in entries]
    if len(point_ids) != 1:
        raise ValueError(f"point_stability needs runs of one point, got {point_ids}.")
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"point_stability needs >= 2 distinct seeds, got {seeds}.")
    tied = entries[0][0].get("alignment") == "tied"
    weights = {info["seed"]: load_weights(sae_dir) for info, sae_dir, _ in entries}
    alive = {info["seed"]: a for info, _, a in entries}
    if any(a is None for a in alive.values()):
        alive = dict.fromkeys(alive)
    details = []
    for seed_a, seed_b in itertools.combinations(seeds, 2):
        result = pair_stability(
            *weights[seed_a],
            *weights[seed_b],
            threshold,
            tied,
            alive[seed_a],
            alive[seed_b],
            max_hungarian,
        )
        details.append({"seeds": [seed_a, seed_b], **_as_json(result)})
    headline = (
        "shared_fraction_decoder_alive"
        if details[0]["shared_fraction_decoder_alive"] is not None
        and all(d["shared_fraction_decoder_alive"] is not None for d in details)
        else "shared_fraction_decoder"
    )
    metrics: dict[str, Any] = {}
    for key in _SUMMARISED:
        metrics.update(_summarise(details, key))
    metrics.update(
        {
            f"shared_fraction_{s}": metrics[f"{headline}_{s}"]
            for s in ("mean", "min", "max")
        }
    )
    metrics["mean_matched_decoder_cos"] = _mean_or_none(
        details, "mean_matched_decoder_cos"
    )
    metrics["mean_matched_encoder_cos"] = _mean_or_none(
        details, "mean_matched_encoder_cos"
    )
    metrics["n_pairs"] = len(details)
    chance_result = None
    if chance is not None:
        (enc_a, dec_a), (enc_b, dec_b) = chance
        chance_result = _as_json(
            pair_stability(
                enc_a, dec_a, enc_b, dec_b, threshold, tied, None, None, max_hungarian
            )
        )
    for key in (
        "shared_fraction_decoder",
        "shared_fraction_enc_dec",
        "mean_matched_decoder_cos",
        "mean_matched_encoder_cos",
    ):
        metrics[f"chance_{key}"] = None if chance_result is None else chance_result[key]
    methods = {d["method"] for d in details}
    point = {k: v for k, v in entries[0][0].items() if k not in ("seed", "run_id")}
    return {
        "eval_type_id": layout.STABILITY_TYPE_ID,
        "eval_config": {
            "point": point,
            "threshold": threshold,
            "method": "+".join(sorted(methods)),
            "headline": headline,
            "tied": tied,
        },
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": {"stability": metrics},
        "eval_result_details": details,
        "eval_result_unstructured": {"chance": chance_result},
    }
