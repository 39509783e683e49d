"""The sparse step's arithmetic: deterministic and fp32-accumulated, the same
BatchTopK choice by its faster candidate search, the same AuxK by either decode,
bf16 autocast within bf16 tolerance of SAELens' dense autocast step, and no
[batch, d_sae] tensor left in the step's output."""

from typing import Any

import pytest
import torch
from sae_lens.saes.sae import TrainingSAE

from saelens_aligned import sparse_topk
from saelens_aligned.sparse_ops import (
    ActivePairs,
    batch_topk_pairs,
    gathered_pre_acts,
)
from tests.conftest import dense, random_batches
from tests.test_sparse_topk import (
    BATCH,
    D_IN,
    D_SAE,
    MATRYOSHKA_AUX,
    MATRYOSHKA_CASES,
    SPARSE_CASES,
    assert_same_step,
    dead_mask,
    forward_backward,
    saelens_twin,
    twins,
)


@pytest.fixture
def deterministic_algorithms():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize(
    "architecture,form",
    [
        ("sparse_topk", None),
        ("aligned_batchtopk", "tied"),
        ("aligned_topk", "projected"),
    ],
)
@pytest.mark.usefixtures("deterministic_algorithms")
def test_the_step_runs_under_deterministic_algorithms_and_repeats_exactly(
    architecture, form
):
    sparse, dense_twin = twins(architecture, form)
    x = next(random_batches(D_IN, BATCH))
    _, first = forward_backward(sparse, x, dead_mask())
    _, second = forward_backward(sparse, x, dead_mask())
    for name, grad in first.items():
        assert grad is None or torch.equal(grad, second[name]), name
    assert_same_step(sparse, dense_twin, dead_mask())


def test_the_bias_gradient_is_summed_in_fp32():
    # 1024 pairs on one latent, each with gradient 1: summed in bf16 the total
    # stalls at 256 (bf16 has 8 significant bits); in fp32 it is exact.
    batch, d_in = 1024, 4
    pairs = ActivePairs(
        torch.arange(batch), torch.zeros(batch, dtype=torch.long), batch, 2, 1
    )
    b_enc = torch.zeros(2, dtype=torch.bfloat16, requires_grad=True)
    pre_acts_N = gathered_pre_acts(
        torch.randn(batch, d_in),
        torch.randn(d_in, 2, requires_grad=True),
        b_enc,
        pairs,
        torch.zeros(batch),
    )
    pre_acts_N.sum().backward()
    assert b_enc.grad is not None
    assert b_enc.grad.tolist() == [1024.0, 0.0]


def full_batch_topk(hidden_pre_BF: torch.Tensor, k: float) -> set[int]:
    flat = torch.topk(hidden_pre_BF.relu().flatten(), int(k * hidden_pre_BF.shape[0]))
    return set(flat.indices.tolist())


@pytest.mark.parametrize("seed", range(3))
def test_batch_topk_candidates_choose_the_full_top_k_set(seed):
    gen = torch.Generator().manual_seed(seed)
    hidden_pre_BF = torch.randn(64, 512, generator=gen)
    k = 8.0
    expected = full_batch_topk(hidden_pre_BF, k)
    kth = float(hidden_pre_BF.flatten().sort(descending=True).values[int(k * 64) - 1])
    # Floors well under, just under, at and above the k-th value (the last two
    # leave too few candidates: the full top-k runs), and none.
    for floor in (None, 0.5 * kth, 0.999 * kth, kth, 1.5 * kth):
        pairs = batch_topk_pairs(hidden_pre_BF, k, floor=floor)
        chosen = (pairs.rows_N * 512 + pairs.cols_N).tolist()
        assert chosen == sorted(chosen)  # sorted by token, then latent
        assert set(chosen) == expected, floor


def test_batch_topk_steps_search_candidates_under_the_last_choice():
    sparse, _ = twins("sparse_batchtopk", None)
    assert sparse._candidate_floor is None  # the first step searches everything
    out, _ = forward_backward(sparse, next(random_batches(D_IN, BATCH)), dead_mask())
    values = out.feature_acts.values().detach()
    smallest = float(values[values > 0].min())
    assert sparse._candidate_floor == pytest.approx(
        sparse_topk.BATCH_TOPK_CANDIDATE_FLOOR * smallest
    )


# Every case with TopK's AuxK, and the Matryoshka cases with its per-level AuxK.
AUXK_CASES = [pytest.param(*case.values, {}, id=case.id) for case in SPARSE_CASES] + [
    pytest.param(*case.values, MATRYOSHKA_AUX, id=f"{case.id}-level_auxk")
    for case in MATRYOSHKA_CASES
]


@pytest.mark.parametrize("auxk_path", ["dense", "sparse"])
@pytest.mark.parametrize("architecture,form,config", AUXK_CASES)
def test_auxk_by_either_decode_matches_the_dense_step(
    architecture, form, config, auxk_path, monkeypatch
):
    per_pair = float("inf") if auxk_path == "dense" else 0.0
    monkeypatch.setattr(sparse_topk, "AUXK_DENSE_MAX_DEAD_PER_PAIR", per_pair)
    sparse, dense_twin = twins(architecture, form, **config)
    assert_same_step(sparse, dense_twin, dead_mask())


