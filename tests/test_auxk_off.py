"""TopK without AuxK: `sae_kwargs: {aux_loss_coefficient: 0}` turns SAELens'
auxiliary loss off for the stock step, the sparse step and aligned TopK alike, and
the arm is labelled apart from its AuxK sibling."""

import pytest
import torch

from benchmarks.reports.display import arm_name
from benchmarks.sweeps.config import ArchitectureSweep, SweepConfig
from benchmarks.sweeps.runs import expand_runs, initial_sae
from tests.conftest import step_input

AUX_LOSS = "auxiliary_reconstruction_loss"
ARMS = {
    "stock dense step": (ArchitectureSweep("topk", "k", [4]), False),
    "stock sparse step": (ArchitectureSweep("topk", "k", [4]), True),
    "aligned tied": (
        ArchitectureSweep("aligned_topk", "k", [4], alignments=["tied"]),
        True,
    ),
}


def _sae(arm: ArchitectureSweep, sparse: bool, aux_loss_coefficient: float):
    arm = ArchitectureSweep(
        arm.architecture,
        arm.sparsity_param,
        arm.sparsity_values,
        alignments=arm.alignments,
        sae_kwargs={"aux_loss_coefficient": aux_loss_coefficient},
    )
    config = SweepConfig(name="t", architectures=[arm], d_sae=[48], seeds=[0])
    return initial_sae(expand_runs(config)[0], 16, 100, sparse_stock_step=sparse)


def _loss_and_grads(sae, dead_mask):
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1)) * 2
    step = step_input(sae, x)
    step = type(step)(**{**step.__dict__, "dead_neuron_mask": dead_mask})
    sae.zero_grad()
    out = sae.training_forward_pass(step)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("name", list(ARMS))
def test_a_zero_coefficient_leaves_no_aux_term_and_the_gradients_of_no_auxk(name):
    arm, sparse = ARMS[name]
    dead_F = torch.arange(48) % 2 == 0  # half the latents dead: AuxK would act
    on, _ = _loss_and_grads(_sae(arm, sparse, 1.0), dead_F)
    assert float(on.losses[AUX_LOSS].detach()) > 0  # the check below is not vacuous
    off, grads_off = _loss_and_grads(_sae(arm, sparse, 0.0), dead_F)
    assert float(off.losses[AUX_LOSS].detach()) == 0.0
    # A run where AuxK never acts: no latent counts as dead.
    never, grads_never = _loss_and_grads(
        _sae(arm, sparse, 1.0), torch.zeros(48, dtype=torch.bool)
    )
    torch.testing.assert_close(off.loss, never.loss)
    assert grads_off.keys() == grads_never.keys()
    for key, grad in grads_never.items():
        torch.testing.assert_close(grads_off[key], grad)


def test_the_no_auxk_arm_is_labelled_apart_from_its_auxk_sibling():
    config = SweepConfig(
        name="t",
        architectures=[
            ArchitectureSweep("aligned_topk", "k", [32], alignments=["tied"]),
            ArchitectureSweep(
                "aligned_topk",
                "k",
                [32],
                alignments=["tied"],
                sae_kwargs={"aux_loss_coefficient": 0},
            ),
        ],
        d_sae=[48],
        seeds=[0],
    )
    with_auxk, without = expand_runs(config)
    assert with_auxk.label == "aligned_topk[tied]"
    assert without.label == "aligned_topk[tied,aux_loss_coefficient=0]"
    assert arm_name(without.label) == "aligned TopK (tied, no AuxK)"
    assert with_auxk.run_id != without.run_id
