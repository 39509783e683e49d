"""Pure alignment math: scores, the two alignment forms, and summary statistics.

Shape suffixes follow SAEBench: ``D`` is ``d_in``, ``F`` is ``d_sae``. SAELens stores
encoder columns ``W_enc[:, i]`` (``W_enc_DF``) and decoder rows ``W_dec[i]``
(``W_dec_FD``). Nothing here touches modules, files or plots.
"""

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import stats

AlignmentForm = Literal["tied", "projected"]
ALIGNMENT_FORMS: tuple[AlignmentForm, ...] = ("tied", "projected")

# Squared norms below this are treated as degenerate (dead or zeroed features): the
# derived vector is then 0 instead of inf/NaN. Far below any live feature's norm².
DEGENERATE_SQ_NORM = 1e-12

# Thresholds of the summary statistics, named so reports and docs quote the same ones.
LOW_ALIGNMENT = 0.5
NEAR_ONE_TOLERANCE = 0.1
# Sarle's bimodality coefficient of a uniform distribution; values above it suggest
# two modes (Pfister et al. 2013, "Good things peak in pairs").
BIMODALITY_THRESHOLD = 5 / 9


def alignment_scores(W_enc_DF: torch.Tensor, W_dec_FD: torch.Tensor) -> torch.Tensor:
    """a_i = <e_i, d_i>: each feature's gain on its own decoder direction. [F]"""
    # Elementwise product and column sums: no transposed copy of either matrix.
    return (W_enc_DF * W_dec_FD.T).sum(dim=0)


def alignment_cosines(W_enc_DF: torch.Tensor, W_dec_FD: torch.Tensor) -> torch.Tensor:
    """cos(e_i, d_i) per feature; 0 for a degenerate (zero) column or row. [F]"""
    enc_norm_F = W_enc_DF.norm(dim=0)
    dec_norm_F = W_dec_FD.norm(dim=1)
    denom_F = (enc_norm_F * dec_norm_F).clamp_min(DEGENERATE_SQ_NORM)
    return alignment_scores(W_enc_DF, W_dec_FD) / denom_F


def effective_encoder(
    W_enc_DF: torch.Tensor, magnitude_scale_F: torch.Tensor | None = None
) -> torch.Tensor:
    """The encoder that produces feature values: `W_enc`, or `W_enc * scale` where a
    base architecture rescales its encoder per feature on the value path (Gated's
    magnitude path, scale = exp(r_mag)). Alignment is defined on this matrix."""
    return W_enc_DF if magnitude_scale_F is None else W_enc_DF * magnitude_scale_F


def tied_decoder(W_enc_DF: torch.Tensor) -> torch.Tensor:
    """The `tied` form: d_i = e_i / ||e_i||², so <e_i, d_i> = 1 and cos(e_i, d_i) = 1.

    Returns W_dec_FD as a transposed view of a [D, F] tensor: materialising the
    transpose would add a full-size copy per step for no gain, since matmuls read
    either layout.
    """
    sq_norm_F = W_enc_DF.pow(2).sum(dim=0).clamp_min(DEGENERATE_SQ_NORM)
    return (W_enc_DF / sq_norm_F).T


def projected_encoder(
    W_enc_DF: torch.Tensor,
    W_dec_FD: torch.Tensor,
    target_F: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """The `projected` form: move each encoder column onto <e_i, d_i> = target_i.

    e_i = v_i + (target_i - <v_i, d_i>) * d_i / ||d_i||². The correction is along d_i
    only, so the encoder may still turn away from its decoder (interference
    suppression). The map is affine in v with a linear part that does not depend on
    v, hence idempotent, smooth, and its Jacobian removes exactly the gradient
    component along d_i.
    """
    W_dec_T_DF = W_dec_FD.T
    sq_norm_F = W_dec_T_DF.pow(2).sum(dim=0).clamp_min(DEGENERATE_SQ_NORM)
    gap_F = target_F - alignment_scores(W_enc_DF, W_dec_FD)
    return W_enc_DF + W_dec_T_DF * (gap_F / sq_norm_F)


@dataclass(frozen=True)
class AlignmentSummary:
    """Distribution of the alignment scores of one SAE.

    Args:
        n_features: number of features summarised.
        mean: mean alignment score.
        std: standard deviation of the scores.
        min: smallest score.
        max: largest score.
        max_abs_deviation_from_one: max_i |a_i - 1|; ~0 for an aligned SAE.
        frac_below_half: fraction of features with a_i < 0.5 (low-gain, often dead).
        frac_near_one: fraction with |a_i - 1| <= 0.1.
        bimodality_coefficient: Sarle's b = (skew² + 1) / (excess kurtosis +
            3(n-1)²/((n-2)(n-3))), sample-corrected. b > 5/9 (the uniform
            distribution's value) suggests two modes. None when the scores are
            (numerically) constant, where skew and kurtosis are undefined.
        histogram_counts: counts per bin of `histogram_edges`.
        histogram_edges: bin edges, fixed to [-0.5, 1.5] in 0.02 steps (scores
            outside are clipped into the end bins) so histograms of different SAEs
            share bins and can be compared or averaged.
    """

    n_features: int
    mean: float
    std: float
    min: float
    max: float
    max_abs_deviation_from_one: float
    frac_below_half: float
    frac_near_one: float
    bimodality_coefficient: float | None
    histogram_counts: list[int]
    histogram_edges: list[float]

    @property
    def is_bimodal(self) -> bool:
        return (
            self.bimodality_coefficient is not None
            and self.bimodality_coefficient > BIMODALITY_THRESHOLD
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scalars(self) -> dict[str, float]:
        """The numeric fields only (no histogram), for logging and tables."""
        return {
            key: value
            for key, value in self.to_dict().items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }


HISTOGRAM_EDGES = np.round(np.linspace(-0.5, 1.5, 101), 6)


def bimodality_coefficient(scores: np.ndarray) -> float | None:
    """Sarle's bimodality coefficient; None for fewer than 4 or constant scores."""
    n = scores.size
    if n < 4 or float(np.std(scores)) < 1e-6:
        return None
    skew = float(stats.skew(scores, bias=False))
    excess_kurtosis = float(stats.kurtosis(scores, fisher=True, bias=False))
    small_sample = 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
    return (skew**2 + 1) / (excess_kurtosis + small_sample)


def summarize_alignment(scores_F: torch.Tensor | np.ndarray) -> AlignmentSummary:
    """Summary statistics and a fixed-bin histogram of alignment scores."""
    if isinstance(scores_F, torch.Tensor):
        scores_F = scores_F.detach().double().cpu().numpy()
    scores = np.asarray(scores_F, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("summarize_alignment needs at least one feature score.")
    counts, _ = np.histogram(
        np.clip(scores, HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1]), bins=HISTOGRAM_EDGES
    )
    return AlignmentSummary(
        n_features=int(scores.size),
        mean=float(scores.mean()),
        std=float(scores.std()),
        min=float(scores.min()),
        max=float(scores.max()),
        max_abs_deviation_from_one=float(np.abs(scores - 1).max()),
        frac_below_half=float((scores < LOW_ALIGNMENT).mean()),
        frac_near_one=float((np.abs(scores - 1) <= NEAR_ONE_TOLERANCE).mean()),
        bimodality_coefficient=bimodality_coefficient(scores),
        histogram_counts=[int(c) for c in counts],
        histogram_edges=[float(e) for e in HISTOGRAM_EDGES],
    )
