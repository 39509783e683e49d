"""Stability across seeds: the fraction of latents two SAEs share.

After Paulo & Belrose (2025), "Sparse Autoencoders Trained on the Same Data Learn
Different Features": the latents of two SAEs (same data, different seeds) are
matched 1:1 by the cosine similarity of their vectors, once on the encoder
directions and once on the decoder directions. A latent of A is *shared* when both
matchings pair it with the same latent of B and both cosines exceed a threshold
(0.7 by default).

`match_latents` and `shared_latent_fraction` are pure (arrays in, numbers out);
`point_stability` reads the SAEs of one sweep point from disk and builds its
stability record (layout in `benchmarks.records`).
"""

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks import records

# Above this many latents (on either side) `match_latents` matches greedily.
# Measured on this project's CPU (2 shared cores), one thread, d_in 576, scipy's
# linear_sum_assignment alone (the cosine matmul adds 0.03 / 0.6 / 4-9 s):
#   n = 1024:  0.07 s (unrelated SAEs), 0.02 s (similar SAEs, matched cos ~0.8)
#   n = 4096:  2.6 s (unrelated),        0.3 s (similar)
#   n = 16384: 51 s (unrelated),         16 s (similar); 5.4 GB peak memory
#              (the float32 cosine matrix plus scipy's float64 copies).
# Time grows as n^3 for unrelated latents and memory as n^2: n = 32768 would take
# ~7 min per matching and ~21 GB. The greedy matching (same machine, cosines
# included) takes 8 s and 1 GB at n = 16384 (total cosine within 1.5% of the
# Hungarian one for unrelated SAEs, equal for similar ones) and 40 s and 2 GB
# at n = 32768.
HUNGARIAN_MAX_N = 16384
# Candidates per row that the greedy matching keeps in each round.
GREEDY_CANDIDATES = 8
# Below this many (rows x columns) left, the greedy matching finishes on the dense
# cosine matrix of what is left.
GREEDY_DENSE_MAX = 512 * 512
# Rows per chunk when the greedy matching computes cosines.
_CHUNK_ROWS = 2048


class LatentMatching(NamedTuple):
    """A 1:1 matching of the latents of A (rows) to the latents of B (rows)."""

    row_ind: np.ndarray
    """Latents of A, ascending; every one of them when A has no more rows than B."""
    col_ind: np.ndarray
    """Their partners in B."""
    cos: np.ndarray
    """Cosine similarity of each matched pair."""
    method: str
    """`hungarian` (maximum total cosine) or `greedy` (see `match_latents`)."""


@dataclass(frozen=True)
class StabilityResult:
    """How much two SAEs agree.

    Args:
        shared_fraction: Fraction of A's latents that are shared with B (same
            partner in the encoder and the decoder matching, both cosines above the
            threshold). In [0, 1].
        mean_matched_decoder_cos: Mean cosine of the decoder matching, over A's
            latents.
        mean_matched_encoder_cos: Mean cosine of the encoder matching.
        method: Matching method, `hungarian` or `greedy`.
    """

    shared_fraction: float
    mean_matched_decoder_cos: float
    mean_matched_encoder_cos: float
    method: str


def _unit_rows(x: Any) -> np.ndarray:
    x_ND = np.asarray(x, dtype=np.float32)
    norms_N1 = np.linalg.norm(x_ND, axis=1, keepdims=True)
    # A zero row (a latent that never trained) gets cosine 0 with everything.
    return x_ND / np.maximum(norms_N1, 1e-12)


def match_latents(
    a: Any, b: Any, max_hungarian: int = HUNGARIAN_MAX_N
) -> LatentMatching:
    """Match the latents of A to those of B 1:1 by cosine similarity.

    Args:
        a: Latent vectors of A, one per row: [n_a, d].
        b: Latent vectors of B: [n_b, d].
        max_hungarian: Largest n_a and n_b matched exactly.

    Up to `max_hungarian` latents on both sides, the matching maximises the total
    cosine (scipy's `linear_sum_assignment`, the Hungarian / LAPJV algorithm,
    O(n^3)): 0.07 s at n = 1024, 2.6 s at 4096 and 51 s with 5.4 GB of memory at
    16384 on one CPU thread for unrelated SAEs (less time for similar ones; see
    HUNGARIAN_MAX_N). Above it, the matching is greedy and never holds the full
    cosine matrix: in each round every unmatched row of A keeps its
    GREEDY_CANDIDATES most similar unmatched rows of B, candidate pairs are
    accepted in descending cosine while both ends are free, and the rows left over
    go to the next round (the last one dense once few are left). Where every row's
    best partner is distinct (a permuted copy, near-identical SAEs) this is the
    exact optimum; otherwise its total cosine can be lower than the Hungarian one.
    """
    a_ND = _unit_rows(a)
    b_MD = _unit_rows(b)
    if a_ND.ndim != 2 or b_MD.ndim != 2 or a_ND.shape[1] != b_MD.shape[1]:
        raise ValueError(
            f"match_latents needs [n_a, d] and [n_b, d] arrays, got {a_ND.shape} "
            f"and {b_MD.shape}."
        )
    if max(a_ND.shape[0], b_MD.shape[0]) <= max_hungarian:
        cos_NM = a_ND @ b_MD.T
        row_ind, col_ind = linear_sum_assignment(cos_NM, maximize=True)
        return LatentMatching(row_ind, col_ind, cos_NM[row_ind, col_ind], "hungarian")
    return _greedy_matching(a_ND, b_MD)


