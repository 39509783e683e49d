"""The one evaluation: SAEBench's core eval against the live model, as SAEBench
runs it, plus our alignment summary; optionally feature densities over a long
window of held-out cached activations.

`evaluate` prepares the SAE the way SAEBench expects (decoder norms folded;
`hook_name`, `hook_layer`, `model_name`, `architecture_str` copied from SAELens 6
metadata onto `sae.cfg`), turns every compute flag on, leaves BOS/EOS/pad tokens
out as SAEBench's own entry point does (`ignore_tokens`), and returns flat
snake_case metrics (`METRIC_KEYS`) beside SAEBench's own metric groups. Display
labels belong to whoever renders a table, never to the data.

SAEBench 0.6.0's `explained_variance` is variance about zero
(`saelens_aligned.explained_variance`). `evaluate` adds explained variance
about the mean (SAELens ≥ 6.45.1's formula) to SAEBench's
`reconstruction_quality` group as `explained_variance_about_mean`, recovered
exactly from SAEBench's value and the evaluation set's moments
(`pipeline.eval_moments`, computed once per process per evaluation set); the
flat `explained_variance` is that value. SAEBench's own keys stay as it wrote
them.
"""

import copy
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from sae_lens.saes.sae import SAE

from saelens_aligned.diagnostics import sae_alignment_summary
from saelens_aligned.pipeline.eval_moments import (
    RECORD_KEY,
    EvalSet,
    RecoveredExplainedVariance,
    moments_for,
)
from saelens_aligned.pipeline.models import special_token_ids
from saelens_aligned.pipeline.source import ResolvedSource
from saelens_aligned.pipeline.text import load_corpus_split
from saelens_aligned.pipeline.transformer_lens_view import same_activation


@dataclass(frozen=True)
class EvalBudget:
    """How much data the evaluation reads. Field names are SAEBench's
    (`CoreEvalConfig`); every window size goes into the result (`windows`).

    Attributes:
        batch_size_prompts: Prompts (sequences of the source's context size) per
            model forward pass.
        n_eval_reconstruction_batches: Batches for the CE-loss and KL scores (each
            costs about three full model passes); 0 skips both.
        n_eval_sparsity_variance_batches: Batches for L0, explained variance,
            cosine similarity, L2 ratio and feature densities (model passes stop
            at the hooked layer).
        exclude_special_tokens: Leave BOS, EOS and pad tokens out of every metric,
            as SAEBench's core entry point does.
        progress: Show SAEBench's progress bars over batches.
    """

    batch_size_prompts: int = 8
    n_eval_reconstruction_batches: int = 8
    n_eval_sparsity_variance_batches: int = 32
    exclude_special_tokens: bool = True
    progress: bool = True

    def windows(self, context_size: int) -> dict[str, int]:
        """Tokens behind each group of metrics (special tokens included)."""
        per_batch = self.batch_size_prompts * context_size
        return {
            "ce_kl_tokens": self.n_eval_reconstruction_batches * per_batch,
            "sparsity_variance_tokens": self.n_eval_sparsity_variance_batches
            * per_batch,
        }


# flat key -> (SAEBench metric group, metric name); the order tables use.
# `explained_variance` is about the mean (the module docstring); `_legacy` is
# SAEBench's per-token formula, the one its paper reports.
METRIC_KEYS: dict[str, tuple[str, str]] = {
    "ce_loss_score": ("model_performance_preservation", "ce_loss_score"),
    "kl_div_score": ("model_behavior_preservation", "kl_div_score"),
    "explained_variance": ("reconstruction_quality", RECORD_KEY),
    "explained_variance_legacy": (
        "reconstruction_quality",
        "explained_variance_legacy",
    ),
    "cossim": ("reconstruction_quality", "cossim"),
    "mse": ("reconstruction_quality", "mse"),
    "l2_ratio": ("shrinkage", "l2_ratio"),
    "l0": ("sparsity", "l0"),
    "l1": ("sparsity", "l1"),
    "ce_loss_with_sae": ("model_performance_preservation", "ce_loss_with_sae"),
    "ce_loss_without_sae": ("model_performance_preservation", "ce_loss_without_sae"),
    "ce_loss_with_ablation": (
        "model_performance_preservation",
        "ce_loss_with_ablation",
    ),
}


