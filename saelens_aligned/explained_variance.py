"""Explained variance about the mean, and its recovery from SAEBench 0.6's value.

Explained variance is 1 − R / V: R the mean squared reconstruction error
E‖x − x̂‖², V the variance of the activations summed over dimensions,
E‖x‖² − ‖E x‖². SAELens computes exactly this since 6.45.1 (issue #659, PR
#665: `sae_lens.evals.ExplainedVarianceCalculator`, float64 sums, every token
weighted equally).

**SAEBench 0.6.0's core eval** (`sae_bench/evals/core/main.py`,
`get_sparsity_and_variance_metrics`) meant to compute the same, but its
"mean activation per dimension" is the mean of x², not of x, and `torch.cat(...)
.mean(dim=0)` then averages it over dimensions into one number S/d. Its value is

    EV₀ = 1 − R / (S − (S/d)²),

with d = d_in, S = the mean over batches of each batch's mean ‖x‖² and R = the
mean over batches of each batch's mean ‖x − x̂‖² (special tokens masked out of
both). Where (S/d)² is small beside S, EV₀ is in effect variance about zero: it
counts the mean of the activations as explained and overstates every level
(residual streams carry a large mean); where S exceeds d², the "variance" is
negative and EV₀ exceeds 1 (SmolLM2-135M's layer 27). Given EV₀, d and S, R is
recovered exactly:

    R = (1 − EV₀)(S − (S/d)²),

and with ‖μ‖², μ the mean over batches of each batch's mean x, the value about
the mean is 1 − R / (S − ‖μ‖²) (`explained_variance_from_saebench`).

**Weighting.** SAEBench averages per-batch means; SAELens weights every token
equally. The two agree when every batch holds the same number of unmasked
tokens. Our evaluation batches differ in that count by at most two tokens in a
thousand (BOS, masked, starts every sequence and every document), and on the shipped SAEs'
evaluation sets the two weightings differ by less than 1e-4 in explained
variance (the moments record both, `SaebenchMoments.token_*`;
benchmarks/results/README.md gives the measured gaps). The recovered value uses
SAEBench's weighting throughout, so it is exact for the R that SAEBench
measured.

Shape suffixes follow SAEBench: ``N`` tokens, ``D`` d_in. Nothing here touches
models, files or plots.
"""

from dataclasses import dataclass

import torch

FORMULA = "about_mean"
"""Names the formula in records: 1 − E‖x − x̂‖² / (E‖x‖² − ‖E x‖²), SAELens ≥ 6.45.1."""

FIRST_CORRECT_SAELENS = (6, 45, 1)
"""The first SAELens release whose `ExplainedVarianceCalculator` (and so its
synthetic-data eval) computes explained variance about the mean."""

SAELENS_CALCULATOR = {
    "formula": FORMULA,
    "computed_by": "sae_lens.evals.ExplainedVarianceCalculator",
    "weighting": "every token (sample) equally",
}
"""Provenance of a value SAELens computed directly (its synthetic-data eval)."""

# A variance this small means constant activations: SAELens returns 1 for an
# exact reconstruction of them and 0 otherwise; so do we.
DEGENERATE_VARIANCE = 1e-10


def explained_variance(
    residual: float, mean_squared_norm: float, squared_norm_of_mean: float
) -> float:
    """1 − R / (S − ‖μ‖²): explained variance about the mean (SAELens ≥ 6.45.1)."""
    variance = mean_squared_norm - squared_norm_of_mean
    if variance < DEGENERATE_VARIANCE:
        return 1.0 if residual < DEGENERATE_VARIANCE else 0.0
    return 1.0 - residual / variance


def saebench_denominator(mean_squared_norm: float, d_in: int) -> float:
    """S − (S/d)²: SAEBench 0.6.0's "total variance" (module docstring)."""
    return mean_squared_norm - (mean_squared_norm / d_in) ** 2


def saebench_explained_variance(
    residual: float, mean_squared_norm: float, d_in: int
) -> float:
    """EV₀ = 1 − R / (S − (S/d)²): the value SAEBench 0.6.0 reports."""
    return 1.0 - residual / saebench_denominator(mean_squared_norm, d_in)


def residual_from_saebench(
    saebench_value: float, mean_squared_norm: float, d_in: int
) -> float:
    """R = (1 − EV₀)(S − (S/d)²): the mean squared error SAEBench measured."""
    return (1.0 - saebench_value) * saebench_denominator(mean_squared_norm, d_in)


