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


def feature_major(W_enc_DF: torch.Tensor) -> torch.Tensor:
    """`W_enc_DF` stored with each encoder column e_i contiguous, as each decoder row
    d_i already is: same shape and values, the transpose of a contiguous [F, D].

    Every per-feature operation of the alignment math (norms, scores, the maps and
    their gradients) then reads e_i and d_i with unit stride. In SAELens' layout
    (row-major W_enc) each of them is a transposed, cache-hostile pass, about 8x
    slower on CPU; the matmuls take either layout at the same speed.
    """
    return W_enc_DF.T.contiguous().T


def is_feature_major(W_enc_DF: torch.Tensor) -> bool:
    return W_enc_DF.T.is_contiguous()


class _StoredTiedDecoder(torch.autograd.Function):
    """The `tied` map d_i = e_i / ||e_i||², with e_i = W_enc[:, i] * scale_i, whose
    value is already stored: forward returns `W_dec_FD` itself (no pass, no copy) and
    backward is the map's closed-form gradient.

    With s_i = max(||e_i||², DEGENERATE_SQ_NORM), g_i the gradient w.r.t. d_i and
    c_i = <g_i, d_i>:  grad e_i = g_i / s_i - 2 c_i d_i  (the second term only where
    the clamp is inactive, as autograd of the clamped map gives), and, because the map
    divides by the scale it multiplies by, grad scale_i = <grad e_i, e_i> / scale_i
    = (c_i - 2 c_i [live]) / scale_i.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        _W_enc_DF: torch.Tensor,  # an input only so that its gradient is returned
        scale_F: torch.Tensor | None,
        W_dec_FD: torch.Tensor,
        sq_norm_F: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(W_dec_FD, sq_norm_F, scale_F)
        return W_dec_FD.view_as(W_dec_FD)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_FD: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        W_dec_FD, sq_norm_F, scale_F = ctx.saved_tensors
        inv_sq_norm_F = sq_norm_F.clamp_min(DEGENERATE_SQ_NORM).reciprocal()
        c_F = (grad_FD * W_dec_FD).sum(dim=-1)
        live_c_F = torch.where(sq_norm_F >= DEGENERATE_SQ_NORM, c_F, 0)
        grad_scale_F = None
        if scale_F is not None:
            # grad W_enc = grad e * scale, folded into the per-feature factors.
            inv_sq_norm_F = inv_sq_norm_F * scale_F
            if ctx.needs_input_grad[1]:
                grad_scale_F = (c_F - 2 * live_c_F) / scale_F
            live_c_F = live_c_F * scale_F
        grad_enc_FD = None
        if ctx.needs_input_grad[0]:
            grad_enc_FD = W_dec_FD * (-2 * live_c_F).unsqueeze(-1)
            grad_enc_FD.addcmul_(grad_FD, inv_sq_norm_F.unsqueeze(-1))
        return (
            None if grad_enc_FD is None else grad_enc_FD.T,
            grad_scale_F,
            None,
            None,
        )


def stored_tied_decoder(
    W_enc_DF: torch.Tensor,
    W_dec_FD: torch.Tensor,
    sq_norm_F: torch.Tensor,
    magnitude_scale_F: torch.Tensor | None = None,
) -> torch.Tensor:
    """`tied_decoder(effective_encoder(W_enc_DF, magnitude_scale_F))` without forming
    it: `W_dec_FD` must already hold that value and `sq_norm_F` the effective
    encoder's squared column norms before clamping (`write_tied_decoder_` keeps both).
    Differentiable w.r.t. `W_enc_DF` and the scale. [F, D]"""
    return _StoredTiedDecoder.apply(W_enc_DF, magnitude_scale_F, W_dec_FD, sq_norm_F)


@torch.no_grad()
def write_tied_decoder_(
    W_dec_FD: torch.Tensor,
    W_enc_DF: torch.Tensor,
    magnitude_scale_F: torch.Tensor | None = None,
) -> torch.Tensor:
    """Write `tied_decoder(effective_encoder(W_enc_DF, scale))` into `W_dec_FD` in
    place, in two passes (norms, then the write); returns the unclamped squared
    norms of the effective encoder's columns. [F]"""
    sq_norm_F = effective_sq_norms(W_enc_DF, magnitude_scale_F)
    clamped_F = sq_norm_F.clamp_min(DEGENERATE_SQ_NORM).unsqueeze(-1)
    if magnitude_scale_F is None:
        torch.div(W_enc_DF.T, clamped_F, out=W_dec_FD)
    else:
        torch.mul(W_enc_DF.T, magnitude_scale_F.unsqueeze(-1) / clamped_F, out=W_dec_FD)
    return sq_norm_F


