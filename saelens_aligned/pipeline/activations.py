"""Activation caches: SAELens' CacheActivationsRunner, run once per (model, corpus
split, hook, context, tokens, seed) and shared by every SAE trained on it.

A cache directory appears under its final name only when complete (it is written
as a temporary sibling and swapped in whole), so an interrupted run never leaves a
half-written cache and a rerun reuses a finished one.
"""

import hashlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from saelens_aligned.io.files import atomic_dir, write_text_atomic
from saelens_aligned.pipeline.progress import say
from saelens_aligned.pipeline.source import ResolvedSource
from saelens_aligned.pipeline.text import load_corpus_split

CACHE_CONFIG_FILENAME = "saelens_aligned_cache.json"


def cache_key(
    resolved: ResolvedSource, d_in: int, tokens: int, seed: int, split: str = "train"
) -> dict[str, Any]:
    """What the cached activations depend on; a different key means a new cache."""
    source = resolved.source
    key = {
        "model": resolved.model_name,
        "model_class": source.model_class,
        "corpus": resolved.corpus.fingerprint(),
        "hook": source.hook,
        "d_in": d_in,
        "context_size": source.context_size,
        "training_tokens": tokens,
        "seed": seed,
        "dtype": "float32",
    }
    if split != "train":  # train caches keep the keys they always had
        key["split"] = split
    return key


def activation_cache_dir(resolved: ResolvedSource, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(
        json.dumps(key, sort_keys=True).encode("utf-8")
    ).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in resolved.model_label)
    return resolved.activations_root / f"{slug}-{resolved.source.hook}-{digest}"


def is_complete_cache(path: Path) -> bool:
    return (path / CACHE_CONFIG_FILENAME).exists() and (path / "state.json").exists()


def ensure_activation_cache(
    resolved: ResolvedSource,
    model: Any,
    d_in: int,
    tokens: int,
    seed: int,
    model_batch_size: int = 16,
    split: str = "train",
) -> Path:
    """The activation cache of `tokens` tokens of the corpus split `split`, made
    with SAELens' CacheActivationsRunner only if no complete one exists. Returns
    its directory."""
    key = cache_key(resolved, d_in, tokens, seed, split)
    final = activation_cache_dir(resolved, key)
    if is_complete_cache(final):
        say(f"Reusing the activation cache {final}")
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Processes that need the same cache (a sweep and a second job beside it)
    # take turns: the one that waits then reuses what the first made, and the
    # partial folder it would otherwise clear as stale is never another's live one.
    with FileLock(final.parent / f".{final.name}.lock"):
        if is_complete_cache(final):
            say(f"Reusing the activation cache {final}")
            return final
        for stale in final.parent.glob(f".{final.name}.*"):
            if stale.is_dir():  # an interrupted earlier caching
                shutil.rmtree(stale, ignore_errors=True)
        _build_activation_cache(
            resolved, model, d_in, tokens, seed, model_batch_size, split, key, final
        )
    return final


def _build_activation_cache(
    resolved: ResolvedSource,
    model: Any,
    d_in: int,
    tokens: int,
    seed: int,
    model_batch_size: int,
    split: str,
    key: dict[str, Any],
    final: Path,
) -> None:
    from sae_lens import CacheActivationsRunnerConfig

    source = resolved.source
    n_seq = math.ceil(tokens / source.context_size)
    batch_size = max(1, min(model_batch_size, n_seq))
    say(f"Caching {tokens:,} tokens of {source.hook} activations ({split} text) ...")
    with atomic_dir(final) as partial:
        cache_config = CacheActivationsRunnerConfig(
            dataset_path=resolved.corpus.name
            if not resolved.corpus.hub
            else str(resolved.corpus.train),
            model_name=resolved.model_name,
            model_class_name=source.model_class,
            model_batch_size=batch_size,
            hook_name=source.hook,
            d_in=d_in,
            training_tokens=tokens,
            context_size=source.context_size,
            new_cached_activations_path=str(partial),
            shuffle=True,
            seed=seed,
            dtype="float32",
            device=source.device,
            buffer_size_gb=cache_buffer_size_gb(
                tokens, batch_size * source.context_size, d_in * 4
            ),
            streaming=resolved.corpus.hub,
            dataset_trust_remote_code=False,
        )
        runner = _cache_runner(
            cache_config, model, load_corpus_split(resolved.corpus, split)
        )
        runner.run()
        write_text_atomic(
            partial / CACHE_CONFIG_FILENAME, json.dumps(key, indent=2, sort_keys=True)
        )


def cache_buffer_size_gb(
    training_tokens: int,
    tokens_per_batch: int,
    bytes_per_token: int,
    max_tokens_per_buffer: int = 32_768,
) -> float:
    """SAELens caches whole buffers of whole model batches. Pick a buffer size
    that splits `training_tokens` into equal buffers of at most about
    `max_tokens_per_buffer` tokens: small shards keep memory low and the progress
    bar moving, and the total overshoots the budget by less than one model batch
    per buffer."""
    n_buffers = max(1, math.ceil(training_tokens / max_tokens_per_buffer))
    batches = max(1, math.ceil(training_tokens / n_buffers / tokens_per_batch))
    tokens = batches * tokens_per_batch
    # Half a token of slack: SAELens floors the size back to whole tokens.
    return (tokens + 0.5) * bytes_per_token / 1e9


