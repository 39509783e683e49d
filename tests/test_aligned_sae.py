"""Invariants of every registered aligned architecture, in both alignment forms."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens import SAE, TrainingSAE
from sae_lens.config import SAETrainerConfig
from sae_lens.registry import SAE_CLASS_REGISTRY, SAE_TRAINING_CLASS_REGISTRY
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE
from sae_lens.training.sae_trainer import SAETrainer

import saelens_aligned
from saelens_aligned.aligned_sae import AlignedTrainingSAE
from saelens_aligned.diagnostics import sae_alignment_cosines, sae_alignment_scores
from saelens_aligned.pipeline.training import in_process_trainer_config
from tests.conftest import (
    ALIGNED_ARCHITECTURES,
    ALIGNED_CASES,
    dense,
    make_base_twin,
    make_sae,
    random_batches,
    step_input,
)

TOL = 1e-5


def assert_aligned(sae: Any, alignment: str, check_cosine: bool = True) -> None:
    scores = sae_alignment_scores(sae)
    assert float((scores - 1).abs().max()) <= TOL
    if alignment == "tied" and check_cosine:
        assert float((sae_alignment_cosines(sae) - 1).abs().max()) <= TOL


def trainer_config(steps: int, batch: int = 64, **kwargs: Any) -> SAETrainerConfig:
    return in_process_trainer_config(steps * batch, batch, lr=3e-3, **kwargs)


def train(sae: TrainingSAE[Any], steps: int) -> SAETrainer[Any, Any]:
    trainer = SAETrainer(
        cfg=trainer_config(steps),
        sae=sae,
        data_provider=random_batches(sae.cfg.d_in),
    )
    trainer.fit()
    return trainer


def test_importing_registers_every_variant_once_and_reloading_is_harmless():
    import importlib

    expected = {
        "aligned",
        "aligned_topk",
        "aligned_batchtopk",
        "aligned_jumprelu",
        "aligned_gated",
        "aligned_matryoshka_batchtopk",
    }
    assert expected <= set(ALIGNED_ARCHITECTURES)
    importlib.reload(saelens_aligned)
    importlib.reload(saelens_aligned)
    saelens_aligned.register_aligned_architectures()
    assert set(saelens_aligned.aligned_architectures()) == set(ALIGNED_ARCHITECTURES)
    for name in expected:
        assert name in SAE_TRAINING_CLASS_REGISTRY and name in SAE_CLASS_REGISTRY


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_alignment_holds_at_init_and_after_100_training_steps(architecture, alignment):
    sae = make_sae(architecture, alignment)
    assert_aligned(sae, alignment)
    train(sae, steps=100)
    assert_aligned(sae, alignment)
    # ... and for what the forward pass actually uses, captured inside the step.
    used: dict[str, torch.Tensor] = {}
    original = sae.decode

    def spy_decode(feature_acts: torch.Tensor) -> torch.Tensor:
        used["W_enc"], used["W_dec"] = sae.W_enc.detach(), sae.W_dec.detach()
        return original(feature_acts)

    sae.decode = spy_decode  # type: ignore[method-assign]
    sae.training_forward_pass(step_input(sae, next(random_batches(sae.cfg.d_in))))
    scale = sae.magnitude_scale()
    W_enc = used["W_enc"] if scale is None else used["W_enc"] * scale.detach()
    scores = saelens_aligned.alignment_scores(W_enc, used["W_dec"])
    assert float((scores - 1).abs().max()) <= TOL


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_alignment_survives_folds(architecture, alignment):
    sae = make_sae(architecture, alignment)
    train(sae, steps=20)
    sae.fold_W_dec_norm()
    assert_aligned(sae, alignment)
    sae.fold_activation_norm_scaling_factor(2.5)
    assert_aligned(sae, alignment)
    d_in = sae.cfg.d_in
    M = torch.eye(d_in) + 0.1 * torch.randn(d_in, d_in)
    sae.fold_activation_whitening(torch.randn(d_in), M, torch.linalg.inv(M))
    # Whitening is not a rotation: it keeps a_i but cannot keep cos(e_i, d_i).
    assert_aligned(sae, alignment, check_cosine=False)


# BatchTopK's selection depends on the whole batch, so its outputs are not a
# function of one input and cannot be compared across an affine change of inputs.
@pytest.mark.parametrize(
    "architecture,alignment",
    [case for case in ALIGNED_CASES if "batchtopk" not in case.values[0]],
)
def test_folding_whitening_preserves_outputs(architecture, alignment):
    sae = make_sae(architecture, alignment)
    train(sae, steps=20)
    sae.eval()
    d_in = sae.cfg.d_in
    M = torch.eye(d_in) + 0.1 * torch.randn(d_in, d_in)
    mean = torch.randn(d_in)
    x = torch.randn(32, d_in)
    before = sae.decode(sae.encode((x - mean) @ M)) @ torch.linalg.inv(M) + mean
    sae.fold_activation_whitening(mean, M, torch.linalg.inv(M))
    torch.testing.assert_close(sae.decode(sae.encode(x)), before, atol=1e-4, rtol=1e-4)


def reference_outputs(sae: TrainingSAE[Any], x: torch.Tensor) -> torch.Tensor:
    """What the training SAE computes at inference time. BatchTopK exports as
    JumpReLU with its running threshold, so that is the reference for it."""
    if isinstance(sae, BatchTopKTrainingSAE):
        _, hidden_pre = sae.encode_with_hidden_pre(x)
        acts = hidden_pre * (hidden_pre > sae.topk_threshold.float())
        return sae.decode(acts)
    return sae.decode(sae.encode(x))


def export_and_reload(sae: TrainingSAE[Any], path: Path) -> SAE[Any]:
    sae.save_inference_model(path)
    return SAE.load_from_disk(path)


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_checkpoint_and_export_keep_alignment_and_outputs(
    architecture, alignment, tmp_path
):
    sae = make_sae(architecture, alignment)
    train(sae, steps=30)
    sae.eval()
    x = torch.randn(32, sae.cfg.d_in)
    expected = reference_outputs(sae, x)

    sae.save_model(tmp_path / "checkpoint")
    reloaded = TrainingSAE.load_from_disk(tmp_path / "checkpoint")
    assert isinstance(reloaded, AlignedTrainingSAE)
    assert reloaded.cfg.alignment == alignment
    assert_aligned(reloaded, alignment)
    for name, value in sae.state_dict().items():
        # SAELens reloads every tensor in cfg.dtype (BatchTopK's float64 threshold
        # comes back float32); the weights themselves must be bit-exact.
        torch.testing.assert_close(
            reloaded.state_dict()[name].to(value.dtype),
            value,
            **({"atol": 0, "rtol": 0} if name.startswith("W_") else {}),
        )

    exported = export_and_reload(sae, tmp_path / "export")
    assert (
        exported.cfg.architecture()
        == SAE_CLASS_REGISTRY[architecture][1].architecture()
    )
    assert exported.cfg.metadata.training_architecture == architecture
    assert_aligned(exported, alignment)
    torch.testing.assert_close(
        exported.decode(exported.encode(x)), expected, atol=1e-5, rtol=1e-5
    )


def test_exports_load_in_a_fresh_process_without_the_plugin(tmp_path):
    paths = []
    for architecture in ALIGNED_ARCHITECTURES:
        for alignment in ("tied", "projected"):
            sae = make_sae(architecture, alignment)
            train(sae, steps=10)
            path = tmp_path / f"{architecture}-{alignment}"
            sae.save_inference_model(path)
            paths.append(str(path))
    script = (
        "import json, sys, torch\n"
        "from sae_lens import SAE\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    sae = SAE.load_from_disk(p)\n"
        "    W_enc = sae.W_enc * sae.r_mag.exp() if hasattr(sae, 'r_mag') else sae.W_enc\n"
        "    a = (W_enc * sae.W_dec.T).sum(0)\n"
        "    out[p] = [sae.cfg.architecture(), float((a - 1).abs().max())]\n"
        "print(json.dumps(out))\n"
        "assert 'saelens_aligned' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(paths)
    for _, deviation in loaded.values():
        assert deviation <= TOL


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_aligned_matches_its_base_exactly_when_the_constraint_already_holds(
    architecture, alignment
):
    aligned = make_sae(architecture, alignment)
    train(aligned, steps=10)
    base = make_base_twin(aligned)
    x = next(random_batches(aligned.cfg.d_in, seed=3))
    mask = torch.rand(aligned.cfg.d_sae) < 0.3  # exercise dead-latent aux losses
    inp = step_input(base, x)
    inp.dead_neuron_mask = mask
    inp_aligned = step_input(aligned, x)
    inp_aligned.dead_neuron_mask = mask
    out_aligned = aligned.training_forward_pass(inp_aligned)
    out_base = base.training_forward_pass(inp)
    torch.testing.assert_close(
        out_aligned.sae_out, out_base.sae_out, atol=1e-5, rtol=1e-5
    )
    # The TopK family trains with the sparse step: its activations are sparse.
    torch.testing.assert_close(
        dense(out_aligned.feature_acts), out_base.feature_acts, atol=1e-5, rtol=1e-5
    )
    assert out_aligned.losses.keys() == out_base.losses.keys()
    for name in out_base.losses:
        torch.testing.assert_close(
            out_aligned.losses[name], out_base.losses[name], atol=1e-4, rtol=1e-5
        )


@pytest.mark.parametrize("architecture", ALIGNED_ARCHITECTURES)
def test_tied_decoder_gets_no_gradient_and_no_optimizer_state(architecture):
    sae = make_sae(architecture, "tied")
    trainer = train(sae, steps=3)
    assert not sae.W_dec.requires_grad
    assert sae.W_dec.grad is None
    assert sae.W_dec not in trainer.optimizer.state
    assert sae.W_enc in trainer.optimizer.state


@pytest.mark.parametrize("architecture", ALIGNED_ARCHITECTURES)
def test_projected_encoder_gradient_has_no_component_along_its_decoder(architecture):
    sae = make_sae(architecture, "projected")
    train(sae, steps=5)
    out = sae.training_forward_pass(step_input(sae, next(random_batches(sae.cfg.d_in))))
    out.loss.backward()
    grad_DF = sae.W_enc.grad
    assert grad_DF is not None and grad_DF.abs().max() > 0
    along_F = (grad_DF * sae.W_dec.T).sum(0) / sae.W_dec.norm(dim=1)
    assert float(along_F.abs().max()) <= 1e-5 * float(grad_DF.norm(dim=0).max())


@pytest.mark.parametrize(
    "architecture", ["aligned", "aligned_jumprelu", "aligned_gated"]
)
@pytest.mark.parametrize("alignment", ["tied", "projected"])
def test_zero_encoder_column_or_decoder_row_trains_without_nan(architecture, alignment):
    # (TopK-family bases divide by the decoder norm themselves, as in SAELens.)
    if True:
        sae = make_sae(architecture, alignment)
        with torch.no_grad():
            sae.W_enc[:, 0] = 0
            sae.W_dec[1] = 0
        out = sae.training_forward_pass(step_input(sae, torch.randn(8, sae.cfg.d_in)))
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert all(
            torch.isfinite(p.grad).all() for p in sae.parameters() if p.grad is not None
        )


def test_unknown_aligned_variant_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match="aligned_topk"):
        saelens_aligned.get_aligned_training_class("aligned_bogus")


@pytest.mark.parametrize("d_sae", [0, -4])
def test_nonpositive_d_sae_is_rejected(d_sae):
    with pytest.raises(ValueError, match="d_sae"):
        saelens_aligned.AlignedStandardTrainingSAEConfig(d_in=8, d_sae=d_sae)


def test_k_above_d_sae_is_rejected():
    with pytest.raises(
        ValueError, match=r"k=17 is invalid: expected a number in \(0, d_sae\]"
    ):
        saelens_aligned.AlignedTopKTrainingSAEConfig(d_in=8, d_sae=16, k=17)


@pytest.mark.parametrize(
    "architecture,field,value",
    [
        ("aligned", "l1_coefficient", -2.0),
        ("aligned_gated", "l1_coefficient", float("nan")),
        ("aligned_topk", "aux_loss_coefficient", -1.0),
        ("aligned_jumprelu", "l0_coefficient", -0.5),
        ("panneal", "l1_coefficient", -1.0),
    ],
)
def test_bad_coefficients_fail_when_the_config_is_built(architecture, field, value):
    # The config a user hands to SAELens' own runner: no CLI in between.
    from sae_lens.registry import get_sae_training_class

    config_class = get_sae_training_class(architecture)[1]
    extra = (
        {"p_anneal_total_steps": 100, "anneal_start": 10}
        if architecture == "panneal"
        else {}
    )
    with pytest.raises(
        ValueError, match=rf"{field}=.* is invalid: expected a finite number >= 0"
    ):
        config_class(d_in=8, d_sae=128, **{field: value}, **extra)


def test_unknown_alignment_form_is_rejected():
    with pytest.raises(
        ValueError, match=r"alignment='rescaled' is invalid: expected one of"
    ):
        saelens_aligned.AlignedTopKTrainingSAEConfig(
            d_in=8, d_sae=16, k=4, alignment="rescaled"
        )  # type: ignore[arg-type]


def test_zero_decoder_row_at_load_time_is_rejected_naming_the_field(tmp_path):
    sae = make_sae("aligned_topk", "projected")
    sae.save_model(tmp_path)
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "sae_weights.safetensors")
    weights["W_dec"][3] = 0
    save_file(weights, tmp_path / "sae_weights.safetensors")
    with pytest.raises(ValueError, match=r"W_dec has 1 zero rows \(features \[3\]"):
        TrainingSAE.load_from_disk(tmp_path)


@pytest.mark.parametrize("architecture,alignment", ALIGNED_CASES)
def test_both_forms_start_at_unit_gain_with_their_free_weights_at_trainable_scale(
    architecture, alignment
):
    sae = make_sae(architecture, alignment)
    d_sae = sae.cfg.d_sae
    torch.testing.assert_close(sae_alignment_cosines(sae), torch.ones(d_sae))
    torch.testing.assert_close(sae_alignment_scores(sae), torch.ones(d_sae))
    encoder_norm = sae.effective_encoder().norm(dim=0)
    if alignment == "tied":  # the free encoder keeps SAELens' scale
        expected = (sae.cfg.decoder_init_norm, 1 / sae.cfg.decoder_init_norm)
    else:  # both free: balanced
        expected = (1.0, 1.0)
    torch.testing.assert_close(encoder_norm, torch.full((d_sae,), expected[0]))
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.full((d_sae,), expected[1]))
