"""One-to-one matching of two SAEs' latents by the cosine of their vectors: the
Hungarian algorithm up to `HUNGARIAN_MAX_N` latents, a greedy matching above.
Pure (arrays in, matching out); the benchmark's seed-to-seed stability
(`benchmarks.analysis.stability`) and the dashboards' comparison page
(`saelens_aligned.dashboards.matching`) both read SAEs through it.
"""

from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

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


def unit_rows(x: Any) -> np.ndarray:
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
    a_ND = unit_rows(a)
    b_MD = unit_rows(b)
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
