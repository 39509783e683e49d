"""The sparse TopK step computes what SAELens' dense step computes."""

import json
from typing import Any

import pytest
import torch
from sae_lens import SAE
from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, get_sae_training_class
from sae_lens.saes.sae import TrainingSAE, TrainStepInput
from sae_lens.training.sae_trainer import SAETrainer

from saelens_aligned.aligned_sae import AlignedTrainingSAEConfig
from saelens_aligned.architectures import base_architecture
from saelens_aligned.sparse_config import SparseTrainingSAEConfig
from tests.conftest import dense, make_sae, random_batches
from tests.test_aligned_sae import trainer_config

# Read from the registry: every architecture with the sparse step, stock or aligned.
SPARSE_ARCHITECTURES = sorted(
    name
    for name, (_, config_class) in SAE_TRAINING_CLASS_REGISTRY.items()
    if issubclass(config_class, SparseTrainingSAEConfig)
)


def _forms(architecture: str) -> list[str | None]:
    config_class = SAE_TRAINING_CLASS_REGISTRY[architecture][1]
    if issubclass(config_class, AlignedTrainingSAEConfig):
        return ["tied", "projected"]
    return [None]


SPARSE_CASES = [
    pytest.param(arch, form, id=f"{arch}-{form or 'stock'}")
    for arch in SPARSE_ARCHITECTURES
    for form in _forms(arch)
]
# Matryoshka's own per-level AuxK is a separate config switch.
MATRYOSHKA_AUX = {"use_matryoshka_aux_loss": True}
MATRYOSHKA_CASES = [
    case
    for case in SPARSE_CASES
    if "use_matryoshka_aux_loss"
    in SAE_TRAINING_CLASS_REGISTRY[case.values[0]][1].__dataclass_fields__
]
D_IN, D_SAE, BATCH = 16, 48, 64


def test_every_topk_family_architecture_has_the_sparse_step():
    assert {
        "sparse_topk",
        "sparse_batchtopk",
        "sparse_matryoshka_batchtopk",
        "aligned_topk",
        "aligned_batchtopk",
        "aligned_matryoshka_batchtopk",
    } <= set(SPARSE_ARCHITECTURES)


def twins(
    architecture: str, form: str | None, seed: int = 0, **config: Any
) -> tuple[TrainingSAE[Any], TrainingSAE[Any]]:
    """(sparse step, dense step) SAEs with the same config and weights, moved off
    their initialisation so no symmetry of it hides a difference."""
    sparse = make_sae(architecture, form, D_IN, D_SAE, seed, **config)
    with torch.no_grad():
        for p in sparse.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    dense_twin = make_sae(
        architecture, form, D_IN, D_SAE, seed, sparse_training=False, **config
    )
    dense_twin.load_state_dict(
        {k: v.detach().clone() for k, v in sparse.state_dict().items()}
    )
    sparse.load_state_dict(dense_twin.state_dict())  # both aligned the same way
    return sparse, dense_twin


def saelens_twin(sparse: TrainingSAE[Any]) -> TrainingSAE[Any]:
    """SAELens' own base class, same fields and weights as a stock sparse SAE."""
    sae_class, config_class = get_sae_training_class(
        base_architecture(type(sparse.cfg))
    )
    fields = {
        name: value
        for name, value in sparse.cfg.to_dict().items()
        if name in config_class.__dataclass_fields__ and name != "metadata"
    }
    twin = sae_class(config_class(**fields))
    twin.load_state_dict(
        {k: v.detach().clone() for k, v in sparse.state_dict().items()}
    )
    return twin


def dead_mask(seed: int = 0) -> torch.Tensor:
    return torch.rand(D_SAE, generator=torch.Generator().manual_seed(seed)) < 0.4


def forward_backward(
    sae: TrainingSAE[Any], x: torch.Tensor, dead: torch.Tensor
) -> tuple[Any, dict[str, torch.Tensor | None]]:
    for p in sae.parameters():
        p.grad = None
    out = sae.training_forward_pass(
        TrainStepInput(
            sae_in=x,
            coefficients={name: 1.0 for name in sae.get_coefficients()},
            dead_neuron_mask=dead,
            n_training_steps=0,
            is_logging_step=False,
        )
    )
    out.loss.backward()
    return out, {name: p.grad for name, p in sae.named_parameters()}


