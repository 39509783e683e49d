"""The aligned step's fast path: the stored aligned matrix with closed-form
gradients, its memory, and SAELens' sparse decode."""

from typing import Any

import pytest
import torch
from sae_lens.training.sae_trainer import SAETrainer

from saelens_aligned.alignment import (
    ALIGNMENT_FORMS,
    alignment_scores,
    effective_encoder,
    feature_major,
    is_feature_major,
    project_encoder_,
    projected_encoder,
    stored_projected_encoder,
    stored_tied_decoder,
    tied_decoder,
    write_tied_decoder_,
)
from saelens_aligned.pipeline.training import in_process_trainer_config
from tests.conftest import ALIGNED_CASES, make_sae, random_batches, step_input

D_IN, D_SAE = 12, 30
# Training-step shapes: k small against d_sae, a batch distinct from both widths.
STEP_D_IN, STEP_D_SAE, STEP_K, STEP_BATCH = 32, 128, 8, 64
# SAELens' sparse decode for TopK (a COO tensor times W_dec), which SAELens trains
# only with rescale_acts_by_decoder_norm off (see benchmarks.perf.settings.SPARSE_TOPK).
SPARSE_DECODE = {"use_sparse_activations": True, "rescale_acts_by_decoder_norm": False}


def step_sae(architecture: str, alignment: str | None = None, **config: Any) -> Any:
    return make_sae(
        architecture, alignment, d_in=STEP_D_IN, d_sae=STEP_D_SAE, k=STEP_K, **config
    )


def step_trainer(sae: Any) -> SAETrainer[Any, Any]:
    """A trainer fed batch by batch (`trainer.step`), constant rate."""
    cfg = in_process_trainer_config(10**9, STEP_BATCH)
    return SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))