def effective_sq_norms(
    W_enc_DF: torch.Tensor, magnitude_scale_F: torch.Tensor | None = None
) -> torch.Tensor:
    """||e_i||² of `effective_encoder(W_enc_DF, magnitude_scale_F)`, unclamped. [F]"""
    sq_norm_F = W_enc_DF.pow(2).sum(dim=0)
    return (
        sq_norm_F
        if magnitude_scale_F is None
        else sq_norm_F * magnitude_scale_F.square()
    )


class _StoredProjectedEncoder(torch.autograd.Function):
    """The `projected` map at a point already on its constraint surface: forward
    returns the stored `W_enc_DF` itself, backward is the map's gradient there.

    e_i = v_i + r_i d_i / q_i with r_i = t_i - <v_i, d_i> and q_i = max(||d_i||²,
    DEGENERATE_SQ_NORM). With g_i the gradient w.r.t. e_i and c_i = <g_i, d_i> / q_i:
    grad v_i = g_i - c_i d_i, grad t_i = c_i, and grad d_i = -c_i v_i + (r_i / q_i)
    g_i (the term 2 r_i c_i d_i / q_i of the norm's derivative vanishes: r_i = 0
    wherever the clamp is inactive). `residual_F` is r_i after the snap: 0 for every
    feature the snap could align, t_i - <v_i, d_i> for a degenerate decoder row.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        W_enc_DF: torch.Tensor,
        W_dec_FD: torch.Tensor,
        _target_F: torch.Tensor | None,  # an input only for its gradient
        sq_norm_F: torch.Tensor,
        residual_F: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(W_enc_DF, W_dec_FD, sq_norm_F, residual_F)
        return W_enc_DF.view_as(W_enc_DF)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_DF: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        W_enc_DF, W_dec_FD, sq_norm_F, residual_F = ctx.saved_tensors
        inv_sq_norm_F = sq_norm_F.clamp_min(DEGENERATE_SQ_NORM).reciprocal()
        grad_FD = grad_DF.T  # feature-major when W_enc is, like every operand here
        c_F = (grad_FD * W_dec_FD).sum(dim=-1) * inv_sq_norm_F
        grad_enc_FD = grad_dec_FD = None
        if ctx.needs_input_grad[0]:
            grad_enc_FD = torch.addcmul(grad_FD, W_dec_FD, -c_F.unsqueeze(-1))
        if ctx.needs_input_grad[1]:
            grad_dec_FD = W_enc_DF.T * (-c_F).unsqueeze(-1)
            grad_dec_FD.addcmul_(grad_FD, (residual_F * inv_sq_norm_F).unsqueeze(-1))
        return (
            None if grad_enc_FD is None else grad_enc_FD.T,
            grad_dec_FD,
            c_F if ctx.needs_input_grad[2] else None,
            None,
            None,
        )


def stored_projected_encoder(
    W_enc_DF: torch.Tensor,
    W_dec_FD: torch.Tensor,
    sq_norm_F: torch.Tensor,
    residual_F: torch.Tensor,
    target_F: torch.Tensor | None = None,
) -> torch.Tensor:
    """`projected_encoder(W_enc_DF, W_dec_FD, target_F)` where `W_enc_DF` is already
    projected (`project_encoder_` keeps it so, and returns `sq_norm_F` and
    `residual_F`): its value is `W_enc_DF` itself, differentiable w.r.t. both
    matrices and the target. [D, F]"""
    return _StoredProjectedEncoder.apply(
        W_enc_DF, W_dec_FD, target_F, sq_norm_F, residual_F
    )


@torch.no_grad()
def project_encoder_(
    W_enc_DF: torch.Tensor,
    W_dec_FD: torch.Tensor,
    target_F: torch.Tensor | float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project `W_enc_DF` in place (`projected_encoder`), in three passes (decoder
    norms, scores, the update). Returns the decoder rows' unclamped squared norms and
    each feature's residual t_i - <e_i, d_i> after the projection, computed from the
    map rather than re-measured: exactly 0 wherever ||d_i||² >= DEGENERATE_SQ_NORM,
    so a resumed run's gradients match an uninterrupted one's. ([F], [F])"""
    sq_norm_F = W_dec_FD.pow(2).sum(dim=-1)
    clamped_F = sq_norm_F.clamp_min(DEGENERATE_SQ_NORM)
    gap_F = target_F - alignment_scores(W_enc_DF, W_dec_FD)
    W_enc_DF.addcmul_(W_dec_FD.T, (gap_F / clamped_F).unsqueeze(0))
    return sq_norm_F, projection_residual(gap_F, sq_norm_F)


def projection_residual(gap_F: torch.Tensor, sq_norm_F: torch.Tensor) -> torch.Tensor:
    """t_i - <e_i, d_i> after projecting an encoder whose gap before was `gap_F`:
    gap * (1 - ||d||² / max(||d||², DEGENERATE_SQ_NORM)), exactly 0 unless degenerate.
    [F]"""
    return gap_F * (1 - sq_norm_F / sq_norm_F.clamp_min(DEGENERATE_SQ_NORM))


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
