"""Alignment diagnostics for any SAELens SAE: stock or aligned, trained or loaded."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sae_lens.saes.sae import SAE
from scipy import stats

from saelens_aligned.aligned_sae import AlignedTrainingSAE
from saelens_aligned.alignment import (
    LOW_ALIGNMENT,
    NEAR_ONE_TOLERANCE,
    AlignmentSummary,
    alignment_cosines,
    alignment_scores,
    effective_encoder,
    summarize_alignment,
)


def feature_encoder(sae: SAE[Any]) -> torch.Tensor:
    """The encoder that produces `sae`'s feature values, in float32: W_enc, or for
    Gated SAEs the magnitude path W_enc * exp(r_mag). [d_in, d_sae]"""
    if isinstance(sae, AlignedTrainingSAE):
        sae.align_if_stale()
        return sae.effective_encoder().detach().float()
    r_mag = getattr(sae, "r_mag", None)
    scale_F = r_mag.detach().exp() if isinstance(r_mag, torch.Tensor) else None
    return effective_encoder(sae.W_enc.detach(), scale_F).float()


@torch.no_grad()
def sae_alignment_scores(sae: SAE[Any]) -> torch.Tensor:
    """a_i = <e_i, d_i> for every feature of `sae`. [d_sae]"""
    return alignment_scores(feature_encoder(sae), sae.W_dec.detach().float())


@torch.no_grad()
def sae_alignment_cosines(sae: SAE[Any]) -> torch.Tensor:
    """cos(e_i, d_i) for every feature of `sae`. [d_sae]"""
    return alignment_cosines(feature_encoder(sae), sae.W_dec.detach().float())


def sae_alignment_summary(sae: SAE[Any]) -> AlignmentSummary:
    """Mean, low/near-one fractions, bimodality and histogram of `sae`'s scores."""
    return summarize_alignment(sae_alignment_scores(sae))


# --------------------------------------------------------------------------- #
# Alignment against feature density
# --------------------------------------------------------------------------- #

# A live feature firing on fewer than this fraction of tokens counts as rare
# (SAELens' dead-feature window and SAEBench report densities on this scale).
RARE_DENSITY = 1e-4


@dataclass(frozen=True)
class AlignmentBand:
    """The features whose alignment score lies in [low, high).

    Args:
        low: lower edge (inclusive); -inf for the first band.
        high: upper edge (exclusive); inf for the last band.
        n_features: features in the band.
        frac_dead: fraction of them that never fired on the evaluated tokens.
        frac_rare: fraction that fired, but on fewer than `rare_density` of them.
        median_density: median firing frequency, dead features counted as 0;
            nan for an empty band.
    """

    low: float
    high: float
    n_features: int
    frac_dead: float
    frac_rare: float
    median_density: float

    @property
    def label(self) -> str:
        if math.isinf(self.low):
            return f"a < {self.high:g}"
        if math.isinf(self.high):
            return f"a >= {self.low:g}"
        return f"{self.low:g} <= a < {self.high:g}"


@dataclass(frozen=True)
class AlignmentDensityRelation:
    """How the alignment scores of one SAE relate to how often its features fire.

    Args:
        spearman: Spearman rank correlation of a_i with feature density over all
            features (dead ones tie at density 0); None when either is constant.
        spearman_alive: the same over the features that fired at least once; None
            with fewer than 3 of them or a constant input.
        rare_density: density below which a live feature counts as rare.
        bands: one row per alignment band, lowest scores first.
    """

    spearman: float | None
    spearman_alive: float | None
    rare_density: float
    bands: list[AlignmentBand]

    def rows(self) -> list[dict[str, Any]]:
        """The bands as table rows (label first), e.g. for a pandas DataFrame."""
        return [
            {
                "alignment band": band.label,
                "features": band.n_features,
                "dead fraction": band.frac_dead,
                f"rare fraction (< {self.rare_density:g})": band.frac_rare,
                "median density": band.median_density,
            }
            for band in self.bands
        ]


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(stats.spearmanr(x, y).statistic)


def relate_alignment_to_density(
    scores_F: torch.Tensor | np.ndarray | Sequence[float],
    density_F: torch.Tensor | np.ndarray | Sequence[float],
    band_edges: Sequence[float] = (LOW_ALIGNMENT, 1 - NEAR_ONE_TOLERANCE),
    rare_density: float = RARE_DENSITY,
) -> AlignmentDensityRelation:
    """Relate alignment scores a_i to feature densities (the fraction of tokens
    on which each feature fired, e.g. SAEBench's core-eval `feature_density`).

    Returns the rank correlation of the two, and for each alignment band (split
    at `band_edges`, by default a < 0.5, 0.5 <= a < 0.9, a >= 0.9) the fraction of
    dead and rare features: whether low-alignment features are the dead ones.
    """
    scores = _as_array(scores_F)
    density = _as_array(density_F)
    if scores.shape != density.shape:
        raise ValueError(
            f"{scores.size} alignment scores but {density.size} densities: both "
            "must have one value per feature."
        )
    edges = [-math.inf, *sorted(float(e) for e in band_edges), math.inf]
    bands = []
    for low, high in zip(edges[:-1], edges[1:]):
        in_band = (scores >= low) & (scores < high)
        band_density = density[in_band]
        n = int(in_band.sum())
        bands.append(
            AlignmentBand(
                low=low,
                high=high,
                n_features=n,
                frac_dead=float((band_density <= 0).mean()) if n else math.nan,
                frac_rare=float(
                    ((band_density > 0) & (band_density < rare_density)).mean()
                )
                if n
                else math.nan,
                median_density=float(np.median(band_density)) if n else math.nan,
            )
        )
    alive = density > 0
    return AlignmentDensityRelation(
        spearman=_spearman(scores, density),
        spearman_alive=_spearman(scores[alive], density[alive]),
        rare_density=rare_density,
        bands=bands,
    )


def _as_array(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().double().cpu().numpy()
    return np.asarray(values, dtype=np.float64).ravel()
