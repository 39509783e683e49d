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

The matching itself is `saelens_aligned.latent_matching.match_latents` (shared
with the plugin's dashboards); `pair_stability` and `shared_latent_fraction` are pure (arrays in,
numbers out); `benchmarks.sweeps.stability_record.point_stability` reads the SAEs of one
sweep point from disk and builds its stability record.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from saelens_aligned.latent_matching import (
    HUNGARIAN_MAX_N,
    LatentMatching,
    match_latents,
)


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
