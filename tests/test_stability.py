import numpy as np
import pytest

from benchmarks import records, stability
from benchmarks.stability import match_latents, point_stability, shared_latent_fraction

D_IN, D_SAE = 64, 256


def random_sae(seed: int, d_in: int = D_IN, d_sae: int = D_SAE):
    rng = np.random.default_rng(seed)
    W_enc = rng.standard_normal((d_in, d_sae)).astype(np.float32)
    W_dec = rng.standard_normal((d_sae, d_in)).astype(np.float32)
    return W_enc, W_dec


def permuted(W_enc, W_dec, perm):
    return W_enc[:, perm], W_dec[perm]


def test_identical_saes_share_every_latent():
    W_enc, W_dec = random_sae(0)
    result = shared_latent_fraction(W_enc, W_dec, W_enc, W_dec)
    assert result.shared_fraction == 1.0
    assert result.mean_matched_decoder_cos == pytest.approx(1.0, abs=1e-5)
    assert result.mean_matched_encoder_cos == pytest.approx(1.0, abs=1e-5)
    assert result.method == "hungarian"


def test_matching_undoes_a_permutation():
    W_enc, W_dec = random_sae(0)
    perm = np.random.default_rng(1).permutation(D_SAE)
    matching = match_latents(W_dec, W_dec[perm])
    # latent perm[j] of A is latent j of B
    np.testing.assert_array_equal(matching.col_ind, np.argsort(perm))
    np.testing.assert_allclose(matching.cos, 1.0, atol=1e-5)
    result = shared_latent_fraction(W_enc, W_dec, *permuted(W_enc, W_dec, perm))
    assert result.shared_fraction == 1.0


def test_unrelated_random_saes_share_almost_nothing():
    result = shared_latent_fraction(*random_sae(0), *random_sae(1))
    assert result.shared_fraction < 0.05
    assert 0.0 < result.mean_matched_decoder_cos < 0.7


def test_half_copied_half_random_shares_half():
    W_enc, W_dec = random_sae(0)
    other_enc, other_dec = random_sae(1)
    half = D_SAE // 2
    B_enc = np.concatenate([W_enc[:, :half], other_enc[:, half:]], axis=1)
    B_dec = np.concatenate([W_dec[:half], other_dec[half:]], axis=0)
    perm = np.random.default_rng(2).permutation(D_SAE)
    result = shared_latent_fraction(W_enc, W_dec, *permuted(B_enc, B_dec, perm))
    assert result.shared_fraction == 0.5


def test_latent_is_not_shared_when_encoder_and_decoder_matchings_disagree():
    W_enc, W_dec = random_sae(0)
    # B's decoder swaps latents 2i and 2i+1 for the first quarter; its encoder does
    # not, so those latents match different partners in the two matchings.
    swap = np.arange(D_SAE)
    quarter = D_SAE // 4
    swap[:quarter] = swap[:quarter].reshape(-1, 2)[:, ::-1].ravel()
    result = shared_latent_fraction(W_enc, W_dec, W_enc, W_dec[swap])
    assert result.shared_fraction == 0.75
    assert result.mean_matched_decoder_cos == pytest.approx(1.0, abs=1e-5)


