"""Stability across seeds: the fraction of latents two SAEs share.

After Paulo & Belrose (2025), "Sparse Autoencoders Trained on the Same Data Learn
Different Features": the latents of two SAEs (same data, different seeds) are
matched 1:1 by the cosine similarity of their vectors (Hungarian matching). Two
criteria, both with one cosine threshold (0.7 by default):

- **decoder** (every arm): latent i of A is shared when the decoder matching pairs
  it with a latent j of B and cos(d_i^A, d_j^B) > threshold. One criterion for
  every arm, so tied and untied arms are measured alike.
- **encoder+decoder** (untied arms only; Paulo & Belrose's): the encoder matching
  must pair i with the same j and cos(e_i^A, e_j^B) > threshold too. For `tied`
  the encoder direction is the decoder direction, so the two matchings are one
  and "both agree" would be vacuous for it but not for its base: it is None there.

Each is reported over all latents (dead ones count as not shared) and over the
latents alive in both SAEs (`pair_stability`). Where they differ from Paulo &
Belrose: a seed here varies the initialisation (the data order is the sweep's
choice, recorded in its config); dead latents are reported apart; and every
stability record carries a chance baseline, the same numbers for two
independently initialised, untrained SAEs of the same architecture and shape.

`match_latents`, `pair_stability` and `shared_latent_fraction` are pure (arrays in,
numbers out); `benchmarks.sweeps.stability_record.point_stability` reads the SAEs of one
sweep point from disk and builds its stability record.
"""

from dataclasses import dataclass
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


@dataclass(frozen=True)
class PairStability:
    """Every stability number of one pair of SAEs (A, B); fractions in [0, 1].

    Args:
        shared_fraction_decoder: Decoder criterion over all latents: latents of A
            whose decoder partner in B has cosine > threshold, over d_sae.
        shared_fraction_decoder_alive: Decoder criterion over alive latents:
            matched pairs with both ends alive (and cosine > threshold), over the
            mean of the two SAEs' alive counts (symmetric in A and B; equal to A's
            count when both have as many). None without alive masks, or when
            neither SAE has an alive latent.
        shared_fraction_enc_dec: Encoder+decoder criterion over all latents (both
            matchings agree, both cosines > threshold); None for tied SAEs.
        shared_fraction_enc_dec_alive: The same over alive latents, as for the
            decoder criterion; None for tied SAEs or without alive masks.
        mean_matched_decoder_cos: Mean cosine of the decoder matching over A's
            latents.
        mean_matched_encoder_cos: Mean cosine of the encoder matching; None for
            tied SAEs (it equals the decoder one).
        n_alive: Alive latents of A and B; None without alive masks.
        method: Matching method, `hungarian` or `greedy` (see `match_latents`).
    """

    shared_fraction_decoder: float
    shared_fraction_decoder_alive: float | None
    shared_fraction_enc_dec: float | None
    shared_fraction_enc_dec_alive: float | None
    mean_matched_decoder_cos: float
    mean_matched_encoder_cos: float | None
    n_alive: tuple[int, int] | None
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


