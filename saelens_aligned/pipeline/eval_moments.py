"""The moments of an evaluation set's activations, over exactly the tokens SAEBench
core's variance pass reads, so that explained variance about the mean can be
recovered from SAEBench 0.6.0's value (`saelens_aligned.explained_variance`).

Which tokens SAEBench reads is fixed by the evaluation, not the SAE:
`pipeline.evaluation.eval_activation_store` streams the held-out text through
SAELens' `ActivationsStore` (documents concatenated, cut into `context_size`
sequences, BOS first when the SAE's metadata says `prepend_bos`; no shuffle).
SAEBench's CE-loss/KL pass takes the first `n_eval_reconstruction_batches`
batches of `batch_size_prompts` sequences; its `reset_input_dataset()` before
the variance pass resets `iterable_dataset`, which `get_batch_tokens` does not
read (it reads `iterable_sequences`), so the variance pass continues with the
next `n_eval_sparsity_variance_batches` batches. Both passes leave BOS, EOS and
pad tokens out when the budget excludes special tokens. `EvalSet` names all of
this; `eval_set_moments` replays it and returns the moments of those tokens.
"""

import re
from dataclasses import asdict, dataclass
from typing import Any

import torch

from saelens_aligned.explained_variance import (
    FORMULA,
    MomentsAccumulator,
    SaebenchMoments,
    explained_variance_from_saebench,
)
from saelens_aligned.pipeline.models import special_token_ids
from saelens_aligned.pipeline.source import ResolvedSource


@dataclass(frozen=True)
class EvalSet:
    """What fixes the tokens of SAEBench core's variance pass.

    Args:
        model: The model (its report label: the embedded model's name, else
            its path or hub name).
        hook: The hooked activation.
        dataset: The corpus as the source names it (`brown`, a path).
        split: `eval`, or `validation` (the rows the learning-rate grid reads).
        context_size: Tokens per sequence.
        prepend_bos: Whether each sequence starts with BOS (the SAE's metadata).
        batch_size_prompts: Sequences per batch.
        skipped_batches: Batches the CE-loss/KL pass read first (module
            docstring): `n_eval_reconstruction_batches`, 0 when it did not run.
        n_batches: Batches of the variance pass.
        exclude_special_tokens: BOS, EOS and pad tokens left out.
    """

    model: str
    hook: str
    dataset: str
    split: str
    context_size: int
    prepend_bos: bool
    batch_size_prompts: int
    skipped_batches: int
    n_batches: int
    exclude_special_tokens: bool

    @property
    def key(self) -> str:
        """A stable one-line name, the key of committed moments files."""
        return "|".join(f"{k}={v}" for k, v in asdict(self).items())


def saebench_hook_layer(hook: str) -> int | None:
    """The layer SAEBench stops the model after: the first number in the hook
    name (`_standardize_sae_cfg`), None without one."""
    match = re.search(r"\d+", hook)
    return int(match.group(0)) if match else None


def special_token_mask(tokens_BL: torch.Tensor, ignore: set[int]) -> torch.Tensor:
    """True where a token counts, as SAEBench masks (`ignore_tokens`). [B, L]"""
    if not ignore:
        return torch.ones_like(tokens_BL, dtype=torch.bool)
    return ~torch.stack([tokens_BL == t for t in ignore]).any(dim=0)


@torch.no_grad()
def eval_set_moments(
    eval_set: EvalSet, store: Any, model: Any, sae: Any | None = None
) -> tuple[SaebenchMoments, MomentsAccumulator]:
    """The moments of `eval_set`'s variance-pass tokens, read from a fresh
    `store` (`pipeline.evaluation.eval_activation_store` of the same source and
    budget) through `model`, as SAEBench reads them. With `sae`, its
    reconstructions too: the accumulator then holds R under both weightings (a
    direct computation, to check a recovered value against)."""
    ignore = special_token_ids(model) if eval_set.exclude_special_tokens else set()
    for _ in range(eval_set.skipped_batches):
        store.get_batch_tokens(eval_set.batch_size_prompts)
    layer = saebench_hook_layer(eval_set.hook)
    accumulator: MomentsAccumulator | None = None
    for _ in range(eval_set.n_batches):
        tokens_BL = store.get_batch_tokens(eval_set.batch_size_prompts)
        _, cache = model.run_with_cache(
            tokens_BL,
            prepend_bos=False,
            names_filter=[eval_set.hook],
            stop_at_layer=None if layer is None else layer + 1,
        )
        acts_BLD = cache[eval_set.hook]
        mask_N = special_token_mask(tokens_BL, ignore).flatten()
        x_ND = acts_BLD.flatten(0, 1)[mask_N]
        if accumulator is None:
            accumulator = MomentsAccumulator(int(x_ND.shape[-1]))
        x_hat_ND = None
        if sae is not None:
            # SAEBench encodes and decodes the whole batch, then masks.
            x_hat_BLD = sae.decode(sae.encode(acts_BLD.to(sae.device)))
            x_hat_ND = x_hat_BLD.flatten(0, 1)[mask_N.to(x_hat_BLD.device)]
        accumulator.add_batch(x_ND, x_hat_ND)
    if accumulator is None:
        raise ValueError(f"{eval_set.key}: the variance pass reads no batches.")
    return accumulator.moments(), accumulator


_MEMO: dict[tuple[str, str], SaebenchMoments] = {}
"""Moments by (evaluation set, corpus fingerprint), once per process: every SAE
of a sweep reads the same evaluation set."""


def moments_for(
    eval_set: EvalSet, resolved: ResolvedSource, make_store: Any, model: Any
) -> SaebenchMoments:
    """`eval_set_moments`, computed once per process per evaluation set;
    `make_store()` builds the fresh store it reads."""
    key = (eval_set.key, repr(resolved.corpus.fingerprint()))
    if key not in _MEMO:
        _MEMO[key] = eval_set_moments(eval_set, make_store(), model)[0]
    return _MEMO[key]


RECORD_KEY = "explained_variance_about_mean"
"""Where records keep explained variance about the mean: beside SAEBench's own
`explained_variance` (about zero) and `explained_variance_legacy` in the
`reconstruction_quality` group, and its provenance under this key in
`eval_result_unstructured`."""


@dataclass(frozen=True)
class RecoveredExplainedVariance:
    """Explained variance about the mean, recovered from SAEBench's value.

    Args:
        value: 1 − R / (S − ‖μ‖²).
        saebench_value: SAEBench 0.6.0's `explained_variance` it came from.
        eval_set: The evaluation set.
        moments: Its moments.
    """

    value: float
    saebench_value: float
    eval_set: EvalSet
    moments: SaebenchMoments

    @classmethod
    def recover(
        cls, saebench_value: float, eval_set: EvalSet, moments: SaebenchMoments
    ) -> "RecoveredExplainedVariance":
        value = explained_variance_from_saebench(saebench_value, moments)
        return cls(value, saebench_value, eval_set, moments)

    def provenance(self) -> dict[str, Any]:
        """What a record keeps beside the value: enough to check it by hand."""
        return {
            "formula": FORMULA,
            "derived_from": "SAEBench 0.6.0 explained_variance (about zero)",
            "weighting": "SAEBench's: the mean over batches of each batch's mean",
            "eval_set": self.eval_set.key,
            "d_in": self.moments.d_in,
            "mean_squared_norm": self.moments.mean_squared_norm,
            "squared_norm_of_mean": self.moments.squared_norm_of_mean,
        }