def with_cosine(x_FD: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """Rows at exactly cosine `cos` to those of x (same norm)."""
    unit = x_FD / np.linalg.norm(x_FD, axis=1, keepdims=True)
    noise = np.random.default_rng(seed).standard_normal(x_FD.shape)
    noise -= (noise * unit).sum(axis=1, keepdims=True) * unit
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (cos * unit + np.sqrt(1 - cos**2) * noise).astype(np.float32)


def test_threshold_applies_to_both_matchings():
    W_enc, W_dec = random_sae(0)
    B_dec = with_cosine(W_dec, 0.6, seed=3)
    result = shared_latent_fraction(W_enc, W_dec, W_enc, B_dec, threshold=0.7)
    assert result.shared_fraction == 0.0
    assert result.mean_matched_decoder_cos == pytest.approx(0.6, abs=1e-4)
    assert shared_latent_fraction(
        W_enc, W_dec, W_enc, B_dec, threshold=0.5
    ).shared_fraction == pytest.approx(1.0)
    B_enc = with_cosine(W_enc.T, 0.6, seed=4).T
    assert shared_latent_fraction(W_enc, W_dec, B_enc, W_dec).shared_fraction == 0.0


def test_rescaling_latents_changes_nothing():
    W_enc, W_dec = random_sae(0)
    perm = np.random.default_rng(1).permutation(D_SAE)
    scale = np.random.default_rng(2).uniform(0.1, 10.0, D_SAE).astype(np.float32)
    B_enc, B_dec = permuted(W_enc * scale, W_dec / scale[:, None], perm)
    assert shared_latent_fraction(W_enc, W_dec, B_enc, B_dec).shared_fraction == 1.0


def test_greedy_fallback_agrees_with_hungarian_on_an_easy_case():
    W_enc, W_dec = random_sae(0)
    perm = np.random.default_rng(1).permutation(D_SAE)
    noisy_enc = W_enc[:, perm] + 0.3 * np.random.default_rng(2).standard_normal(
        W_enc.shape
    ).astype(np.float32)
    B_dec = with_cosine(W_dec, 0.9, seed=3)[perm]
    hungarian = shared_latent_fraction(W_enc, W_dec, noisy_enc, B_dec)
    greedy = shared_latent_fraction(W_enc, W_dec, noisy_enc, B_dec, max_hungarian=0)
    assert greedy.method == "greedy" and hungarian.method == "hungarian"
    assert greedy.shared_fraction == hungarian.shared_fraction == 1.0
    assert greedy.mean_matched_decoder_cos == pytest.approx(
        hungarian.mean_matched_decoder_cos, abs=1e-6
    )


def test_greedy_candidate_rounds_give_a_one_to_one_matching(monkeypatch):
    # Force several sparse rounds: 2 candidates per row, no dense finish.
    monkeypatch.setattr(stability, "GREEDY_CANDIDATES", 2)
    monkeypatch.setattr(stability, "GREEDY_DENSE_MAX", 0)
    a, b = random_sae(0)[1], random_sae(1)[1]
    greedy = match_latents(a, b[:200], max_hungarian=0)
    assert len(greedy.row_ind) == 200 and len(set(greedy.col_ind.tolist())) == 200
    hungarian = match_latents(a, b[:200])
    assert greedy.cos.sum() <= hungarian.cos.sum() + 1e-4
    assert greedy.cos.sum() > 0.9 * hungarian.cos.sum()


@pytest.mark.parametrize("seed", range(4))
def test_result_lies_in_unit_interval_even_with_zero_latents(seed):
    W_enc, W_dec = random_sae(seed)
    B_enc, B_dec = W_enc.copy(), W_dec.copy()
    B_enc[:, :10] = 0.0
    B_dec[:10] = 0.0
    W_dec[-5:] = 0.0
    result = shared_latent_fraction(W_enc, W_dec, B_enc, B_dec, threshold=0.1 * seed)
    for value in (
        result.shared_fraction,
        result.mean_matched_decoder_cos,
        result.mean_matched_encoder_cos,
    ):
        assert np.isfinite(value)
    assert 0.0 <= result.shared_fraction <= 1.0
    assert result.shared_fraction <= (D_SAE - 15) / D_SAE


def test_shape_mismatch_is_an_error():
    W_enc, W_dec = random_sae(0)
    with pytest.raises(ValueError, match="W_enc"):
        shared_latent_fraction(W_enc.T, W_dec, W_enc, W_dec)


def save_sae(folder, W_enc, W_dec):
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file(
        {
            "W_enc": torch.from_numpy(np.ascontiguousarray(W_enc)),
            "W_dec": torch.from_numpy(np.ascontiguousarray(W_dec)),
            "b_enc": torch.zeros(W_enc.shape[1]),
        },
        str(folder / "sae_weights.safetensors"),
    )
    return folder


def run_info(seed: int) -> dict:
    point_id = "topk-k8-d256"
    return {
        "architecture": "topk",
        "alignment": None,
        "base_architecture": "topk",
        "label": "topk",
        "sparsity_param": "k",
        "sparsity_value": 8.0,
        "d_sae": D_SAE,
        "seed": seed,
        "run_id": f"{point_id}-s{seed}",
        "point_id": point_id,
    }


def test_point_stability_record_covers_every_pair_of_seeds(tmp_path):
    W_enc, W_dec = random_sae(0)
    perm = np.random.default_rng(1).permutation(D_SAE)
    saes = {
        0: (W_enc, W_dec),
        1: permuted(W_enc, W_dec, perm),
        2: random_sae(5),
    }
    entries = [
        (run_info(seed), save_sae(tmp_path / f"s{seed}", *weights))
        for seed, weights in saes.items()
    ]
    record = point_stability(entries[::-1], threshold=0.7)
    assert record["eval_type_id"] == records.STABILITY_TYPE_ID
    point = record["eval_config"]["point"]
    assert "seed" not in point and "run_id" not in point
    assert point["point_id"] == "topk-k8-d256" and point["label"] == "topk"
    assert record["eval_config"]["threshold"] == 0.7
    assert record["eval_config"]["method"] == "hungarian"
    assert [d["seeds"] for d in record["eval_result_details"]] == [
        [0, 1],
        [0, 2],
        [1, 2],
    ]
    shared = [d["shared_fraction"] for d in record["eval_result_details"]]
    assert shared[0] == 1.0 and shared[1] < 0.05 and shared[2] < 0.05
    metrics = record["eval_result_metrics"]["stability"]
    assert metrics["n_pairs"] == 3
    assert metrics["shared_fraction_mean"] == pytest.approx(np.mean(shared))
    assert metrics["shared_fraction_min"] == min(shared)
    assert metrics["shared_fraction_max"] == 1.0
    assert set(record) >= {
        "eval_id",
        "datetime_epoch_millis",
        "eval_result_unstructured",
    }
    # the record goes through records' JSON round trip
    path = records.stability_path(tmp_path, point["point_id"])
    records.write_json_atomic(path, record)
    assert records.load_records(tmp_path) == ([], [record])


def test_point_stability_rejects_mixed_points_and_single_seeds(tmp_path):
    folder = save_sae(tmp_path / "s0", *random_sae(0))
    other = dict(run_info(1), point_id="topk-k16-d256")
    with pytest.raises(ValueError, match="one point"):
        point_stability([(run_info(0), folder), (other, folder)])
    with pytest.raises(ValueError, match="2 distinct seeds"):
        point_stability([(run_info(0), folder)])
