"""The weight-only latent checks of benchmarks/experiments/latent_geometry.py."""

import torch

from benchmarks.experiments.latent_geometry import (
    duplicate_summary,
    encoder_decoder_cosines,
    nearest_cosines,
)


def test_a_near_copy_is_found_and_orthogonal_rows_are_not():
    W_dec = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    assert nearest_cosines(W_dec).tolist() == [0.0, 0.0, 0.0]
    assert duplicate_summary(W_dec, 0.9)["duplicated_fraction"] == 0.0
    copied = torch.cat([W_dec, torch.tensor([[5.0, 0.5, 0.0]])])
    # the copy and its original are duplicated (cos 0.995), the other two not
    assert duplicate_summary(copied, 0.9)["duplicated_fraction"] == 0.5


def test_encoder_decoder_cosine_ignores_gain_and_sees_direction():
    W_dec = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tied = W_dec.T / 7.0  # same directions, another gain
    assert torch.allclose(encoder_decoder_cosines(tied, W_dec), torch.ones(2))
    turned = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # column 1 at 45 degrees
    cos = encoder_decoder_cosines(turned, W_dec)
    assert torch.allclose(cos, torch.tensor([1.0, 2**-0.5]))