def _greedy_matching(a_ND: np.ndarray, b_MD: np.ndarray) -> LatentMatching:
    n, m = a_ND.shape[0], b_MD.shape[0]
    partner = np.full(n, -1, dtype=np.int64)
    partner_cos = np.zeros(n, dtype=np.float32)
    col_used = np.zeros(m, dtype=bool)
    rows_left = np.arange(n)
    while rows_left.size and not col_used.all():
        cols_left = np.flatnonzero(~col_used)
        dense = rows_left.size * cols_left.size <= GREEDY_DENSE_MAX
        k = cols_left.size if dense else min(GREEDY_CANDIDATES, cols_left.size)
        cand_rows, cand_cols, cand_cos = [], [], []
        b_left_KD = b_MD[cols_left]
        for start in range(0, rows_left.size, _CHUNK_ROWS):
            rows = rows_left[start : start + _CHUNK_ROWS]
            cos_RK = a_ND[rows] @ b_left_KD.T
            if k < cols_left.size:
                top_RK = np.argpartition(-cos_RK, k - 1, axis=1)[:, :k]
            else:
                top_RK = np.broadcast_to(np.arange(k), cos_RK.shape)
            cand_rows.append(np.repeat(rows, k))
            cand_cols.append(cols_left[top_RK].ravel())
            cand_cos.append(np.take_along_axis(cos_RK, top_RK, axis=1).ravel())
        cos_c = np.concatenate(cand_cos)
        order = np.argsort(-cos_c, kind="stable")
        rows_c = np.concatenate(cand_rows)[order].tolist()
        cols_c = np.concatenate(cand_cols)[order].tolist()
        todo = min(rows_left.size, cols_left.size)
        for r, c, i in zip(rows_c, cols_c, order.tolist(), strict=True):
            if partner[r] < 0 and not col_used[c]:
                partner[r], partner_cos[r], col_used[c] = c, cos_c[i], True
                todo -= 1
                if not todo:
                    break
        rows_left = np.flatnonzero(partner < 0)
    row_ind = np.flatnonzero(partner >= 0)
    return LatentMatching(row_ind, partner[row_ind], partner_cos[row_ind], "greedy")


def shared_latent_fraction(
    enc_a: Any,
    dec_a: Any,
    enc_b: Any,
    dec_b: Any,
    threshold: float = 0.7,
    max_hungarian: int = HUNGARIAN_MAX_N,
) -> StabilityResult:
    """The fraction of SAE A's latents that SAE B shares.

    Args:
        enc_a: A's W_enc, [d_in, d_sae] (SAELens layout; latent i is column i).
        dec_a: A's W_dec, [d_sae, d_in] (latent i is row i).
        enc_b: B's W_enc.
        dec_b: B's W_dec.
        threshold: Cosine a matched pair must exceed, in both matchings.
        max_hungarian: Passed to `match_latents`.

    Latents are matched on encoder directions and on decoder directions
    separately; latent i of A is shared when both matchings give it the same
    partner j in B and both cos(e_i^A, e_j^B) and cos(d_i^A, d_j^B) exceed
    `threshold`. Cosines ignore scale, so any rescaling SAELens folds into the
    weights leaves the result unchanged; a zero row counts as never shared.
    """
    enc_a_FD, enc_b_FD = np.asarray(enc_a).T, np.asarray(enc_b).T
    dec_a_FD, dec_b_FD = np.asarray(dec_a), np.asarray(dec_b)
    for name, enc, dec in (("A", enc_a_FD, dec_a_FD), ("B", enc_b_FD, dec_b_FD)):
        if enc.shape != dec.shape:
            raise ValueError(
                f"SAE {name}: W_enc.T {enc.shape} and W_dec {dec.shape} differ; "
                "pass W_enc as [d_in, d_sae] and W_dec as [d_sae, d_in]."
            )
    n = enc_a_FD.shape[0]
    enc = match_latents(enc_a_FD, enc_b_FD, max_hungarian)
    dec = match_latents(dec_a_FD, dec_b_FD, max_hungarian)
    enc_partner, enc_cos = _per_row(enc, n)
    dec_partner, dec_cos = _per_row(dec, n)
    shared = (
        (enc_partner >= 0)
        & (enc_partner == dec_partner)
        & (enc_cos > threshold)
        & (dec_cos > threshold)
    )
    return StabilityResult(
        shared_fraction=float(shared.mean()) if n else 0.0,
        mean_matched_decoder_cos=float(dec_cos.mean()) if n else 0.0,
        mean_matched_encoder_cos=float(enc_cos.mean()) if n else 0.0,
        method=enc.method if enc.method == dec.method else f"{enc.method}+{dec.method}",
    )