def _weights(feature_major_layout: bool, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    W_enc_DF = torch.randn(D_IN, D_SAE, generator=gen, dtype=torch.float64)
    W_dec_FD = torch.randn(D_SAE, D_IN, generator=gen, dtype=torch.float64)
    log_scale_F = 0.3 * torch.randn(D_SAE, generator=gen, dtype=torch.float64)
    grad_FD = torch.randn(D_SAE, D_IN, generator=gen, dtype=torch.float64)
    W_enc_DF[:, 3] = 0  # degenerate encoder column
    W_dec_FD[5] = 0  # degenerate decoder row
    if feature_major_layout:
        W_enc_DF = feature_major(W_enc_DF)
    return W_enc_DF, W_dec_FD, log_scale_F, grad_FD


@pytest.mark.parametrize("feature_major_layout", [True, False])
@pytest.mark.parametrize("scaled", [False, True], ids=["plain", "gated-scale"])
def test_stored_tied_decoder_has_the_tied_maps_value_and_gradient(
    feature_major_layout, scaled
):
    W_enc_DF, _, log_scale_F, grad_FD = _weights(feature_major_layout)
    W_enc_DF.requires_grad_()
    log_scale_F.requires_grad_()
    expected_FD = tied_decoder(
        effective_encoder(W_enc_DF, log_scale_F.exp() if scaled else None)
    )
    expected_grads = torch.autograd.grad(
        (expected_FD * grad_FD).sum(), [W_enc_DF, log_scale_F], allow_unused=True
    )

    W_dec_FD = torch.empty(D_SAE, D_IN, dtype=torch.float64)
    scale_F = log_scale_F.detach().exp() if scaled else None
    sq_norm_F = write_tied_decoder_(W_dec_FD, W_enc_DF.detach(), scale_F)
    torch.testing.assert_close(W_dec_FD, expected_FD.detach())
    stored_FD = stored_tied_decoder(
        W_enc_DF, W_dec_FD, sq_norm_F, log_scale_F.exp() if scaled else None
    )
    assert stored_FD.data_ptr() == W_dec_FD.data_ptr()  # no copy
    grads = torch.autograd.grad(
        (stored_FD * grad_FD).sum(), [W_enc_DF, log_scale_F], allow_unused=True
    )
    torch.testing.assert_close(grads[0], expected_grads[0])
    if scaled:
        torch.testing.assert_close(grads[1], expected_grads[1])


@pytest.mark.parametrize("feature_major_layout", [True, False])
@pytest.mark.parametrize("scaled", [False, True], ids=["plain", "gated-scale"])
def test_stored_projected_encoder_has_the_projected_maps_value_and_gradient(
    feature_major_layout, scaled
):
    W_enc_DF, W_dec_FD, log_scale_F, grad_FD = _weights(feature_major_layout)
    grad_DF = grad_FD.T

    def target() -> Any:
        return 1 / log_scale_F.exp() if scaled else 1.0

    sq_norm_F, residual_F = project_encoder_(W_enc_DF, W_dec_FD, target())
    scores_F = alignment_scores(W_enc_DF, W_dec_FD)
    live_F = torch.arange(D_SAE) != 5
    torch.testing.assert_close(
        scores_F[live_F],
        torch.broadcast_to(torch.as_tensor(target(), dtype=torch.float64), (D_SAE,))[
            live_F
        ],
    )
    assert float(residual_F[live_F].abs().max()) == 0.0
    assert float(residual_F[5]) != 0.0  # a zero decoder row cannot be aligned

    for t in (W_enc_DF, W_dec_FD, log_scale_F):
        t.requires_grad_()
    inputs = [W_enc_DF, W_dec_FD, log_scale_F]
    expected_DF = projected_encoder(W_enc_DF, W_dec_FD, target())
    torch.testing.assert_close(expected_DF, W_enc_DF.detach())  # on the surface
    expected = torch.autograd.grad(
        (expected_DF * grad_DF).sum(), inputs, allow_unused=True
    )
    stored_DF = stored_projected_encoder(
        W_enc_DF, W_dec_FD, sq_norm_F, residual_F, target() if scaled else None
    )
    assert stored_DF.data_ptr() == W_enc_DF.data_ptr()  # no copy
    grads = torch.autograd.grad((stored_DF * grad_DF).sum(), inputs, allow_unused=True)
    torch.testing.assert_close(grads[0], expected[0])
    # The zero row's gradient is (residual / clamp) * g: ~1e12, compared relatively.
    torch.testing.assert_close(
        grads[1], expected[1], rtol=1e-9, atol=1e-9 * float(expected[1].abs().max())
    )
    if scaled:
        torch.testing.assert_close(grads[2], expected[2])


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_W_enc_stays_feature_major_through_training_folds_and_loading(
    architecture, alignment, tmp_path
):
    sae = make_sae(architecture, alignment)
    assert is_feature_major(sae.W_enc)
    trainer = step_trainer(sae)
    batches = random_batches(sae.cfg.d_in)
    for _ in range(3):
        trainer.step(next(batches))
    assert is_feature_major(sae.W_enc)
    state_dict = {k: v.detach().clone() for k, v in sae.state_dict().items()}
    sae.save_model(tmp_path)  # safetensors needs contiguous tensors
    plain = {k: v.contiguous() for k, v in state_dict.items()}
    reloaded = make_sae(architecture, alignment, seed=1)
    reloaded.load_state_dict(plain, assign=True)
    assert is_feature_major(reloaded.W_enc)
    torch.testing.assert_close(reloaded.W_enc, sae.W_enc, atol=0, rtol=0)
    torch.testing.assert_close(reloaded.W_dec, sae.W_dec, atol=0, rtol=0)
    x = next(batches)
    for s in (sae, reloaded):
        s.zero_grad()
        s.training_forward_pass(step_input(s, x)).loss.backward()
    for name, p in sae.named_parameters():
        q = dict(reloaded.named_parameters())[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, atol=0, rtol=0)


def _sparse_twin_saes(alignment: str, **config: Any) -> tuple[Any, Any]:
    # SAELens' own sparse decode (use_sparse_activations) on SAELens' dense step;
    # our sparse step is tested in test_sparse_topk.py.
    config = {**config, "sparse_training": False}
    dense = step_sae(
        "aligned_topk", alignment, **{**config, "use_sparse_activations": False}
    )
    sparse = step_sae("aligned_topk", alignment, **config)
    sparse.load_state_dict(
        {k: v.detach().clone() for k, v in dense.state_dict().items()}
    )
    return dense, sparse


@pytest.mark.parametrize("alignment", ALIGNMENT_FORMS)
def test_sparse_decode_trains_aligned_topk_as_the_dense_decode_does(alignment):
    dense, sparse = _sparse_twin_saes(alignment, **SPARSE_DECODE)
    x = next(random_batches(STEP_D_IN, batch=STEP_BATCH))
    outputs = {}
    for name, sae in (("dense", dense), ("sparse", sparse)):
        out = sae.training_forward_pass(step_input(sae, x))
        out.loss.backward()
        outputs[name] = out
    assert outputs["sparse"].feature_acts.is_sparse
    torch.testing.assert_close(
        outputs["sparse"].loss, outputs["dense"].loss, atol=1e-5, rtol=1e-5
    )
    for (name, p), q in zip(dense.named_parameters(), sparse.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4)
    trainer = step_trainer(sparse)
    batches = random_batches(STEP_D_IN, batch=STEP_BATCH)
    for _ in range(5):
        trainer.step(next(batches))
    scores = sparse.alignment_scores_of_stored()
    assert float((scores - 1).abs().max()) <= 1e-4


@pytest.mark.parametrize("alignment", ALIGNMENT_FORMS)
def test_sparse_decode_with_decoder_norm_rescaling_behaves_as_its_base(alignment):
    # SAELens' own TopK cannot train this combination (its rescaling multiplies the
    # COO activations by a dense vector, whose backward torch lacks); aligned TopK
    # must neither fail where TopK works nor hide TopK's failure, on SAELens' dense
    # step. (Our sparse step trains it: test_sparse_topk.py.)
    config = {"use_sparse_activations": True, "rescale_acts_by_decoder_norm": True}
    x = next(random_batches(STEP_D_IN, batch=STEP_BATCH))
    results = {}
    for name, sae in (
        (
            "aligned",
            step_sae("aligned_topk", alignment, sparse_training=False, **config),
        ),
        ("base", step_sae("topk", **config)),
    ):
        try:
            sae.training_forward_pass(step_input(sae, x)).loss.backward()
            results[name] = None
        except Exception as e:  # compared below, not swallowed
            results[name] = type(e)
    assert results["aligned"] == results["base"], results
