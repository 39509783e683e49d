"""Reusing SAEBench's clean and zero-ablated passes across SAEs changes no number:
SAEBench's own `get_recons_loss` on a tiny random Llama (SAELens' HookedProxyLM)."""

from typing import Any

import pytest
import torch
from sae_bench.evals.core.main import get_recons_loss
from sae_lens.load_model import HookedProxyLM

from saelens_aligned.pipeline.evaluation import prepare_for_saebench
from saelens_aligned.pipeline.reference_passes import ReferencePassCache
from tests.conftest import make_sae

HOOK = "model.layers.0"
D_MODEL = 32


def tiny_model() -> HookedProxyLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=101,
        hidden_size=D_MODEL,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return HookedProxyLM(LlamaForCausalLM(config).eval(), None, hook_names=[HOOK])  # type: ignore[arg-type]


def saebench_sae(seed: int) -> Any:
    sae = make_sae("topk", d_in=D_MODEL, d_sae=64, seed=seed)
    sae.cfg.metadata.hook_name = HOOK
    return prepare_for_saebench(sae, "tiny")


def recons_metrics(sae: Any, model: HookedProxyLM, tokens: torch.Tensor) -> dict:
    with torch.no_grad():
        return get_recons_loss(
            sae,
            model,
            tokens,
            None,  # type: ignore[arg-type]  # unused by get_recons_loss
            compute_kl=True,
            compute_ce_loss=True,
        )


def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, 101, (3, 16), generator=generator) for _ in range(2)]


@pytest.mark.parametrize("max_bytes", [2**30, 0])
def test_reused_reference_passes_give_saebench_s_exact_metrics(max_bytes: int) -> None:
    model = tiny_model()
    saes = [saebench_sae(seed) for seed in (0, 1)]
    expected = [[recons_metrics(sae, model, t) for t in batches()] for sae in saes]

    with ReferencePassCache(model, max_bytes=max_bytes) as cache:
        got = [[recons_metrics(sae, model, t) for t in batches()] for sae in saes]

    for want_sae, got_sae in zip(expected, got):
        for want, have in zip(want_sae, got_sae):
            assert want.keys() == have.keys()
            for name in want:
                assert torch.equal(want[name], have[name]), name
    # The two SAEs differ, so a served spliced pass would have shown above.
    assert not torch.equal(
        expected[0][0]["ce_loss_with_sae"], expected[1][0]["ce_loss_with_sae"]
    )
    # Two reference passes (clean, ablated) per batch: stored for the first SAE,
    # served for the second, unless there is no room.
    assert (cache.hits, cache.misses) == ((4, 4) if max_bytes else (0, 8))
    assert model.forward != cache._cached_forward  # uninstalled on exit


def test_passes_with_other_hooks_or_gradients_are_not_reference_passes() -> None:
    model = tiny_model()
    tokens = batches()[0]
    cache = ReferencePassCache(model).install()
    assert cache.reference_kind() == "clean"

    def some_hook(activation: torch.Tensor, hook: Any) -> torch.Tensor:  # noqa: ARG001
        return activation * 0

    with model.hooks(fwd_hooks=[(HOOK, some_hook)]):
        assert cache.reference_kind() is None
        model(tokens, return_type="both", loss_per_token=True)
    model(tokens, return_type="both", loss_per_token=True)  # clean, with grads
    assert (cache.hits, cache.misses) == (0, 0)
    with torch.no_grad():
        model(tokens, return_type="both", loss_per_token=True)
        model(tokens, return_type="logits")  # another output: another entry
        model(tokens, return_type="both", loss_per_token=True)
    assert (cache.hits, cache.misses) == (1, 2)
    cache.uninstall()


class FixedBatches:
    """The one method of an ActivationsStore SAEBench's sparsity pass calls:
    the same held-out batches, in order, for every SAE (as a sweep's store)."""

    def __init__(self) -> None:
        self.remaining = batches()

    def get_batch_tokens(self, _: int) -> torch.Tensor:
        return self.remaining.pop(0)


def sparsity_metrics(sae: Any, model: HookedProxyLM) -> tuple[dict, dict]:
    from sae_bench.evals.core.main import get_sparsity_and_variance_metrics

    with torch.no_grad():
        return get_sparsity_and_variance_metrics(
            sae,
            model,
            FixedBatches(),  # type: ignore[arg-type]
            n_batches=2,
            compute_l2_norms=True,
            compute_sparsity_metrics=True,
            compute_variance_metrics=True,
            compute_featurewise_density_statistics=True,
            eval_batch_size_prompts=3,
            model_kwargs={},
        )


def test_reused_activations_give_saebench_s_exact_sparsity_and_variance() -> None:
    model = tiny_model()
    saes = [saebench_sae(seed) for seed in (0, 1)]
    expected = [sparsity_metrics(sae, model) for sae in saes]

    with ReferencePassCache(model) as cache:
        got = [sparsity_metrics(sae, model) for sae in saes]

    for want, have in zip(expected, got):
        for want_part, have_part in zip(want, have):
            assert want_part.keys() == have_part.keys()
            for name in want_part:
                assert torch.equal(
                    torch.as_tensor(want_part[name]), torch.as_tensor(have_part[name])
                ), name
    # One early-stopping pass per batch: run for the first SAE, served for the second.
    assert (cache.hits, cache.misses) == (2, 2)
    assert model.run_with_cache != cache._cached_run_with_cache


def test_served_activations_are_copies() -> None:
    model = tiny_model()
    tokens = batches()[0]
    kwargs = {"prepend_bos": False, "names_filter": [HOOK], "stop_at_layer": 1}
    with ReferencePassCache(model) as cache, torch.no_grad():
        _, first = model.run_with_cache(tokens, **kwargs)
        original = first[HOOK].clone()
        first[HOOK].mul_(0)  # what an SAE that scales its input in place would do
        _, second = model.run_with_cache(tokens, **kwargs)
        assert torch.equal(second[HOOK], original)
        # Not a reference pass: another filter's activations, or a full pass.
        model.run_with_cache(tokens, names_filter=[HOOK])
    assert (cache.hits, cache.misses) == (1, 1)