def assert_same_step(a: TrainingSAE[Any], b: TrainingSAE[Any], dead: torch.Tensor):
    x = next(random_batches(D_IN, BATCH, seed=5))
    out_a, grads_a = forward_backward(a, x, dead)
    out_b, grads_b = forward_backward(b, x, dead)
    assert out_a.losses.keys() == out_b.losses.keys()
    for name in out_b.losses:
        torch.testing.assert_close(
            out_a.losses[name], out_b.losses[name], atol=1e-5, rtol=1e-5
        )
    if dead.any():
        assert out_b.losses["auxiliary_reconstruction_loss"] > 0  # AuxK ran
    torch.testing.assert_close(out_a.sae_out, out_b.sae_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        dense(out_a.feature_acts), dense(out_b.feature_acts), atol=1e-5, rtol=1e-5
    )
    assert grads_a.keys() == grads_b.keys()
    for name, grad in grads_b.items():
        assert (grads_a[name] is None) == (grad is None), name
        if grad is not None:
            scale = float(grad.abs().max()) + 1e-12
            torch.testing.assert_close(
                grads_a[name] / scale, grad / scale, atol=1e-5, rtol=0, msg=name
            )


def test_the_sparse_step_makes_sparse_activations_and_the_dense_one_dense():
    sparse, dense_twin = twins("aligned_topk", "tied")
    x = next(random_batches(D_IN, BATCH))
    assert forward_backward(sparse, x, dead_mask())[0].feature_acts.is_sparse
    assert not forward_backward(dense_twin, x, dead_mask())[0].feature_acts.is_sparse


@pytest.mark.parametrize("rescale", [True, False], ids=["rescale", "no_rescale"])
@pytest.mark.parametrize("auxk", [True, False], ids=["auxk", "no_auxk"])
@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_one_sparse_step_gives_the_dense_steps_loss_and_gradients(
    architecture, form, auxk, rescale
):
    sparse, dense_twin = twins(architecture, form, rescale_acts_by_decoder_norm=rescale)
    dead = dead_mask() if auxk else torch.zeros(D_SAE, dtype=torch.bool)
    assert_same_step(sparse, dense_twin, dead)


@pytest.mark.parametrize("rescale", [True, False], ids=["rescale", "no_rescale"])
@pytest.mark.parametrize("architecture,form", MATRYOSHKA_CASES)
def test_matryoshka_level_auxk_matches_the_dense_step(architecture, form, rescale):
    sparse, dense_twin = twins(
        architecture, form, rescale_acts_by_decoder_norm=rescale, **MATRYOSHKA_AUX
    )
    assert_same_step(sparse, dense_twin, dead_mask())


@pytest.mark.parametrize("rescale", [True, False], ids=["rescale", "no_rescale"])
@pytest.mark.parametrize(
    "architecture", ["sparse_topk", "sparse_batchtopk", "sparse_matryoshka_batchtopk"]
)
def test_stock_sparse_step_matches_saelens_own_dense_step(architecture, rescale):
    sparse, _ = twins(architecture, None, rescale_acts_by_decoder_norm=rescale)
    assert_same_step(sparse, saelens_twin(sparse), dead_mask())


def trainer_pair(
    a: TrainingSAE[Any], b: TrainingSAE[Any], steps: int
) -> list[SAETrainer[Any, Any]]:
    # A short dead-latent window, so AuxK turns on within the run.
    return [
        SAETrainer(
            cfg=trainer_config(steps, dead_feature_window=3),
            sae=sae,
            data_provider=iter(()),
        )
        for sae in (a, b)
    ]


def run_in_step(trainers: list[SAETrainer[Any, Any]], steps: int) -> bool:
    """Feed each trainer the same batches; whether any latent was ever dead."""
    batches = random_batches(D_IN, BATCH, seed=1)
    any_dead = False
    for _ in range(steps):
        batch = next(batches)
        for trainer in trainers:
            any_dead |= bool(trainer.dead_neurons.any())
            trainer.step(batch)
            trainer.n_training_steps += 1
    return any_dead


def assert_same_trainers(a: SAETrainer[Any, Any], b: SAETrainer[Any, Any]) -> None:
    torch.testing.assert_close(
        a.n_forward_passes_since_fired, b.n_forward_passes_since_fired, atol=0, rtol=0
    )
    torch.testing.assert_close(a.act_freq_scores, b.act_freq_scores, atol=0, rtol=0)
    for name, value in b.sae.state_dict().items():
        torch.testing.assert_close(
            a.sae.state_dict()[name], value, atol=1e-5, rtol=1e-5, msg=name
        )


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_one_trainer_step_keeps_the_same_dead_latent_statistics(architecture, form):
    sparse, dense_twin = twins(architecture, form)
    trainers = trainer_pair(sparse, dense_twin, steps=1)
    dead = dead_mask()
    for trainer in trainers:
        trainer.n_forward_passes_since_fired[dead] = 10  # AuxK active
        trainer.step(next(random_batches(D_IN, BATCH, seed=2)))
    assert_same_trainers(*trainers)


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_fifty_steps_from_one_seed_give_the_same_weights(architecture, form):
    sparse, dense_twin = twins(architecture, form)
    trainers = trainer_pair(sparse, dense_twin, steps=50)
    assert run_in_step(trainers, 50)  # AuxK ran during the run
    assert_same_trainers(*trainers)