def _as_latent_rows(enc: Any, dec: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(encoder directions [d_sae, d_in], decoder directions [d_sae, d_in])."""
    enc_FD, dec_FD = np.asarray(enc).T, np.asarray(dec)
    if enc_FD.shape != dec_FD.shape:
        raise ValueError(
            f"SAE {name}: W_enc.T {enc_FD.shape} and W_dec {dec_FD.shape} differ; "
            "pass W_enc as [d_in, d_sae] and W_dec as [d_sae, d_in]."
        )
    return enc_FD, dec_FD


def _alive_fraction(
    shared_F: np.ndarray,
    partner_F: np.ndarray,
    alive_a_F: np.ndarray | None,
    alive_b_F: np.ndarray | None,
) -> float | None:
    """Shared latents with both ends alive over the mean alive count (None when
    a mask is missing or nothing is alive)."""
    if alive_a_F is None or alive_b_F is None:
        return None
    denominator = (alive_a_F.sum() + alive_b_F.sum()) / 2
    if denominator == 0:
        return None
    partner_alive_F = np.zeros_like(alive_a_F)
    matched_F = partner_F >= 0
    partner_alive_F[matched_F] = alive_b_F[partner_F[matched_F]]
    return float((shared_F & alive_a_F & partner_alive_F).sum() / denominator)


def _alive_mask(alive: Any, n: int, name: str) -> np.ndarray | None:
    if alive is None:
        return None
    alive_F = np.asarray(alive, dtype=bool)
    if alive_F.shape != (n,):
        raise ValueError(f"alive mask of {name}: shape {alive_F.shape}, need ({n},).")
    return alive_F


def pair_stability(
    enc_a: Any,
    dec_a: Any,
    enc_b: Any,
    dec_b: Any,
    threshold: float = 0.7,
    tied: bool = False,
    alive_a: Any = None,
    alive_b: Any = None,
    max_hungarian: int = HUNGARIAN_MAX_N,
) -> PairStability:
    """Both criteria, over all and over alive latents, for SAEs A and B.

    Args:
        enc_a: A's W_enc, [d_in, d_sae] (SAELens layout; latent i is column i).
        dec_a: A's W_dec, [d_sae, d_in] (latent i is row i).
        enc_b: B's W_enc.
        dec_b: B's W_dec.
        threshold: Cosine a matched pair must exceed.
        tied: The SAEs are `tied` aligned (encoder direction = decoder
            direction): the encoder matching and the encoder+decoder criterion
            are skipped (None).
        alive_a: Bool [d_sae]: A's latents that fired in the run's evaluation
            window; None if unknown.
        alive_b: The same for B.
        max_hungarian: Passed to `match_latents`.

    Matchings are over all latents (dead ones included); the alive fractions
    count the matched pairs whose two ends are alive. Cosines ignore scale, so
    any rescaling SAELens folds into the weights leaves the result unchanged; a
    zero row counts as never shared.
    """
    enc_a_FD, dec_a_FD = _as_latent_rows(enc_a, dec_a, "A")
    enc_b_FD, dec_b_FD = _as_latent_rows(enc_b, dec_b, "B")
    n = dec_a_FD.shape[0]
    alive_a_F = _alive_mask(alive_a, n, "A")
    alive_b_F = _alive_mask(alive_b, dec_b_FD.shape[0], "B")
    dec = match_latents(dec_a_FD, dec_b_FD, max_hungarian)
    dec_partner_F, dec_cos_F = _per_row(dec, n)
    dec_shared_F = (dec_partner_F >= 0) & (dec_cos_F > threshold)
    enc_dec = enc_dec_alive = enc_mean = None
    method = dec.method
    if not tied:
        enc = match_latents(enc_a_FD, enc_b_FD, max_hungarian)
        enc_partner_F, enc_cos_F = _per_row(enc, n)
        both_F = dec_shared_F & (enc_partner_F == dec_partner_F)
        both_F &= enc_cos_F > threshold
        enc_dec = float(both_F.mean()) if n else 0.0
        enc_dec_alive = _alive_fraction(both_F, dec_partner_F, alive_a_F, alive_b_F)
        enc_mean = float(enc_cos_F.mean()) if n else 0.0
        if enc.method != dec.method:
            method = f"{enc.method}+{dec.method}"
    n_alive = None
    if alive_a_F is not None and alive_b_F is not None:
        n_alive = (int(alive_a_F.sum()), int(alive_b_F.sum()))
    return PairStability(
        shared_fraction_decoder=float(dec_shared_F.mean()) if n else 0.0,
        shared_fraction_decoder_alive=_alive_fraction(
            dec_shared_F, dec_partner_F, alive_a_F, alive_b_F
        ),
        shared_fraction_enc_dec=enc_dec,
        shared_fraction_enc_dec_alive=enc_dec_alive,
        mean_matched_decoder_cos=float(dec_cos_F.mean()) if n else 0.0,
        mean_matched_encoder_cos=enc_mean,
        n_alive=n_alive,
        method=method,
    )


def shared_latent_fraction(
    enc_a: Any,
    dec_a: Any,
    enc_b: Any,
    dec_b: Any,
    threshold: float = 0.7,
    max_hungarian: int = HUNGARIAN_MAX_N,
) -> StabilityResult:
    """Paulo & Belrose's encoder+decoder criterion over all latents.

    Args:
        enc_a: A's W_enc, [d_in, d_sae] (SAELens layout; latent i is column i).
        dec_a: A's W_dec, [d_sae, d_in] (latent i is row i).
        enc_b: B's W_enc.
        dec_b: B's W_dec.
        threshold: Cosine a matched pair must exceed, in both matchings.
        max_hungarian: Passed to `match_latents`.

    Latent i of A is shared when the encoder and decoder matchings both give it
    the same partner j in B and both cos(e_i^A, e_j^B) and cos(d_i^A, d_j^B)
    exceed `threshold` (`pair_stability` with tied=False, all latents).
    """
    result = pair_stability(
        enc_a, dec_a, enc_b, dec_b, threshold, max_hungarian=max_hungarian
    )
    assert result.shared_fraction_enc_dec is not None
    assert result.mean_matched_encoder_cos is not None
    return StabilityResult(
        shared_fraction=result.shared_fraction_enc_dec,
        mean_matched_decoder_cos=result.mean_matched_decoder_cos,
        mean_matched_encoder_cos=result.mean_matched_encoder_cos,
        method=result.method,
    )


def _per_row(matching: LatentMatching, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Partner and cosine of each of A's n rows (-1 and 0 where unmatched)."""
    partner = np.full(n, -1, dtype=np.int64)
    cos = np.zeros(n, dtype=np.float64)
    partner[matching.row_ind] = matching.col_ind
    cos[matching.row_ind] = matching.cos
    return partner, cos
