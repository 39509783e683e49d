"""Explained variance about the mean recovered from SAEBench 0.6.0's value:
checked against SAEBench's own aggregation code and SAELens' calculator on
activations with a large mean, where SAEBench's value is far off."""

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from sae_bench.evals.core.main import get_sparsity_and_variance_metrics
from sae_lens.evals import ExplainedVarianceCalculator

from saelens_aligned.explained_variance import (
    MomentsAccumulator,
    explained_variance,
    explained_variance_from_saebench,
    residual_from_saebench,
    saebench_explained_variance,
)

D_IN, BATCHES, PROMPTS, CONTEXT = 64, 6, 4, 16
BOS = 0


class ReplayedModel:
    """Stands in for the LM: `run_with_cache` hands back the next stored batch
    of activations under the hook's name."""

    def __init__(self, acts: list[torch.Tensor], hook: str) -> None:
        self.acts, self.hook, self.position = acts, hook, 0

    def run_with_cache(self, *_: Any, **__: Any) -> tuple[None, dict[str, Any]]:
        acts = self.acts[self.position]
        self.position += 1
        return None, {self.hook: acts}


MEAN_D = 3.0 * torch.randn(D_IN, generator=torch.Generator().manual_seed(7))


class ShrinkingSAE:
    """A fixed reconstruction that keeps the mean and 40% of the rest: x̂ =
    0.4 x + 0.6 μ, so R = 0.36 Var(x) and explained variance about the mean is
    0.64. The few attributes SAEBench reads."""

    def __init__(self) -> None:
        self.cfg = SimpleNamespace(
            hook_name="blocks.0.hook_resid_post",
            hook_head_index=None,
            hook_layer=0,
            d_sae=D_IN,
        )
        self.device = torch.device("cpu")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return 0.4 * f + 0.6 * MEAN_D


def activations_with_mean(seed: int = 0) -> list[torch.Tensor]:
    """Batches of activations whose mean carries most of E‖x‖² (as residual
    streams do). [prompts, context, d_in] each"""
    generator = torch.Generator().manual_seed(seed)
    return [
        MEAN_D + torch.randn(PROMPTS, CONTEXT, D_IN, generator=generator)
        for _ in range(BATCHES)
    ]


def token_batches(seed: int = 0) -> list[torch.Tensor]:
    """Token ids with a few BOS tokens to mask, a different number per batch
    (so SAEBench's per-batch means and SAELens' token weighting differ)."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for b in range(BATCHES):
        tokens = torch.randint(1, 50, (PROMPTS, CONTEXT), generator=generator)
        tokens[:, 0] = BOS
        tokens[0, 1 : 1 + b] = BOS
        batches.append(tokens)
    return batches


def saebench_value(acts: list[torch.Tensor], tokens: list[torch.Tensor]) -> float:
    """SAEBench 0.6.0's `explained_variance`, by its own code."""
    sae = ShrinkingSAE()
    batches = iter(tokens)
    store = SimpleNamespace(get_batch_tokens=lambda _prompts: next(batches))
    metrics, _ = get_sparsity_and_variance_metrics(
        sae,  # type: ignore[arg-type]
        ReplayedModel(acts, sae.cfg.hook_name),  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        n_batches=BATCHES,
        compute_l2_norms=False,
        compute_sparsity_metrics=False,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=False,
        eval_batch_size_prompts=PROMPTS,
        model_kwargs={},
        ignore_tokens={BOS},
    )
    return metrics["explained_variance"]


def direct(acts: list[torch.Tensor], tokens: list[torch.Tensor]):
    """(SAELens' calculator, our accumulator) over the unmasked tokens."""
    sae, calculator = ShrinkingSAE(), ExplainedVarianceCalculator()
    accumulator = MomentsAccumulator(D_IN)
    for acts_BLD, tokens_BL in zip(acts, tokens):
        x_ND = acts_BLD[tokens_BL != BOS]
        x_hat_ND = sae.decode(sae.encode(x_ND))
        calculator.add_batch(x_hat_ND, x_ND)
        accumulator.add_batch(x_ND, x_hat_ND)
    return calculator, accumulator


def test_saebench_value_is_variance_about_zero() -> None:
    """SAEBench's value is 1 − R / (S − (S/d)²) with its per-batch means."""
    acts, tokens = activations_with_mean(), token_batches()
    _, accumulator = direct(acts, tokens)
    moments = accumulator.moments()
    expected = saebench_explained_variance(
        accumulator.residual, moments.mean_squared_norm, D_IN
    )
    assert saebench_value(acts, tokens) == pytest.approx(expected, abs=1e-6)


def test_recovers_saelens_explained_variance_where_saebench_is_far_off() -> None:
    acts, tokens = activations_with_mean(), token_batches()
    calculator, accumulator = direct(acts, tokens)
    moments = accumulator.moments()
    about_zero = saebench_value(acts, tokens)
    recovered = explained_variance_from_saebench(about_zero, moments)
    saelens = calculator.compute()
    # The mean carries most of E‖x‖²: SAEBench's value counts it as explained.
    assert moments.mean_fraction > 0.85
    assert saelens == pytest.approx(0.64, abs=0.05)
    assert about_zero - saelens > 0.3
    # Recovered with SAEBench's per-batch weighting, which differs from SAELens'
    # token weighting only through the unequal masked counts per batch.
    assert recovered == pytest.approx(saelens, abs=1e-4)
    batch_weighted = explained_variance(
        accumulator.residual, moments.mean_squared_norm, moments.squared_norm_of_mean
    )
    assert recovered == pytest.approx(batch_weighted, abs=1e-5)
    token_weighted = explained_variance(
        accumulator.token_residual,
        moments.token_mean_squared_norm,
        moments.token_squared_norm_of_mean,
    )
    # SAELens sums each batch in float32 before accumulating in float64.
    assert token_weighted == pytest.approx(saelens, abs=1e-5)


def test_equal_batches_make_the_two_weightings_agree() -> None:
    acts = activations_with_mean(seed=1)
    tokens = [torch.ones(PROMPTS, CONTEXT, dtype=torch.long) for _ in acts]
    calculator, accumulator = direct(acts, tokens)
    recovered = explained_variance_from_saebench(
        saebench_value(acts, tokens), accumulator.moments()
    )
    assert recovered == pytest.approx(calculator.compute(), abs=1e-5)


def test_residual_round_trip() -> None:
    residual = residual_from_saebench(
        saebench_explained_variance(3.0, 100.0, 8), 100.0, 8
    )
    assert residual == pytest.approx(3.0)