@pytest.mark.parametrize(
    "architecture", ["sparse_topk", "sparse_batchtopk", "sparse_matryoshka_batchtopk"]
)
def test_fifty_stock_sparse_steps_follow_saelens_own_dense_steps(architecture):
    sparse, _ = twins(architecture, None)
    trainers = trainer_pair(sparse, saelens_twin(sparse), steps=50)
    assert run_in_step(trainers, 50)
    assert_same_trainers(*trainers)


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_the_export_is_the_dense_steps_export_byte_for_byte(
    architecture, form, tmp_path
):
    sparse, dense_twin = twins(architecture, form)
    trainer = SAETrainer(cfg=trainer_config(5), sae=sparse, data_provider=iter(()))
    batches = random_batches(D_IN, BATCH)
    for _ in range(5):
        trainer.step(next(batches))
    dense_twin.load_state_dict(sparse.state_dict())
    sparse.save_inference_model(tmp_path / "sparse")
    dense_twin.save_inference_model(tmp_path / "dense")
    weights = "sae_weights.safetensors"
    assert (tmp_path / "sparse" / weights).read_bytes() == (
        tmp_path / "dense" / weights
    ).read_bytes()
    cfgs = [
        json.loads((tmp_path / n / "cfg.json").read_text()) for n in ("sparse", "dense")
    ]
    details = [c["metadata"].pop("training_architecture_details") for c in cfgs]
    assert cfgs[0] == cfgs[1]
    # None: the sparse step where it is the default (the CPU, as here).
    assert (details[0].pop("sparse_training"), details[1].pop("sparse_training")) == (
        None,
        False,
    )
    assert details[0] == details[1]
    loaded = SAE.load_from_disk(tmp_path / "sparse")
    assert loaded.cfg.architecture() in ("topk", "jumprelu")


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_degenerate_batches_give_no_nan(architecture, form):
    sparse, dense_twin = twins(architecture, form)
    zeros = torch.zeros(BATCH, D_IN)
    for sae in (sparse, dense_twin):
        out, grads = forward_backward(sae, zeros, dead_mask())
        assert torch.isfinite(out.loss)
        assert all(g is None or torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_k_equal_to_d_sae_matches_the_dense_step(architecture, form):
    sparse, dense_twin = twins(architecture, form, k=D_SAE)
    assert_same_step(sparse, dense_twin, torch.zeros(D_SAE, dtype=torch.bool))


def test_a_latent_never_chosen_gets_no_gradient():
    sparse, _ = twins("sparse_topk", None)
    with torch.no_grad():
        sparse.W_enc[:, 7] = 0
        sparse.b_enc[7] = -1e3  # never in any token's top k
    _, grads = forward_backward(
        sparse, next(random_batches(D_IN, BATCH)), torch.zeros(D_SAE, dtype=torch.bool)
    )
    assert grads["W_enc"] is not None and grads["b_enc"] is not None
    assert float(grads["W_enc"][:, 7].abs().max()) == 0
    assert float(grads["b_enc"][7]) == 0
    assert float(grads["W_enc"].abs().max()) > 0


@pytest.mark.parametrize("architecture,form", SPARSE_CASES)
def test_no_batch_by_d_sae_tensor_is_kept_for_backward(architecture, form):
    sparse, dense_twin = twins(architecture, form)
    x = next(random_batches(D_IN, BATCH))

    def largest_saved(sae: TrainingSAE[Any]) -> int:
        sizes: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            # A sparse tensor's numel() is its dense size; it stores its pairs.
            sizes.append(t._nnz() * (1 + t.sparse_dim()) if t.is_sparse else t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            forward_backward(sae, x, dead_mask())
        return max(sizes)

    assert largest_saved(dense_twin) >= BATCH * D_SAE  # the check can fail
    assert largest_saved(sparse) < BATCH * D_SAE


def test_the_sparse_step_trains_what_saelens_sparse_decode_cannot():
    # SAELens' use_sparse_activations fails with decoder-norm rescaling (the
    # default); the sparse step does not need it and trains either way.
    sparse, _ = twins("sparse_topk", None, use_sparse_activations=True)
    assert sparse.cfg.rescale_acts_by_decoder_norm
    reference = saelens_twin(twins("sparse_topk", None)[0])  # same weights
    assert_same_step(sparse, reference, dead_mask())
