import numpy as np
import pytest
import torch

from saelens_aligned.alignment import (
    BIMODALITY_THRESHOLD,
    alignment_cosines,
    alignment_scores,
    projected_encoder,
    summarize_alignment,
    tied_decoder,
)


def _weights(d_in: int = 12, d_sae: int = 30, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(d_in, d_sae, generator=gen), torch.randn(d_sae, d_in, generator=gen)


def test_tied_decoder_gives_unit_gain_and_same_direction():
    W_enc, _ = _weights()
    W_dec = tied_decoder(W_enc)
    assert W_dec.shape == (30, 12)
    torch.testing.assert_close(alignment_scores(W_enc, W_dec), torch.ones(30))
    torch.testing.assert_close(alignment_cosines(W_enc, W_dec), torch.ones(30))


def test_projected_encoder_hits_target_and_is_idempotent():
    W_enc, W_dec = _weights()
    once = projected_encoder(W_enc, W_dec)
    torch.testing.assert_close(alignment_scores(once, W_dec), torch.ones(30))
    torch.testing.assert_close(projected_encoder(once, W_dec), once)
    target = torch.linspace(0.5, 2.0, 30)
    torch.testing.assert_close(
        alignment_scores(projected_encoder(W_enc, W_dec, target), W_dec), target
    )


def test_projected_encoder_only_moves_along_the_decoder_direction():
    W_enc, W_dec = _weights()
    delta = projected_encoder(W_enc, W_dec) - W_enc
    torch.testing.assert_close(
        alignment_cosines(delta, W_dec).abs(), torch.ones(30), atol=1e-5, rtol=0
    )


def test_degenerate_rows_and_columns_never_give_nan():
    W_enc, W_dec = _weights()
    W_enc[:, 3] = 0
    W_dec[5] = 0
    derived = tied_decoder(W_enc)
    assert torch.isfinite(derived).all() and derived[3].abs().sum() == 0
    projected = projected_encoder(W_enc, W_dec)
    assert torch.isfinite(projected).all()
    torch.testing.assert_close(projected[:, 5], W_enc[:, 5])
    assert torch.isfinite(alignment_cosines(W_enc, W_dec)).all()


def test_alignment_scores_are_invariant_under_saelens_folds():
    W_enc, W_dec = _weights(seed=1)
    scores = alignment_scores(W_enc, W_dec)
    norms = W_dec.norm(dim=1)
    torch.testing.assert_close(
        alignment_scores(W_enc * norms, W_dec / norms[:, None]), scores
    )
    torch.testing.assert_close(alignment_scores(W_enc * 3.7, W_dec / 3.7), scores)
    M = torch.randn(12, 12, dtype=torch.float64) + 4 * torch.eye(12, dtype=torch.float64)
    whitened = alignment_scores(M @ W_enc.double(), W_dec.double() @ torch.linalg.inv(M))
    torch.testing.assert_close(whitened.float(), scores, atol=1e-4, rtol=1e-4)


def test_summary_flags_bimodal_and_unimodal_distributions():
    rng = np.random.default_rng(0)
    bimodal = np.concatenate([rng.normal(0.05, 0.03, 500), rng.normal(0.98, 0.02, 500)])
    unimodal = rng.normal(0.4, 0.05, 1000)
    assert summarize_alignment(bimodal).bimodality_coefficient > BIMODALITY_THRESHOLD
    assert summarize_alignment(unimodal).bimodality_coefficient < BIMODALITY_THRESHOLD
    summary = summarize_alignment(bimodal)
    assert summary.frac_below_half == pytest.approx(0.5, abs=0.01)
    assert summary.frac_near_one == pytest.approx(0.5, abs=0.01)
    assert sum(summary.histogram_counts) == 1000


def test_summary_of_constant_scores_has_no_bimodality_coefficient():
    summary = summarize_alignment(torch.ones(100))
    assert summary.bimodality_coefficient is None
    assert summary.max_abs_deviation_from_one == 0.0
    assert summary.frac_near_one == 1.0
