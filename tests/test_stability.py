import numpy as np
import pytest

from benchmarks.analysis.pareto import aggregate
from benchmarks.analysis.stability import pair_stability, shared_latent_fraction
from benchmarks.records import layout
from benchmarks.sweeps.stability_record import point_stability
from saelens_aligned import latent_matching
from saelens_aligned.latent_matching import match_latents

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
    monkeypatch.setattr(latent_matching, "GREEDY_CANDIDATES", 2)
    monkeypatch.setattr(latent_matching, "GREEDY_DENSE_MAX", 0)
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


def half_shared(seed: int = 0):
    """SAE A and a permuted B sharing A's first half of latents exactly."""
    W_enc, W_dec = random_sae(seed)
    other_enc, other_dec = random_sae(seed + 100)
    half = D_SAE // 2
    B_enc = np.concatenate([W_enc[:, :half], other_enc[:, half:]], axis=1)
    B_dec = np.concatenate([W_dec[:half], other_dec[half:]], axis=0)
    return (W_enc, W_dec), (B_enc, B_dec)


def test_decoder_criterion_over_all_and_over_alive_latents():
    (W_enc, W_dec), (B_enc, B_dec) = half_shared()
    half = D_SAE // 2
    # the unshared half is dead in both SAEs (its directions never trained)
    alive = np.arange(D_SAE) < half
    result = pair_stability(W_enc, W_dec, B_enc, B_dec, alive_a=alive, alive_b=alive)
    assert result.shared_fraction_decoder == 0.5
    assert result.shared_fraction_decoder_alive == 1.0
    assert result.shared_fraction_enc_dec == 0.5
    assert result.shared_fraction_enc_dec_alive == 1.0
    assert result.n_alive == (half, half)
    # no masks: no alive fraction
    plain = pair_stability(W_enc, W_dec, B_enc, B_dec)
    assert plain.shared_fraction_decoder_alive is None and plain.n_alive is None


def test_alive_fraction_needs_both_ends_alive_and_is_symmetric():
    W_enc, W_dec = random_sae(0)
    alive_a = np.ones(D_SAE, dtype=bool)
    alive_b = np.arange(D_SAE) >= D_SAE // 4  # B's first quarter dead
    ab = pair_stability(W_enc, W_dec, W_enc, W_dec, alive_a=alive_a, alive_b=alive_b)
    ba = pair_stability(W_enc, W_dec, W_enc, W_dec, alive_a=alive_b, alive_b=alive_a)
    # 3/4 of the latents have both ends alive, over the mean alive count 7/8
    assert ab.shared_fraction_decoder_alive == pytest.approx(0.75 / 0.875)
    assert ba.shared_fraction_decoder_alive == ab.shared_fraction_decoder_alive
    nothing = np.zeros(D_SAE, dtype=bool)
    none_alive = pair_stability(
        W_enc, W_dec, W_enc, W_dec, alive_a=nothing, alive_b=nothing
    )
    assert none_alive.shared_fraction_decoder_alive is None
    with pytest.raises(ValueError, match="alive mask"):
        pair_stability(
            W_enc, W_dec, W_enc, W_dec, alive_a=alive_a[:-1], alive_b=alive_b
        )