def _cache_runner(cache_config: Any, model: Any, dataset: Any) -> Any:
    """SAELens' CacheActivationsRunner on an already loaded model (its __init__
    would load a second copy)."""
    import sae_lens.cache_activations_runner as car
    from sae_lens import CacheActivationsRunner

    original = car.load_model
    car.load_model = lambda *args, **kwargs: model  # type: ignore[assignment]  # noqa: ARG005
    try:
        return CacheActivationsRunner(cache_config, override_dataset=dataset)
    finally:
        car.load_model = original  # type: ignore[assignment]


def load_cached_activations(cache_dir: Path, d_in: int) -> torch.Tensor:
    """A whole activation cache as one float32 tensor. [tokens, d_in]"""
    import datasets

    dataset = datasets.load_from_disk(str(cache_dir))
    dataset.set_format("torch")
    return dataset[dataset.column_names[0]].reshape(-1, d_in).float()


def iter_cached_activations(
    cache_dir: Path, d_in: int, batch_tokens: int = 8192
) -> Iterator[torch.Tensor]:
    """An activation cache in batches of about `batch_tokens` rows, read from disk
    a batch at a time (a long window never sits in memory whole). [tokens, d_in]"""
    import datasets

    dataset = datasets.load_from_disk(str(cache_dir))
    dataset.set_format("torch")
    column = dataset.column_names[0]
    per_row = int(math.prod(dataset[0][column].shape)) // d_in
    rows = max(1, batch_tokens // max(per_row, 1))
    for start in range(0, len(dataset), rows):
        yield dataset[start : start + rows][column].reshape(-1, d_in).float()


class _SharedForwardModel:
    """The LM as SAELens' CacheActivationsRunner sees it, when several hooks are
    cached from one pass.

    Every runner of the group reads the same text with the same settings, so their
    ActivationsStores ask for the same token batches in the same order. The first
    runner's calls run the model once per batch, for every hook of the group, and
    spool the other hooks' activations to disk (safetensors, one file per batch);
    the later runners' calls read their hook's batch back instead of running the
    model, after checking that the tokens are the ones the pass saw. Everything
    else is delegated to the real model.
    """

    def __init__(self, model: Any, hooks: list[str], spool_dir: Path) -> None:
        self._model = model
        self._hooks = list(hooks)
        self._spool_dir = spool_dir
        self._recorder: str | None = None
        self._next_batch: dict[str, int] = {}
        self.model_passes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _spool_file(self, hook: str, batch: int) -> Path:
        return self._spool_dir / f"{hook}-{batch:06d}.safetensors"

    def run_with_cache(
        self, tokens: torch.Tensor, names_filter: list[str], **kwargs: Any
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        from safetensors.torch import load_file, save_file

        (hook,) = names_filter
        self._recorder = self._recorder or hook
        batch = self._next_batch.get(hook, 0)
        self._next_batch[hook] = batch + 1
        if hook != self._recorder:
            path = self._spool_file(hook, batch)
            spooled = load_file(path)
            path.unlink()
            if not torch.equal(spooled["tokens"], tokens.cpu()):
                raise RuntimeError(
                    f"Caching {hook} from a shared pass: batch {batch} holds other "
                    "tokens than the pass saw; the hooks' caches must read the same "
                    "text with the same settings."
                )
            return None, {hook: spooled["acts"].to(tokens.device)}
        _, cache = self._model.run_with_cache(
            tokens, names_filter=self._hooks, **kwargs
        )
        self.model_passes += 1
        for other in self._hooks:
            if other != hook:
                save_file(
                    {
                        "acts": cache[other].detach().cpu().contiguous(),
                        "tokens": tokens.cpu().contiguous(),
                    },
                    self._spool_file(other, batch),
                )
        return None, {hook: cache[hook]}


def ensure_activation_caches(
    resolved_by_hook: dict[str, ResolvedSource],
    model: Any,
    d_in: int,
    tokens: int,
    seed: int,
    model_batch_size: int = 16,
    split: str = "train",
) -> dict[str, Path]:
    """`ensure_activation_cache` for several hooks of one model and text, with one
    pass of the model for all the caches that do not exist yet. Each cache is the
    one `ensure_activation_cache` makes for its hook alone (same key, folder and
    SAELens format), so either function reuses what the other made.
    `resolved_by_hook` maps each hook to its source (the same but for the hook)."""
    import tempfile

    def ensure(hook: str, with_model: Any) -> Path:
        return ensure_activation_cache(
            resolved_by_hook[hook],
            with_model,
            d_in,
            tokens,
            seed,
            model_batch_size,
            split,
        )

    missing = [
        hook
        for hook, resolved in resolved_by_hook.items()
        if not is_complete_cache(
            activation_cache_dir(
                resolved, cache_key(resolved, d_in, tokens, seed, split)
            )
        )
    ]
    done = {
        hook: ensure(hook, model) for hook in resolved_by_hook if hook not in missing
    }
    if len(missing) <= 1:
        return {**done, **{hook: ensure(hook, model) for hook in missing}}
    root = next(iter(resolved_by_hook.values())).activations_root
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".shared-pass-") as spool:
        shared = _SharedForwardModel(model, missing, Path(spool))
        for hook in missing:
            done[hook] = ensure(hook, shared)
    return {hook: done[hook] for hook in resolved_by_hook}
