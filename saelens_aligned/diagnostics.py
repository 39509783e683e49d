"""Alignment diagnostics for any SAELens SAE: stock or aligned, trained or loaded."""

from typing import Any

import torch
from sae_lens.saes.sae import SAE

from saelens_aligned.aligned_sae import AlignedTrainingSAE
from saelens_aligned.alignment import (
    AlignmentSummary,
    alignment_cosines,
    alignment_scores,
    summarize_alignment,
)


def _feature_encoder(sae: SAE[Any]) -> torch.Tensor:
    # The encoder that produces feature values: W_enc, or for Gated SAEs the
    # magnitude path W_enc * exp(r_mag). [d_in, d_sae]
    if isinstance(sae, AlignedTrainingSAE):
        sae._align_if_stale()
    W_enc = sae.W_enc.detach()
    r_mag = getattr(sae, "r_mag", None)
    if isinstance(r_mag, torch.Tensor):
        W_enc = W_enc * r_mag.detach().exp()
    return W_enc.float()


@torch.no_grad()
def sae_alignment_scores(sae: SAE[Any]) -> torch.Tensor:
    """a_i = <e_i, d_i> for every feature of `sae`. [d_sae]"""
    return alignment_scores(_feature_encoder(sae), sae.W_dec.detach().float())


@torch.no_grad()
def sae_alignment_cosines(sae: SAE[Any]) -> torch.Tensor:
    """cos(e_i, d_i) for every feature of `sae`. [d_sae]"""
    return alignment_cosines(_feature_encoder(sae), sae.W_dec.detach().float())


def sae_alignment_summary(sae: SAE[Any]) -> AlignmentSummary:
    """Mean, low/near-one fractions, bimodality and histogram of `sae`'s scores."""
    return summarize_alignment(sae_alignment_scores(sae))