def test_decoder_criterion_ignores_the_encoder_and_tied_skips_it():
    W_enc, W_dec = random_sae(0)
    swap = np.arange(D_SAE)
    swap[: D_SAE // 2] = swap[: D_SAE // 2].reshape(-1, 2)[:, ::-1].ravel()
    # B's encoder disagrees with its decoder for half the latents
    untied = pair_stability(W_enc, W_dec, W_enc[:, swap], W_dec)
    assert untied.shared_fraction_decoder == 1.0
    assert untied.shared_fraction_enc_dec == 0.5
    tied = pair_stability(W_enc, W_dec, W_enc[:, swap], W_dec, tied=True)
    assert tied.shared_fraction_decoder == 1.0
    assert tied.shared_fraction_enc_dec is None
    assert tied.shared_fraction_enc_dec_alive is None
    assert tied.mean_matched_encoder_cos is None


def test_chance_pair_of_untrained_saes_shares_almost_nothing():
    # SAELens-style untrained SAEs: W_enc = W_dec.T, random directions
    a_dec, b_dec = random_sae(0)[1], random_sae(1)[1]
    result = pair_stability(a_dec.T, a_dec, b_dec.T, b_dec)
    assert result.shared_fraction_decoder < 0.02
    assert result.shared_fraction_enc_dec < 0.02
    assert 0.0 < result.mean_matched_decoder_cos < 0.7


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


def run_info(seed: int, alignment: str | None = None) -> dict:
    point_id = "topk-k8-d256"
    return {
        "architecture": "aligned_topk" if alignment else "topk",
        "alignment": alignment,
        "init_from": None,
        "base_architecture": "topk",
        "label": f"aligned_topk[{alignment}]" if alignment else "topk",
        "sparsity_param": "k",
        "sparsity_value": 8.0,
        "d_sae": D_SAE,
        "seed": seed,
        "lr": 3e-4,
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
    alive = np.arange(D_SAE) < D_SAE // 2
    masks = {0: alive, 1: alive[perm], 2: alive}  # seed 1's latents are permuted
    entries = [
        (run_info(seed), save_sae(tmp_path / f"s{seed}", *weights), masks[seed])
        for seed, weights in saes.items()
    ]
    dec_a, dec_b = random_sae(10)[1], random_sae(11)[1]
    untrained = ((dec_a.T, dec_a), (dec_b.T, dec_b))
    record = point_stability(entries[::-1], threshold=0.7, chance=untrained)
    assert record["eval_type_id"] == layout.STABILITY_TYPE_ID
    config = record["eval_config"]
    point = config["point"]
    assert "seed" not in point and "run_id" not in point
    assert point["point_id"] == "topk-k8-d256" and point["label"] == "topk"
    assert config["threshold"] == 0.7 and config["method"] == "hungarian"
    assert config["headline"] == "shared_fraction_decoder_alive"
    details = record["eval_result_details"]
    assert [d["seeds"] for d in details] == [[0, 1], [0, 2], [1, 2]]
    decoder = [d["shared_fraction_decoder"] for d in details]
    assert decoder[0] == 1.0 and decoder[1] < 0.05 and decoder[2] < 0.05
    assert details[0]["shared_fraction_decoder_alive"] == 1.0
    assert details[0]["shared_fraction_enc_dec"] == 1.0  # untied arm
    assert details[0]["n_alive"] == [D_SAE // 2, D_SAE // 2]
    metrics = record["eval_result_metrics"]["stability"]
    assert metrics["n_pairs"] == 3
    assert metrics["shared_fraction_decoder_mean"] == pytest.approx(np.mean(decoder))
    assert metrics["shared_fraction_decoder_max"] == 1.0
    # the headline (kept for readers of shared_fraction_*) is the alive criterion
    alive_values = [d["shared_fraction_decoder_alive"] for d in details]
    assert metrics["shared_fraction_mean"] == pytest.approx(np.mean(alive_values))
    assert metrics["shared_fraction_min"] == min(alive_values)
    # chance: two untrained SAEs share almost nothing
    assert 0.0 <= metrics["chance_shared_fraction_decoder"] < 0.02
    assert 0.0 <= metrics["chance_shared_fraction_enc_dec"] < 0.02
    assert record["eval_result_unstructured"]["chance"]["n_alive"] is None
    assert set(record) >= {"eval_id", "datetime_epoch_millis"}
    # pareto's stability pseudo-metric reads the alive decoder criterion
    (summary,) = aggregate([], "stability", [record])
    assert summary.mean == pytest.approx(np.mean(alive_values))
    assert summary.n_seeds == 3
    # the record goes through records' JSON round trip
    path = layout.stability_path(tmp_path, point["point_id"])
    layout.write_json_atomic(path, record)
    assert layout.load_records(tmp_path) == ([], [record])


def test_tied_point_has_no_encoder_criterion_and_no_alive_without_masks(tmp_path):
    W_enc, W_dec = random_sae(0)
    entries = [
        (run_info(seed, "tied"), save_sae(tmp_path / f"s{seed}", W_enc, W_dec), mask)
        for seed, mask in ((0, np.ones(D_SAE, dtype=bool)), (1, None))
    ]
    record = point_stability(entries)
    assert record["eval_config"]["tied"] is True
    assert record["eval_config"]["headline"] == "shared_fraction_decoder"
    metrics = record["eval_result_metrics"]["stability"]
    assert metrics["shared_fraction_decoder_mean"] == 1.0
    assert metrics["shared_fraction_mean"] == 1.0
    # one member without a mask: no pair gets an alive fraction
    assert metrics["shared_fraction_decoder_alive_mean"] is None
    assert metrics["shared_fraction_enc_dec_mean"] is None
    assert metrics["mean_matched_encoder_cos"] is None
    assert metrics["chance_shared_fraction_decoder"] is None  # no chance pair
    assert aggregate([], "stability_enc_dec", [record]) == []


def test_point_stability_rejects_mixed_points_and_single_seeds(tmp_path):
    folder = save_sae(tmp_path / "s0", *random_sae(0))
    other = dict(run_info(1), point_id="topk-k16-d256")
    with pytest.raises(ValueError, match="one point"):
        point_stability([(run_info(0), folder, None), (other, folder, None)])
    with pytest.raises(ValueError, match="2 distinct seeds"):
        point_stability([(run_info(0), folder, None)])
