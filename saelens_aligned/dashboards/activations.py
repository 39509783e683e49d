"""The tokens the dashboards read and the one model pass every SAE shares.

`sample_tokens` cuts held-out text into sequences the way SAELens' activation
store does (`concat_and_batch_sequences`: BOS at each sequence start and between
documents), taking at most an equal share of tokens from each document so that
one long file cannot fill the sample. `run_activation_pass` runs the model once
over them, with a progress bar, and keeps every hook's activations.

SAEDashboard runs the model itself unless its `cache_dir` already holds each
token minibatch's activations (`model_activations_{i}.pt`, a dict from hook name
to [batch, seq, d_in], minibatches of `SaeVisConfig.minibatch_size_tokens`
sequences). The pass writes exactly those files, so SAEDashboard reads them back
for every SAE and the model runs once in all.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens.saes.sae import SAE
from tqdm.auto import tqdm

from saelens_aligned.pipeline.corpora import TextCorpus
from saelens_aligned.pipeline.evaluation import cached_feature_density
from saelens_aligned.pipeline.text import load_corpus_split
from saelens_aligned.pipeline.transformer_lens_view import hook_layer


def sample_tokens(
    corpus: TextCorpus, tokenizer: Any, n_tokens: int, context_size: int
) -> torch.Tensor:
    """About `n_tokens` tokens of the corpus' held-out text in sequences of
    `context_size` (whole sequences only, at least one). [seq, context_size]"""
    from sae_lens.tokenization_and_batching import concat_and_batch_sequences

    rows = load_corpus_split(corpus, "eval")
    n_seq = max(1, n_tokens // context_size)
    n_rows = len(rows) if hasattr(rows, "__len__") else None
    # An equal share of the sample per document (rounded up to whole sequences).
    share = math.ceil(n_seq / n_rows) * context_size if n_rows else None

    def documents() -> Iterator[torch.Tensor]:
        for row in rows:
            ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"]
            if ids:
                yield torch.tensor(ids[:share], dtype=torch.long)

    bos = tokenizer.bos_token_id
    sequences = []
    for sequence in concat_and_batch_sequences(
        documents(),
        context_size,
        begin_batch_token_id=bos,
        sequence_separator_token_id=bos,
    ):
        sequences.append(sequence)
        if len(sequences) == n_seq:
            break
    if not sequences:
        raise ValueError(f"The corpus {corpus.name!r} has no held-out text to read.")
    return torch.stack(sequences)


def cache_file(cache_dir: Path, minibatch: int) -> Path:
    """SAEDashboard's name for one token minibatch's cached activations."""
    return cache_dir / f"model_activations_{minibatch}.pt"


@dataclass(frozen=True)
class ActivationPass:
    """What one model pass over the token sample left behind.

    Attributes:
        tokens: The token sample. [seq, context]
        minibatch_size: Sequences per model call (SAEDashboard's
            `minibatch_size_tokens`, which must match to read the cache).
        cache_dirs: Per hook (TransformerLens name), the folder of its cached
            activations in SAEDashboard's format.
        ignore_tokens: Token ids left out of densities and pages (BOS, EOS, pad:
            what SAEBench's core eval leaves out).
    """

    tokens: torch.Tensor
    minibatch_size: int
    cache_dirs: dict[str, Path]
    ignore_tokens: frozenset[int]

    @property
    def n_minibatches(self) -> int:
        return math.ceil(self.tokens.shape[0] / self.minibatch_size)

    def counted_tokens(self) -> int:
        """Tokens that densities count (special tokens left out)."""
        return int(self._kept_mask(self.tokens).sum())

    def _kept_mask(self, tokens_BS: torch.Tensor) -> torch.Tensor:
        ignore = torch.tensor(sorted(self.ignore_tokens), dtype=tokens_BS.dtype)
        return ~torch.isin(tokens_BS, ignore)

    def activations(self, hook: str) -> Iterator[torch.Tensor]:
        """`hook`'s cached activations at the counted tokens, a minibatch at a
        time. [tokens, d_in]"""
        for i, tokens_BS in enumerate(self.tokens.split(self.minibatch_size)):
            acts_BSD = torch.load(
                cache_file(self.cache_dirs[hook], i), weights_only=True
            )[hook]
            yield acts_BSD[self._kept_mask(tokens_BS)]

    def density(self, sae: SAE[Any], hook: str) -> torch.Tensor:
        """Fraction of counted tokens on which each latent of `sae` fires. [d_sae]"""
        density_F, _ = cached_feature_density(sae, self.activations(hook))
        return density_F


@torch.inference_mode()
def run_activation_pass(
    model: Any,
    tokens: torch.Tensor,
    hooks: list[str],
    minibatch_size: int,
    root: Path,
    ignore_tokens: set[int],
) -> ActivationPass:
    """Run `model` (a HookedTransformer) over `tokens` once, stopping after the
    deepest of `hooks` (TransformerLens names of block hooks), and cache each
    hook's activations under `root` in SAEDashboard's format."""
    cache_dirs = {hook: root / hook for hook in hooks}
    for folder in cache_dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    stop_at = max(int(hook_layer(hook) or 0) for hook in hooks) + 1
    seen: dict[str, torch.Tensor] = {}

    def keep(activation: torch.Tensor, hook: Any) -> None:
        seen[hook.name] = activation.detach().cpu()

    batches = tokens.split(minibatch_size)
    for i, batch in enumerate(tqdm(batches, desc="Activation pass", unit="batch")):
        seen.clear()
        model.run_with_hooks(
            batch.to(model.cfg.device),
            stop_at_layer=stop_at,
            fwd_hooks=[(hook, keep) for hook in hooks],
        )
        for hook in hooks:
            torch.save({hook: seen[hook]}, cache_file(cache_dirs[hook], i))
    return ActivationPass(tokens, minibatch_size, cache_dirs, frozenset(ignore_tokens))