def test_auxk_decodes_dense_below_the_measured_crossover_only():
    k_aux = 288
    per_pair = sparse_topk.AUXK_DENSE_MAX_DEAD_PER_PAIR
    assert sparse_topk.auxk_decodes_dense(int(per_pair * k_aux), k_aux)
    assert not sparse_topk.auxk_decodes_dense(int(per_pair * k_aux) + 1, k_aux)


def exact_in_bf16(sae: TrainingSAE[Any]) -> torch.Tensor:
    """Weights and one-hot tokens whose pre-activations bf16 holds exactly and
    whose top k is unambiguous, so the bf16 and fp32 choices agree: each row of
    W_enc is a permutation of distinct multiples of 1/64, no biases, every
    decoder row d_i = e_i / ||e_i||² (aligned in both forms). [BATCH, D_IN]"""
    gen = torch.Generator().manual_seed(3)
    grid_F = (torch.arange(D_SAE) - D_SAE // 2) / 64
    W_enc_DF = torch.stack(
        [grid_F[torch.randperm(D_SAE, generator=gen)] for _ in range(D_IN)]
    )
    with torch.no_grad():
        sae.W_enc.copy_(W_enc_DF)
        sae.W_dec.copy_(W_enc_DF.T / W_enc_DF.T.pow(2).sum(-1, keepdim=True))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return torch.eye(D_IN).repeat(BATCH // D_IN, 1)


def autocast_step(sae: TrainingSAE[Any], x: torch.Tensor) -> tuple[Any, Any]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return forward_backward(sae, x, dead_mask())


def assert_close_in_bf16(a: torch.Tensor, b: torch.Tensor, msg: str = "") -> None:
    scale = float(b.detach().abs().max()) + 1e-12
    torch.testing.assert_close(
        a.float() / scale, b.float() / scale, atol=2e-2, rtol=0, msg=msg
    )


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_bf16_autocast_step_gives_saelens_dense_autocast_loss_and_gradients(
    architecture, form
):
    sparse, _ = twins(architecture, form, rescale_acts_by_decoder_norm=False)
    x = exact_in_bf16(sparse)
    # SAELens' own class where the SAE is stock, our dense step where aligned.
    reference = (
        saelens_twin(sparse)
        if form is None
        else twins(architecture, form, rescale_acts_by_decoder_norm=False)[1]
    )
    reference.load_state_dict(sparse.state_dict())
    (out, grads), (out_ref, grads_ref) = (
        autocast_step(sae, x) for sae in (sparse, reference)
    )
    assert torch.equal(dense(out.feature_acts) > 0, dense(out_ref.feature_acts) > 0)
    for name in out_ref.losses:
        assert_close_in_bf16(out.losses[name], out_ref.losses[name], name)
    for name, grad in grads_ref.items():
        if grad is not None:
            assert_close_in_bf16(grads[name], grad, name)


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_bf16_autocast_step_keeps_the_dense_steps_losses_on_any_data(
    architecture, form
):
    # On generic data the bf16 bias add can swap latents (TopK's or AuxK's)
    # within a bf16 rounding of each other: the losses stay within a few %.
    sparse, dense_twin = twins(architecture, form)
    x = next(random_batches(D_IN, BATCH))
    (out, grads), (out_ref, _) = (autocast_step(sae, x) for sae in (sparse, dense_twin))
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert out.feature_acts.values().dtype == torch.float32
    for name in out_ref.losses:
        torch.testing.assert_close(
            out.losses[name].float(), out_ref.losses[name].float(), atol=1e-3, rtol=5e-2
        )


def test_the_step_output_holds_no_batch_by_d_sae_tensor():
    sparse, dense_twin = twins("aligned_topk", "tied")
    x = next(random_batches(D_IN, BATCH))
    out, _ = forward_backward(sparse, x, dead_mask())
    out_ref, _ = forward_backward(dense_twin, x, dead_mask())
    assert out.hidden_pre.is_sparse
    assert out.hidden_pre._nnz() == BATCH * sparse.cfg.k
    # ... holding the dense step's pre-activations at the active pairs.
    chosen = dense(out.feature_acts) != 0
    torch.testing.assert_close(
        dense(out.hidden_pre)[chosen], out_ref.hidden_pre.detach()[chosen]
    )
    # The step's [B, F] scratch is the SAE's while it trains, and freed after.
    assert sparse.__dict__.get("_hidden_pre_scratch") is not None
    sparse.eval()
    assert sparse.__dict__.get("_hidden_pre_scratch") is None


def test_stock_sparse_steps_store_the_encoder_feature_major():
    sparse, _ = twins("sparse_topk", None)
    assert sparse.W_enc.T.is_contiguous()
    assert saelens_twin(sparse).W_enc.is_contiguous()