def _per_row(matching: LatentMatching, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Partner and cosine of each of A's n rows (-1 and 0 where unmatched)."""
    partner = np.full(n, -1, dtype=np.int64)
    cos = np.zeros(n, dtype=np.float64)
    partner[matching.row_ind] = matching.col_ind
    cos[matching.row_ind] = matching.cos
    return partner, cos


def _load_weights(sae_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from safetensors.torch import load_file

    state = load_file(str(Path(sae_dir) / "sae_weights.safetensors"))
    missing = [k for k in ("W_enc", "W_dec") if k not in state]
    if missing:
        raise ValueError(f"{sae_dir}/sae_weights.safetensors has no {missing}.")
    return state["W_enc"].float().numpy(), state["W_dec"].float().numpy()


def point_stability(
    run_infos_and_sae_dirs: Sequence[tuple[dict[str, Any], Path]],
    threshold: float = 0.7,
    max_hungarian: int = HUNGARIAN_MAX_N,
) -> dict[str, Any]:
    """The stability record of one sweep point, over every pair of its seeds.

    Args:
        run_infos_and_sae_dirs: (run info, SAE folder) for each seed of the point;
            run info as in `records.run_info`, the folder holding
            `sae_weights.safetensors`.
        threshold: See `shared_latent_fraction`.
        max_hungarian: See `match_latents`.

    The record (`records.STABILITY_TYPE_ID`) holds the point's run info without
    seed and run_id in `eval_config["point"]`, the per-pair results in
    `eval_result_details` and their mean, min and max in
    `eval_result_metrics["stability"]`.
    """
    entries = sorted(run_infos_and_sae_dirs, key=lambda e: e[0]["seed"])
    point_ids = {info["point_id"] for info, _ in entries}
    seeds = [info["seed"] for info, _ in entries]
    if len(point_ids) != 1:
        raise ValueError(f"point_stability needs runs of one point, got {point_ids}.")
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"point_stability needs >= 2 distinct seeds, got {seeds}.")
    weights = {info["seed"]: _load_weights(sae_dir) for info, sae_dir in entries}
    details = []
    methods = set()
    for seed_a, seed_b in itertools.combinations(seeds, 2):
        (enc_a, dec_a), (enc_b, dec_b) = weights[seed_a], weights[seed_b]
        result = shared_latent_fraction(
            enc_a, dec_a, enc_b, dec_b, threshold, max_hungarian
        )
        methods.add(result.method)
        details.append(
            {
                "seeds": [seed_a, seed_b],
                "shared_fraction": result.shared_fraction,
                "mean_matched_decoder_cos": result.mean_matched_decoder_cos,
                "mean_matched_encoder_cos": result.mean_matched_encoder_cos,
            }
        )
    shared = [d["shared_fraction"] for d in details]
    point = {k: v for k, v in entries[0][0].items() if k not in ("seed", "run_id")}
    return {
        "eval_type_id": records.STABILITY_TYPE_ID,
        "eval_config": {
            "point": point,
            "threshold": threshold,
            "method": "+".join(sorted(methods)),
        },
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": {
            "stability": {
                "shared_fraction_mean": float(np.mean(shared)),
                "shared_fraction_min": float(np.min(shared)),
                "shared_fraction_max": float(np.max(shared)),
                "mean_matched_decoder_cos": float(
                    np.mean([d["mean_matched_decoder_cos"] for d in details])
                ),
                "mean_matched_encoder_cos": float(
                    np.mean([d["mean_matched_encoder_cos"] for d in details])
                ),
                "n_pairs": len(details),
            }
        },
        "eval_result_details": details,
        "eval_result_unstructured": {},
    }
