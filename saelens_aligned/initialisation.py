"""Seeded starts of training SAEs, and the balanced start a stock SAE can take from
an aligned form (the fair control of an aligned run).

The **balanced init** is where an aligned SAE in the `projected` form starts
(`AlignedTrainingSAE.initialize_weights`): SAELens' own random directions, encoder
column e_i = decoder row d_i at unit norm, so a_i = 1. A stock SAE given exactly
those weights (`initial_sae(cfg, seed, start_from="projected")`) computes the same
function at step 0 as the aligned SAE of either form at that seed and differs from
it only in the constraint during training (docs/method.md, "The fair control").
"""

from dataclasses import fields
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import TrainingSAE, TrainingSAEConfig

from saelens_aligned.alignment import AlignmentForm
from saelens_aligned.architectures import aligned_variant

BALANCED_FORM: AlignmentForm = "projected"
"""The aligned form whose start is the balanced init."""


def seeded_sae(cfg: TrainingSAEConfig, seed: int) -> TrainingSAE[Any]:
    """A new training SAE of `cfg`'s architecture, its weights drawn under `seed`."""
    torch.manual_seed(seed)
    sae_class, _ = get_sae_training_class(cfg.architecture())
    return sae_class(cfg)


def aligned_config(cfg: TrainingSAEConfig, form: AlignmentForm) -> TrainingSAEConfig:
    """The config of the aligned variant of `cfg`'s architecture in `form`, with
    every other field of `cfg` (the aligned config class extends the base's)."""
    _, config_class = get_sae_training_class(aligned_variant(cfg.architecture()))
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.init}
    return config_class(**values, alignment=form)


def initial_sae(
    cfg: TrainingSAEConfig, seed: int, start_from: AlignmentForm | None = None
) -> TrainingSAE[Any]:
    """`cfg`'s SAE before its first step, seeded by `seed`.

    Args:
        cfg: A training config of a stock architecture that has an aligned
            variant when `start_from` is given (any architecture otherwise).
        seed: Seed of the initial weights.
        start_from: None: SAELens' (or the aligned class's) own init. An
            alignment form: exactly the weights the aligned variant of `cfg`'s
            architecture starts from in that form at `seed`, loaded into the stock
            SAE (for `BALANCED_FORM`, the balanced init).
    """
    sae = seeded_sae(cfg, seed)
    if start_from is not None:
        start = seeded_sae(aligned_config(cfg, start_from), seed)
        sae.load_state_dict(
            {k: v.detach().clone() for k, v in start.state_dict().items()}
        )
    return sae