@dataclass(frozen=True)
class EvalResult:
    """The evaluation of one SAE.

    Attributes:
        metrics: Flat snake_case numbers: every key of METRIC_KEYS, plus
            `dead_fraction` and `alive_fraction` (a latent is dead when it never
            fired on the evaluated tokens).
        saebench_core: SAEBench's metric groups (`model_behavior_preservation`,
            `model_performance_preservation`, `reconstruction_quality`,
            `shrinkage`, `sparsity`, `token_stats`) as it returns them.
        feature_density: Fraction of evaluated tokens on which each latent
            fired. [d_sae]
        alignment: `AlignmentSummary.to_dict()` of the SAE's weights.
        windows: Tokens behind each group of metrics.
        explained_variance: How explained variance about the mean was
            recovered (`RecoveredExplainedVariance.provenance()`); empty when
            the variance metrics did not run.
    """

    metrics: dict[str, float]
    saebench_core: dict[str, dict[str, Any]]
    feature_density: list[float]
    alignment: dict[str, Any]
    windows: dict[str, int] = field(default_factory=dict)
    explained_variance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_for_saebench(sae: SAE[Any], model_name: str | None = None) -> SAE[Any]:
    """A copy of `sae` with decoder norms folded and SAEBench's cfg fields set."""
    from sae_bench.sae_bench_utils.general_utils import _standardize_sae_cfg

    sae = copy.deepcopy(sae)
    sae.fold_W_dec_norm()
    if model_name is not None:
        sae.cfg.metadata.model_name = model_name
    default_tokenization(sae)
    _standardize_sae_cfg(sae.cfg)
    return sae


def default_tokenization(sae: SAE[Any]) -> None:
    """SAEs saved outside a SAELens training run may not record how their inputs
    were tokenized; SAELens' training default is to prepend BOS."""
    if sae.cfg.metadata.prepend_bos is None:
        sae.cfg.metadata.prepend_bos = True


def at_hook(sae: SAE[Any], hook: str) -> SAE[Any]:
    """`sae`, its metadata naming `hook` when that is the same activation spelt
    for the other model view: a released SAE names TransformerLens' hook
    (`blocks.N.hook_resid_post`), while an `AutoModelForCausalLM` reads
    `model.layers.N`. A copy when renamed; otherwise `sae` itself."""
    current = sae.cfg.metadata.hook_name
    if current is None or current == hook or not same_activation(current, hook):
        return sae
    sae = copy.deepcopy(sae)
    sae.cfg.metadata.hook_name = hook
    return sae


def eval_activation_store(
    resolved: ResolvedSource, model: Any, sae: SAE[Any], budget: EvalBudget
) -> Any:
    """An ActivationsStore over the held-out text and the live model."""
    from sae_lens.training.activations_store import ActivationsStore

    source = resolved.source
    return ActivationsStore.from_sae(
        model=model,
        sae=sae,
        dataset=load_corpus_split(resolved.corpus, "eval"),
        context_size=source.context_size,
        streaming=resolved.corpus.hub,
        store_batch_size_prompts=budget.batch_size_prompts,
        train_batch_size_tokens=budget.batch_size_prompts * source.context_size,
        n_batches_in_buffer=4,
        device=source.device,
    )


def run_core_eval(
    sae: SAE[Any],
    model: Any,
    activation_store: Any,
    budget: EvalBudget,
    model_name: str | None = None,
) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """SAEBench's `run_evals` on `sae`, every metric turned on: (its metric
    groups, per-latent density). `activation_store` must read live model
    activations: the CE-loss and KL scores splice the SAE into the model."""
    from sae_bench.evals.core.eval_config import CoreEvalConfig
    from sae_bench.evals.core.main import run_evals

    prepared = prepare_for_saebench(sae, model_name)
    config = CoreEvalConfig(
        model_name=str(prepared.cfg.model_name),  # type: ignore[attr-defined]
        batch_size_prompts=budget.batch_size_prompts,
        n_eval_reconstruction_batches=budget.n_eval_reconstruction_batches,
        n_eval_sparsity_variance_batches=budget.n_eval_sparsity_variance_batches,
        compute_kl=budget.n_eval_reconstruction_batches > 0,
        compute_ce_loss=budget.n_eval_reconstruction_batches > 0,
        compute_l2_norms=True,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=True,
        compute_featurewise_weight_based_metrics=False,
    )
    ignore: set[int | None] = (
        set(special_token_ids(model)) if budget.exclude_special_tokens else set()
    )
    with torch.no_grad():
        metrics, feature_metrics = run_evals(
            prepared,
            activation_store,
            model,
            config,
            ignore_tokens=ignore,
            verbose=budget.progress,
        )
    return metrics, [float(x) for x in feature_metrics["feature_density"]]


