"""The sparse step hands every step it cannot make exact to SAELens' dense step,
says so once, and is the default only where it has been measured."""

import warnings
from typing import Any

import pytest
import torch
from sae_lens.saes.sae import TrainingSAE
from torch.nn.modules.module import register_module_forward_hook

from saelens_aligned.sae_config import ConfigError
from saelens_aligned.sparse_config import (
    SparseStepFallbackWarning,
    sparse_step_by_default,
)
from tests.conftest import make_sae, random_batches
from tests.test_sparse_topk import forward_backward, saelens_twin

# The shapes of the report: d_in 32, d_sae 256, k 8.
D_IN, D_SAE, K, BATCH = 32, 256, 8, 64


def hooked_twins() -> tuple[TrainingSAE[Any], TrainingSAE[Any]]:
    """A stock sparse-step TopK SAE and SAELens' own `topk` with its weights."""
    sparse = make_sae("sparse_topk", None, D_IN, D_SAE, k=K)
    with torch.no_grad():
        for p in sparse.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return sparse, saelens_twin(sparse)


def assert_same_loss_and_gradients(
    a: TrainingSAE[Any], b: TrainingSAE[Any], x: torch.Tensor
) -> None:
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    out_a, grads_a = forward_backward(a, x, dead)
    out_b, grads_b = forward_backward(b, x, dead)
    torch.testing.assert_close(out_a.loss, out_b.loss, atol=1e-6, rtol=1e-6)
    for name, grad in grads_b.items():
        assert grad is not None and grads_a[name] is not None, name
        torch.testing.assert_close(grads_a[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_a_torch_hook_on_a_hook_point_gives_saelens_dense_loss_and_gradients():
    sparse, reference = hooked_twins()
    for sae in (sparse, reference):
        sae.hook_sae_acts_pre.register_forward_hook(lambda m, i, o: o * 2)  # noqa: ARG005
    x = next(random_batches(D_IN, BATCH))
    with pytest.warns(SparseStepFallbackWarning, match="hooks on hook_sae_acts_pre"):
        assert_same_loss_and_gradients(sparse, reference, x)
    # The hook changes the gradients, so the equality above is not met by
    # ignoring it.
    unhooked, _ = hooked_twins()
    _, grads_unhooked = forward_backward(
        unhooked, x, torch.zeros(D_SAE, dtype=torch.bool)
    )
    _, grads_hooked = forward_backward(
        reference, x, torch.zeros(D_SAE, dtype=torch.bool)
    )
    assert not torch.allclose(grads_unhooked["W_enc"], grads_hooked["W_enc"])


def test_a_hook_on_the_sae_itself_falls_back():
    sparse, reference = hooked_twins()
    for sae in (sparse, reference):
        sae.register_forward_pre_hook(lambda m, args: None)  # noqa: ARG005
    with pytest.warns(SparseStepFallbackWarning, match="the SAE itself"):
        assert_same_loss_and_gradients(
            sparse, reference, next(random_batches(D_IN, BATCH))
        )


def test_a_global_module_hook_gives_saelens_dense_loss_and_gradients():
    sparse, reference = hooked_twins()
    pre_hooks = {id(sparse.hook_sae_acts_pre), id(reference.hook_sae_acts_pre)}

    def doubled(module: torch.nn.Module, _: Any, output: Any) -> Any:
        return output * 2 if id(module) in pre_hooks else None

    handle = register_module_forward_hook(doubled)
    try:
        with pytest.warns(SparseStepFallbackWarning, match="for all modules"):
            assert_same_loss_and_gradients(
                sparse, reference, next(random_batches(D_IN, BATCH))
            )
    finally:
        handle.remove()
    # The hook gone, the step is the sparse one again.
    out, _ = forward_backward(
        sparse, next(random_batches(D_IN, BATCH)), torch.zeros(D_SAE, dtype=torch.bool)
    )
    assert out.feature_acts.is_sparse


def test_each_fallback_reason_is_announced_once_per_sae():
    sparse, _ = hooked_twins()
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    x = next(random_batches(D_IN, BATCH))
    handle = sparse.hook_sae_recons.register_full_backward_hook(
        lambda m, gi, go: None  # noqa: ARG005
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            forward_backward(sparse, x, dead)
        handle.remove()
        for _ in range(2):  # one token per row, in a [B, 1, D] batch
            forward_backward(sparse, x[:, None, :], dead)
        forward_backward(hooked_twins()[0], x[:, None, :], dead)  # another SAE
    messages = [
        str(w.message) for w in caught if w.category is SparseStepFallbackWarning
    ]
    assert len(messages) == 3
    assert "hooks on hook_sae_recons" in messages[0]
    assert "not one row per token" in messages[1] and messages[1] == messages[2]


def test_a_hook_on_the_activations_falls_back_to_the_dense_step():
    sparse, _ = hooked_twins()
    seen: list[bool] = []
    sparse.hook_sae_acts_post.add_hook(lambda t, hook: seen.append(t.is_sparse))  # noqa: ARG005
    x = next(random_batches(D_IN, BATCH))
    with pytest.warns(SparseStepFallbackWarning):
        out, _ = forward_backward(sparse, x, torch.zeros(D_SAE, dtype=torch.bool))
    assert seen == [False] and not out.feature_acts.is_sparse


def test_the_sparse_step_is_the_default_on_the_cpu_only():
    assert sparse_step_by_default("cpu")
    assert not sparse_step_by_default("cuda")
    assert not sparse_step_by_default("mps")
    cfg = make_sae("aligned_topk", "tied").cfg
    assert cfg.sparse_training is None
    assert cfg.uses_sparse_step() and cfg.uses_sparse_step("cpu")
    assert not cfg.uses_sparse_step("cuda")
    opted_in = make_sae("aligned_topk", "tied", sparse_training=True).cfg
    assert opted_in.uses_sparse_step("cuda")
    opted_out = make_sae("aligned_topk", "tied", sparse_training=False).cfg
    assert not opted_out.uses_sparse_step("cpu")


def test_sparse_training_must_be_a_boolean_or_unset():
    with pytest.raises(ConfigError, match="sparse_training='yes'"):
        make_sae("aligned_topk", "tied", sparse_training="yes")
