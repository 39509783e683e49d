"""Redirections that let SAEBench's evals run unchanged on a local model,
offline, for the duration of one call: the evals' one model load returns a model
we built, files go to a working folder, global RNGs are seeded and restored, and
the SAE is prepared the way SAEBench reads it. Shared by `absorption`,
`local_probing` and `sae_probes_eval`.
"""

import contextlib
import functools
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sae_lens.saes.sae import SAE

from saelens_aligned.pipeline.evaluation import prepare_for_saebench
from saelens_aligned.pipeline.transformer_lens_view import (
    as_transformer_lens_hook,
    hook_layer,
)

SAE_RELEASE = "saelens_aligned"
"""The release name SAEBench files our SAEs under (with its id "custom_sae")."""


def prepare_sae(sae: SAE[Any], model_name: str) -> SAE[Any]:
    """A copy of `sae` as SAEBench's absorption eval reads it: decoder norms folded,
    `model_name`, and the TransformerLens hook name and layer of the activation the
    SAE was trained on (its hook may be an `AutoModelForCausalLM` module path)."""
    prepared = prepare_for_saebench(sae, model_name)
    hook = as_transformer_lens_hook(str(prepared.cfg.metadata.hook_name))
    layer = hook_layer(hook)
    if layer is None or not hook.endswith("hook_resid_post"):
        raise ValueError(
            f"SAEBench's absorption, probing and TPP evals read the residual stream "
            f"after a block; {hook!r} is not."
        )
    prepared.cfg.metadata.hook_name = hook
    prepared.cfg.hook_name = hook  # type: ignore[attr-defined]
    prepared.cfg.hook_layer = layer  # type: ignore[attr-defined]
    return prepared


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch RNGs; restore their states and grad mode."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    grad = torch.is_grad_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        torch.set_grad_enabled(grad)


@contextlib.contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """`contextlib.chdir`, which Python 3.10 lacks."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class ProvidedModel:
    """Stands in for `HookedTransformer` inside SAEBench's `run_eval`: its one
    model load returns `model`, after checking the name it asked for."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def from_pretrained_no_processing(self, model_name: str, **_: Any) -> Any:
        if model_name != self.model.cfg.model_name:
            raise ValueError(f"run_eval asked for {model_name!r}, not the given model")
        return self.model


def _in_own_dimension_scope(fn: Callable[..., Any]) -> Callable[..., Any]:
    from jaxtyping import jaxtyped

    @functools.wraps(fn)
    def scoped(*args: Any, **kwargs: Any) -> Any:
        with jaxtyped("context"):
            return fn(*args, **kwargs)

    return scoped


@contextlib.contextmanager
def sklearn_probes_scoped() -> Iterator[None]:
    """SAEBench's two sklearn probe helpers in their own jaxtyping dimension scope.

    They are `@beartype` only, so (jaxtyping 0.3.11, beartype 0.23) their
    `train_dataset_size` is checked against the caller's (`train_probe_on_activations`
    binds it to the rows per class, the helper gets twice that) and every top-k
    probe fails. Every other function of `probe_training` has its own scope
    already; the checks themselves still run."""
    from sae_bench.evals.sparse_probing import probe_training

    with contextlib.ExitStack() as stack:
        for name in ("train_sklearn_probe", "test_sklearn_probe"):
            scoped = _in_own_dimension_scope(getattr(probe_training, name))
            stack.enter_context(patched(probe_training, name, scoped))
        yield
