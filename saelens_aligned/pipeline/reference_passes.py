"""Reuse the SAE-independent LM passes of SAEBench's core evaluation.

For each batch of held-out tokens SAEBench's `get_recons_loss` runs the model
three times: clean, with the SAE spliced in, and with the hooked activation
zero-ablated. Only the spliced pass depends on the SAE. A sweep evaluates many
SAEs on the same held-out batches with one model, so the clean and zero-ablated
outputs can be computed once and handed back for every later SAE: the numbers
are the ones SAEBench computes (the same function of the same tokens), at about
a third of the LM time.

SAEBench's sparsity and explained-variance metrics likewise read the hooked
activation of the same held-out batches for every SAE, from a clean pass that
stops after the hooked layer (`run_with_cache(..., stop_at_layer=...)`); those
activations are reused too (handed out as copies, so nothing an SAE does to
them reaches the next one).

`ReferencePassCache` wraps the model's `forward` on the instance. A pass is
served from the cache only when it is recognisably a reference pass: gradients
off, a full forward pass (no `stop_at_layer`, no cache filter, no extra
arguments) and either no hook attached to any hook point (the clean pass) or
exactly one hook, SAEBench's `standard_zero_ablate_hook` (the ablation;
its single-head variant depends on the SAE's head index and is not reused). Anything else, including SAEBench renaming its hooks, runs the model
as usual, so the cache can only ever save time, never change a number.
"""

import hashlib
from collections.abc import Callable
from typing import Any

import torch

# SAEBench's whole-activation ablation replaces the hooked activation by zeros
# whatever the SAE: the pass is a function of the tokens alone.
ZERO_ABLATION_HOOK = "standard_zero_ablate_hook"

DEFAULT_MAX_BYTES = 4 * 1024**3


def _hook_names(hook_point: torch.nn.Module) -> list[str]:
    # TransformerLens names the wrapper it registers after the user's hook
    # (`repr(hook)`), so the name says which SAEBench hook is attached.
    return [getattr(fn, "__name__", "") for fn in hook_point._forward_hooks.values()]


def _output_bytes(output: Any) -> int:
    tensors = output if isinstance(output, tuple) else (output,)
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


class ReferencePassCache:
    """Serves repeated clean and zero-ablated forward passes of `model` (a
    SAELens `HookedProxyLM` or a TransformerLens `HookedTransformer`), and the
    hooked activations of clean passes that stop early (HookedProxyLM), from
    memory, up to `max_bytes` of outputs (logits dominate: batch x context x
    vocabulary floats per pass). Outputs are stored in insertion order and never
    evicted: a sweep revisits the same batches in the same order, where an LRU
    policy would evict each entry just before it is needed again.

    Attributes:
        hits: Passes served from the cache.
        misses: Reference passes that ran the model (and were stored if room).
    """

    def __init__(self, model: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._stored_bytes = 0
        self._entries: dict[tuple[Any, ...], Any] = {}
        self._forward: Callable[..., Any] | None = None
        self._run_with_cache: Callable[..., Any] | None = None

    def install(self) -> "ReferencePassCache":
        """Route `model`'s forward pass and its early-stopping
        `run_with_cache` through the cache (idempotent)."""
        if self._forward is None:
            self._forward = self.model.forward
            self.model.forward = self._cached_forward
            self._run_with_cache = self.model.run_with_cache
            self.model.run_with_cache = self._cached_run_with_cache
        return self

    def uninstall(self) -> None:
        if self._forward is not None:
            self.model.forward = self._forward
            self.model.run_with_cache = self._run_with_cache
            self._forward = None
            self._run_with_cache = None

    def __enter__(self) -> "ReferencePassCache":
        return self.install()

    def __exit__(self, *_: object) -> None:
        self.uninstall()

    def reference_kind(self) -> str | None:
        """The kind of pass the attached hooks make: "clean", "zero_ablation:<hook>",
        or None (not a reference pass)."""
        # Checked at call time: SAEBench attaches its hooks just before the pass.
        attached = [
            (name, hook_name)
            for name, point in self.model.hook_dict.items()
            for hook_name in _hook_names(point)
        ]
        if not attached:
            return "clean"
        if len(attached) == 1:
            point_name, hook_name = attached[0]
            if f".{ZERO_ABLATION_HOOK} " in hook_name:
                return f"zero_ablation:{point_name}"
        return None

    @staticmethod
    def _tokens_key(tokens: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """What identifies the tokens of a pass that may be served from the
        cache (no positional extras, gradients off), or None."""
        if args or torch.is_grad_enabled() or not torch.is_tensor(tokens):
            return None
        digest = hashlib.sha256(tokens.detach().cpu().numpy().tobytes()).hexdigest()
        return (tuple(tokens.shape), str(tokens.dtype), digest)

    def _key(self, tokens: Any, args: tuple[Any, ...], kwargs: dict[str, Any]):
        if kwargs.get("stop_at_layer") is not None or set(kwargs) - {
            "return_type",
            "loss_per_token",
        }:
            return None
        tokens_key = self._tokens_key(tokens, args)
        kind = self.reference_kind() if tokens_key else None
        if kind is None:
            return None
        return (
            kind,
            kwargs.get("return_type", "logits"),
            bool(kwargs.get("loss_per_token", False)),
            *tokens_key,
        )

    def _activations_key(
        self, tokens: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...] | None:
        """Key of a clean pass that stops after the hooked layer and returns the
        named activations (SAEBench's sparsity pass), or None."""
        names = kwargs.get("names_filter")
        if isinstance(names, str):
            names = [names]
        if (
            kwargs.get("stop_at_layer") is None
            or not isinstance(names, list | tuple)
            or set(kwargs) - {"names_filter", "stop_at_layer", "prepend_bos"}
        ):
            return None
        tokens_key = self._tokens_key(tokens, args)
        if tokens_key is None or self.reference_kind() != "clean":
            return None
        return (
            "activations",
            tuple(names),
            kwargs["stop_at_layer"],
            kwargs.get("prepend_bos"),
            *tokens_key,
        )

    def _store(self, key: tuple[Any, ...], size: int, value: Callable[[], Any]) -> None:
        """Keep `value()` under `key` if `size` bytes fit in what is left of
        `max_bytes`; `value` is called only then (it may copy tensors)."""
        if self._stored_bytes + size <= self.max_bytes:
            self._entries[key] = value()
            self._stored_bytes += size

    def _cached_run_with_cache(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        assert self._run_with_cache is not None
        key = self._activations_key(tokens, args, kwargs)
        if key is None:
            return self._run_with_cache(tokens, *args, **kwargs)
        if key in self._entries:
            self.hits += 1
            output, stored = self._entries[key]
            return output, {name: t.clone() for name, t in stored.items()}
        self.misses += 1
        output, activations = self._run_with_cache(tokens, *args, **kwargs)
        # A plain dict of tensors is what SAELens' HookedProxyLM returns, and
        # early stopping leaves no output; anything else is passed through.
        if output is None and type(activations) is dict:
            size = sum(_output_bytes(t) for t in activations.values())
            self._store(
                key,
                size,
                lambda: (output, {name: t.clone() for name, t in activations.items()}),
            )
        return output, activations

    def _cached_forward(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        assert self._forward is not None
        key = self._key(tokens, args, kwargs)
        if key is None:
            return self._forward(tokens, *args, **kwargs)
        if key in self._entries:
            self.hits += 1
            return self._entries[key]
        self.misses += 1
        output = self._forward(tokens, *args, **kwargs)
        self._store(key, _output_bytes(output), lambda: output)
        return output
