import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import TrainingSAE, TrainStepInput

import saelens_aligned
from saelens_aligned.alignment import ALIGNMENT_FORMS
from saelens_aligned.architectures import base_architecture
from saelens_aligned.sae_config import build_sae_config

os.environ.setdefault("WANDB_MODE", "offline")

# Read from the registry, so a newly registered variant is tested automatically.
ALIGNED_ARCHITECTURES = saelens_aligned.aligned_architectures()
ALIGNED_CASES = [
    pytest.param(arch, form, id=f"{arch}-{form}")
    for arch in ALIGNED_ARCHITECTURES
    for form in ALIGNMENT_FORMS
]


# Test-sized SAEs: k small enough for d_sae 48, and a p-annealing run of 100 steps
# (SAEBench's anneal_start, 10_000, lies beyond it; build_sae_config starts at 10).
TEST_SHARED_FIELDS = {"k": 4}
TEST_TRAINING_STEPS = 100


def make_sae(
    architecture: str,
    alignment: str | None = None,
    d_in: int = 16,
    d_sae: int = 48,
    seed: int = 0,
    **overrides: Any,
) -> TrainingSAE[Any]:
    torch.manual_seed(seed)
    sae_class, _ = get_sae_training_class(architecture)
    if alignment is not None:
        overrides["alignment"] = alignment
    cfg = build_sae_config(
        architecture,
        d_in,
        d_sae,
        training_steps=TEST_TRAINING_STEPS,
        shared=TEST_SHARED_FIELDS,
        **overrides,
    )
    return sae_class(cfg)


def make_base_twin(aligned: TrainingSAE[Any]) -> TrainingSAE[Any]:
    """The base-architecture SAE with the same config and weights as `aligned`."""
    base_name = base_architecture(type(aligned.cfg))
    sae_class, config_class = get_sae_training_class(base_name)
    fields = {
        name: value
        for name, value in aligned.cfg.to_dict().items()
        if name in config_class.__dataclass_fields__ and name != "metadata"
    }
    base = sae_class(config_class(**fields))
    base.load_state_dict(
        {k: v.detach().clone() for k, v in aligned.state_dict().items()}
    )
    return base


def dense(t: torch.Tensor) -> torch.Tensor:
    """`t` as a dense tensor (the sparse step's activations are sparse COO)."""
    return t.to_dense() if t.is_sparse else t


def step_input(sae: TrainingSAE[Any], x: torch.Tensor, step: int = 0) -> TrainStepInput:
    return TrainStepInput(
        sae_in=x,
        coefficients={name: 1.0 for name in sae.get_coefficients()},
        dead_neuron_mask=torch.zeros(sae.cfg.d_sae, dtype=torch.bool),
        n_training_steps=step,
        is_logging_step=False,
    )


def random_batches(d_in: int, batch: int = 64, seed: int = 0) -> Iterator[torch.Tensor]:
    """Sparse-ish synthetic activations: a few random directions per sample."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(64, d_in, generator=gen)
    while True:
        codes = torch.rand(batch, 64, generator=gen) * (
            torch.rand(batch, 64, generator=gen) < 0.1
        )
        yield codes @ directions + 0.01 * torch.randn(batch, d_in, generator=gen)


# `SAELENS_ALIGNED_TEST_MEMORY=file pytest ...` appends, per test, the process's
# peak resident memory after it (MiB), how much the test raised it, and the peak of
# any child processes: how the suite's memory budget (a few GB) is checked.
_MEMORY_LOG = os.environ.get("SAELENS_ALIGNED_TEST_MEMORY")
if _MEMORY_LOG:
    import resource

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        yield
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        with open(_MEMORY_LOG, "a") as f:
            f.write(
                f"{item.nodeid}\t{after // 1024}\t{(after - before) // 1024}\t"
                f"{children // 1024}\n"
            )
