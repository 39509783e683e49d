"""A fresh evaluation writes explained variance about the mean, recovered from
SAEBench's value over exactly the tokens SAEBench read: checked against a direct
float64 computation on the replayed tokens, on the embedded model and corpus at
a tiny budget."""

from typing import Any

import pytest
import torch
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

from saelens_aligned.explained_variance import (
    explained_variance,
    saebench_explained_variance,
)
from saelens_aligned.pipeline.eval_moments import RECORD_KEY, eval_set_moments
from saelens_aligned.pipeline.evaluation import (
    EvalBudget,
    eval_activation_store,
    eval_set_of,
    evaluate,
    prepare_for_saebench,
)
from saelens_aligned.pipeline.source import Source, load_source_model, resolve_source

BUDGET = EvalBudget(
    batch_size_prompts=2,
    n_eval_reconstruction_batches=1,
    n_eval_sparsity_variance_batches=3,
    progress=False,
)


@pytest.fixture(scope="module")
def lm() -> tuple[Any, Any]:
    resolved = resolve_source(Source(context_size=64))
    return resolved, load_source_model(resolved)


def small_sae(resolved: Any) -> StandardSAE:
    """A random SAE whose decoder bias is far from the activations' mean, so
    the two explained variances differ."""
    torch.manual_seed(0)
    cfg = StandardSAEConfig(d_in=576, d_sae=64)
    cfg.metadata.hook_name = resolved.source.hook
    cfg.metadata.model_name = resolved.model_name
    cfg.metadata.context_size = resolved.source.context_size
    cfg.metadata.prepend_bos = True
    return StandardSAE(cfg)


def test_evaluate_writes_explained_variance_about_the_mean(lm) -> None:
    resolved, model = lm
    sae = small_sae(resolved)
    result = evaluate(sae, model, resolved, BUDGET)
    quality = result.saebench_core["reconstruction_quality"]

    # The same tokens, replayed by hand, with the SAE's reconstructions.
    eval_set = eval_set_of(resolved, BUDGET, True, "eval")
    store = eval_activation_store(resolved, model, sae, BUDGET)
    with torch.no_grad():
        moments, direct = eval_set_moments(
            eval_set, store, model, prepare_for_saebench(sae, resolved.model_name)
        )
    # Exactly SAEBench's tokens: its own value is reproduced.
    assert quality["explained_variance"] == pytest.approx(
        saebench_explained_variance(direct.residual, moments.mean_squared_norm, 576),
        abs=1e-4,
    )
    about_mean = explained_variance(
        direct.residual, moments.mean_squared_norm, moments.squared_norm_of_mean
    )
    assert quality[RECORD_KEY] == pytest.approx(about_mean, abs=1e-4)
    assert result.metrics["explained_variance"] == quality[RECORD_KEY]
    assert abs(quality["explained_variance"] - quality[RECORD_KEY]) > 0.01
    assert result.explained_variance["eval_set"] == eval_set.key
    assert "skipped_batches=1" in eval_set.key