@dataclass(frozen=True)
class SaebenchMoments:
    """An evaluation set's moments as SAEBench core's variance pass weights them.

    Args:
        d_in: Width of the activations.
        n_batches: Batches of the pass.
        tokens: Unmasked tokens per batch.
        mean_squared_norm: S, the mean over batches of each batch's mean ‖x‖².
        squared_norm_of_mean: ‖μ‖², μ the mean over batches of each batch's
            mean x.
        token_mean_squared_norm: E‖x‖² with every token weighted equally
            (SAELens' weighting).
        token_squared_norm_of_mean: ‖E x‖², every token weighted equally.
    """

    d_in: int
    n_batches: int
    tokens: tuple[int, ...]
    mean_squared_norm: float
    squared_norm_of_mean: float
    token_mean_squared_norm: float
    token_squared_norm_of_mean: float

    @property
    def variance(self) -> float:
        """S − ‖μ‖²: the variance about the mean, summed over dimensions."""
        return self.mean_squared_norm - self.squared_norm_of_mean

    @property
    def mean_fraction(self) -> float:
        """‖μ‖² / S: the share of E‖x‖² that is the mean, which EV₀ counts as
        explained variance."""
        return self.squared_norm_of_mean / self.mean_squared_norm


def explained_variance_from_saebench(
    saebench_value: float, moments: SaebenchMoments
) -> float:
    """Explained variance about the mean of an SAE that SAEBench 0.6.0 scored
    `saebench_value` on the evaluation set of `moments` (module docstring)."""
    residual = residual_from_saebench(
        saebench_value, moments.mean_squared_norm, moments.d_in
    )
    return explained_variance(
        residual, moments.mean_squared_norm, moments.squared_norm_of_mean
    )


class MomentsAccumulator:
    """Accumulates `SaebenchMoments` batch by batch, in float64, and optionally
    the residual R of a reconstruction under both weightings (a direct
    computation to check a recovered value against).

    Each batch contributes its mean (SAEBench's weighting) and its sums (SAELens'
    weighting); an empty batch (every token masked) contributes NaN to the
    first, as SAEBench's mean of an empty tensor does."""

    def __init__(self, d_in: int) -> None:
        self.d_in = d_in
        self.tokens: list[int] = []
        self._batch_sq_norm: list[float] = []
        self._batch_mean_D: list[torch.Tensor] = []
        self._batch_residual: list[float] = []
        self._sum_D = torch.zeros(d_in, dtype=torch.float64)
        self._sum_sq_norm = 0.0
        self._sum_residual = 0.0

    def add_batch(
        self, x_ND: torch.Tensor, x_hat_ND: torch.Tensor | None = None
    ) -> None:
        """One batch of (unmasked) activations and, optionally, their
        reconstructions. [tokens, d_in] each."""
        x_ND = x_ND.detach().to("cpu", torch.float64)
        sq_norm_N = x_ND.pow(2).sum(dim=-1)
        self.tokens.append(int(x_ND.shape[0]))
        self._batch_sq_norm.append(float(sq_norm_N.mean()))
        self._batch_mean_D.append(x_ND.mean(dim=0))
        self._sum_D += x_ND.sum(dim=0)
        self._sum_sq_norm += float(sq_norm_N.sum())
        if x_hat_ND is not None:
            x_hat_ND = x_hat_ND.detach().to("cpu", torch.float64)
            residual_N = (x_ND - x_hat_ND).pow(2).sum(dim=-1)
            self._batch_residual.append(float(residual_N.mean()))
            self._sum_residual += float(residual_N.sum())

    def moments(self) -> SaebenchMoments:
        n_tokens = sum(self.tokens)
        mean_D = torch.stack(self._batch_mean_D).mean(dim=0)
        token_mean_D = self._sum_D / n_tokens
        return SaebenchMoments(
            d_in=self.d_in,
            n_batches=len(self.tokens),
            tokens=tuple(self.tokens),
            mean_squared_norm=sum(self._batch_sq_norm) / len(self._batch_sq_norm),
            squared_norm_of_mean=float(mean_D.pow(2).sum()),
            token_mean_squared_norm=self._sum_sq_norm / n_tokens,
            token_squared_norm_of_mean=float(token_mean_D.pow(2).sum()),
        )

    @property
    def residual(self) -> float:
        """R as SAEBench weights it (mean of per-batch means)."""
        return sum(self._batch_residual) / len(self._batch_residual)

    @property
    def token_residual(self) -> float:
        """R with every token weighted equally (SAELens)."""
        return self._sum_residual / sum(self.tokens)