def flat_metrics(
    saebench_core: dict[str, dict[str, Any]], feature_density: list[float]
) -> dict[str, float]:
    """METRIC_KEYS' numbers out of SAEBench's groups, and dead/alive fractions."""
    out = {
        key: float(saebench_core.get(group, {}).get(name, math.nan))
        for key, (group, name) in METRIC_KEYS.items()
    }
    density = torch.tensor(feature_density)
    dead = float((density <= 0).float().mean()) if density.numel() else math.nan
    out["dead_fraction"] = dead
    out["alive_fraction"] = 1.0 - dead
    return out


def eval_set_of(
    resolved: ResolvedSource, budget: EvalBudget, prepend_bos: bool, split: str
) -> EvalSet:
    """The evaluation set `evaluate` reads on `resolved` with `budget`, for an
    SAE whose metadata says `prepend_bos`; `split` names the held-out text
    (`eval`, or `validation` when `resolved`'s eval text is the validation
    rows)."""
    source = resolved.source
    return EvalSet(
        model=resolved.model_label,
        hook=source.hook,
        dataset=source.dataset or resolved.corpus.name,
        split=split,
        context_size=source.context_size,
        prepend_bos=bool(prepend_bos),
        batch_size_prompts=budget.batch_size_prompts,
        skipped_batches=budget.n_eval_reconstruction_batches,
        n_batches=budget.n_eval_sparsity_variance_batches,
        exclude_special_tokens=budget.exclude_special_tokens,
    )


def evaluate(
    sae: SAE[Any],
    model: Any,
    resolved: ResolvedSource,
    budget: EvalBudget,
    split: str = "eval",
) -> EvalResult:
    """SAEBench core (against the live model, held-out text), explained variance
    about the mean, and the alignment summary of `sae`. `split` names the
    held-out text of `resolved` (`eval_set_of`)."""
    sae = at_hook(sae, resolved.source.hook)
    default_tokenization(sae)
    store = eval_activation_store(resolved, model, sae, budget)
    groups, density = run_core_eval(sae, model, store, budget, resolved.model_name)
    eval_set = eval_set_of(resolved, budget, bool(sae.cfg.metadata.prepend_bos), split)
    moments = moments_for(
        eval_set,
        resolved,
        lambda: eval_activation_store(resolved, model, sae, budget),
        model,
    )
    quality = groups["reconstruction_quality"]
    recovered = RecoveredExplainedVariance.recover(
        quality["explained_variance"], eval_set, moments
    )
    quality[RECORD_KEY] = recovered.value
    return EvalResult(
        metrics=flat_metrics(groups, density),
        saebench_core=groups,
        feature_density=density,
        alignment=sae_alignment_summary(sae).to_dict(),
        windows={
            **budget.windows(resolved.source.context_size),
            "special_tokens_excluded": int(budget.exclude_special_tokens),
        },
        explained_variance=recovered.provenance(),
    )


@torch.no_grad()
def cached_feature_density(
    sae: SAE[Any], batches: Iterable[torch.Tensor]
) -> tuple[torch.Tensor, int]:
    """(fraction of tokens on which each latent fires, tokens seen) over batches
    of activations ([tokens, d_in] each, e.g. a held-out activation cache); no
    model pass needed. [d_sae]"""
    fired_F = torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    device = sae.W_enc.device
    tokens = 0
    for batch in batches:
        acts = sae.encode(batch.to(device))
        fired_F += (acts > 0).sum(dim=0).double().cpu()
        tokens += batch.shape[0]
    return (fired_F / max(tokens, 1)).float(), tokens


def dead_fraction(density_F: torch.Tensor) -> float:
    return float((density_F <= 0).float().mean())
