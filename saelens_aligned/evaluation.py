"""SAEBench's core eval for any SAELens SAE against a live model, and its headline.

`run_core_eval` prepares the SAE the way SAEBench expects (decoder norms folded;
`hook_name`, `hook_layer`, `model_name`, `architecture_str` copied from SAELens 6
metadata onto `sae.cfg`), turns every compute flag on and returns SAEBench's own
metric groups plus per-feature statistics. `headline_metrics` picks the numbers a
summary table shows. Benchmarks reuse both.
"""

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from sae_lens.saes.sae import SAE


@dataclass(frozen=True)
class CoreEvalSettings:
    """How much data SAEBench's core eval reads.

    Attributes:
        batch_size_prompts: Prompts per model forward pass.
        n_eval_reconstruction_batches: Batches for the CE-loss and KL scores (each
            costs about four full model passes).
        n_eval_sparsity_variance_batches: Batches for L0, explained variance,
            cosine similarity, L2 ratio and feature densities (model passes stop at
            the hooked layer).
        progress: Show SAEBench's progress bars over batches.
    """

    batch_size_prompts: int = 8
    n_eval_reconstruction_batches: int = 4
    n_eval_sparsity_variance_batches: int = 16
    progress: bool = True


@dataclass(frozen=True)
class CoreEvalResult:
    """SAEBench core-eval output for one SAE.

    Attributes:
        metrics: SAEBench's metric groups (`model_behavior_preservation`,
            `model_performance_preservation`, `reconstruction_quality`, `shrinkage`,
            `sparsity`, `token_stats`) as it returns them.
        feature_density: Fraction of evaluated tokens on which each latent fired.
            [d_sae]
    """

    metrics: dict[str, dict[str, Any]]
    feature_density: list[float]


def prepare_for_saebench(sae: SAE[Any], model_name: str | None = None) -> SAE[Any]:
    """A copy of `sae` with decoder norms folded and SAEBench's cfg fields set."""
    from sae_bench.sae_bench_utils.general_utils import _standardize_sae_cfg

    sae = copy.deepcopy(sae)
    sae.fold_W_dec_norm()
    if model_name is not None:
        sae.cfg.metadata.model_name = model_name
    _standardize_sae_cfg(sae.cfg)
    return sae


def run_core_eval(
    sae: SAE[Any],
    model: Any,
    activation_store: Any,
    settings: CoreEvalSettings = CoreEvalSettings(),
    model_name: str | None = None,
) -> CoreEvalResult:
    """SAEBench's core eval of `sae` on `model`, every metric turned on.

    `activation_store` must read live model activations (not a cache): the CE-loss
    and KL scores splice the SAE into the model's forward pass.
    """
    from sae_bench.evals.core.eval_config import CoreEvalConfig
    from sae_bench.evals.core.main import run_evals

    prepared = prepare_for_saebench(sae, model_name)
    config = CoreEvalConfig(
        model_name=str(prepared.cfg.model_name),  # type: ignore[attr-defined]
        batch_size_prompts=settings.batch_size_prompts,
        n_eval_reconstruction_batches=settings.n_eval_reconstruction_batches,
        n_eval_sparsity_variance_batches=settings.n_eval_sparsity_variance_batches,
        compute_kl=True,
        compute_ce_loss=True,
        compute_l2_norms=True,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=True,
        compute_featurewise_weight_based_metrics=False,
    )
    with torch.no_grad():
        metrics, feature_metrics = run_evals(
            prepared, activation_store, model, config, verbose=settings.progress
        )
    return CoreEvalResult(
        metrics=metrics,
        feature_density=[float(x) for x in feature_metrics["feature_density"]],
    )


# (report label, metric group, metric name); order is the table's order.
HEADLINE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("CE-loss score", "model_performance_preservation", "ce_loss_score"),
    ("KL score", "model_behavior_preservation", "kl_div_score"),
    ("explained variance", "reconstruction_quality", "explained_variance"),
    ("cosine similarity", "reconstruction_quality", "cossim"),
    ("L2 ratio", "shrinkage", "l2_ratio"),
    ("L0", "sparsity", "l0"),
    ("CE loss with SAE", "model_performance_preservation", "ce_loss_with_sae"),
    ("CE loss without SAE", "model_performance_preservation", "ce_loss_without_sae"),
)


def headline_metrics(result: CoreEvalResult) -> dict[str, float]:
    """The summary-table numbers, dead/alive fractions included (a latent is dead
    when it never fired on the evaluated tokens)."""
    out = {
        label: float(result.metrics.get(group, {}).get(name, math.nan))
        for label, group, name in HEADLINE_METRICS
    }
    density = torch.tensor(result.feature_density)
    dead = float((density <= 0).float().mean()) if density.numel() else math.nan
    out["dead fraction"] = dead
    out["alive fraction"] = 1.0 - dead
    return out


def result_to_dict(result: CoreEvalResult) -> dict[str, Any]:
    return asdict(result)
