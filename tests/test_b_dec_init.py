"""The arm whose decoder bias starts at the training activations' mean
(`b_dec_init: mean`): its moments, its label and run ids, and the SAE it trains
from."""

import math
from dataclasses import replace

import pytest
import torch

from benchmarks.records.activation_moments import (
    activation_moments,
    read_activation_moments,
)
from benchmarks.sweeps.config import ArchitectureSweep, SweepConfig, SweepConfigError
from benchmarks.sweeps.presets import sweep_config_from_dict
from benchmarks.sweeps.runs import expand_runs, initial_sae
from tests.test_synthetic_backend import tiny_config


def test_moments_give_the_mean_and_the_off_centre_ratio():
    generator = torch.Generator().manual_seed(0)
    mu_D = torch.tensor([3.0, -4.0, 0.0, 0.0])  # ||mu|| = 5
    sigma_D = torch.tensor([1.0, 2.0, 2.0, 4.0])  # ||sigma|| = 5
    x_TD = mu_D + sigma_D * torch.randn(200_000, 4, generator=generator)
    moments = activation_moments(x_TD.split(7_000), "test")
    assert moments.tokens == 200_000
    torch.testing.assert_close(
        moments.mean_tensor(), x_TD.double().mean(0), atol=1e-9, rtol=0
    )
    assert moments.mean_tensor().dtype == torch.float64
    assert math.isclose(moments.gamma, 1.0, rel_tol=0.02)
    assert math.isclose(moments.mean_share, 0.5, rel_tol=0.02)


def test_moments_of_no_activations_is_an_error():
    with pytest.raises(ValueError, match="No activations"):
        activation_moments([], "empty cache")


def _arms() -> SweepConfig:
    return SweepConfig(
        name="t",
        architectures=[
            ArchitectureSweep("topk", "k", [4]),
            ArchitectureSweep("topk", "k", [4], b_dec_init="mean"),
        ],
        d_sae=[48],
        seeds=[0],
    )


def test_the_centred_arm_has_its_own_label_and_run_id():
    stock, centred = expand_runs(_arms())
    assert centred.label == "topk[b_dec=mean]"
    assert stock.label == "topk"
    assert centred.run_id != stock.run_id
    assert "b_dec-mean" in centred.run_id


def test_the_centred_arm_starts_at_the_mean_with_the_stock_arms_other_weights():
    stock_run, centred_run = expand_runs(_arms())
    mean_D = torch.linspace(-2, 2, 16, dtype=torch.float64)
    stock = initial_sae(stock_run, 16, 100, sparse_stock_step=True)
    centred = initial_sae(
        centred_run, 16, 100, sparse_stock_step=True, activation_mean=mean_D
    )
    torch.testing.assert_close(centred.b_dec, mean_D.float(), atol=0, rtol=0)
    assert torch.all(stock.b_dec == 0)
    for key, tensor in stock.state_dict().items():
        if key != "b_dec":
            torch.testing.assert_close(centred.state_dict()[key], tensor)


def test_the_centred_arm_needs_the_mean():
    _, centred_run = expand_runs(_arms())
    with pytest.raises(ValueError, match="activation mean"):
        initial_sae(centred_run, 16, 100)


def test_an_unknown_b_dec_init_is_a_config_error():
    with pytest.raises(SweepConfigError, match="b_dec_init"):
        sweep_config_from_dict(
            {
                "name": "t",
                "architectures": [
                    {
                        "architecture": "topk",
                        "sparsity_param": "k",
                        "sparsity_values": [4],
                        "b_dec_init": "median",
                    }
                ],
            }
        )


def test_the_synthetic_backend_trains_the_centred_arm_from_its_data_mean(
    tmp_path, monkeypatch
):
    """The SAE the backend hands SAELens' trainer has b_dec = the mean of the
    sweep's training samples, written once (with gamma) to the sweep folder."""
    from benchmarks.sweeps.backends import synthetic

    config = replace(
        tiny_config(),
        architectures=[ArchitectureSweep("topk", "k", [4], b_dec_init="mean")],
        seeds=[0],
    )
    started = []

    def recording_initial_sae(*args, **kwargs):
        sae = initial_sae(*args, **kwargs)
        started.append(sae.b_dec.detach().clone())
        return sae

    monkeypatch.setattr(synthetic, "initial_sae", recording_initial_sae)
    backend = synthetic.SyntheticBackend(config, tmp_path)
    run = expand_runs(config)[0]
    backend.train(run, tmp_path / "saes" / run.run_id)
    moments = read_activation_moments(tmp_path)
    assert moments is not None and moments.tokens == config.training_tokens
    assert moments.gamma > 0
    torch.testing.assert_close(started[0], moments.mean_tensor().float())
    assert not torch.all(started[0] == 0)


def test_the_lm_backend_trains_the_centred_arm_from_its_cache_mean(
    tmp_path, monkeypatch
):
    """LM sweeps: the mean of the training activation cache (every row, in
    float64), written once to the sweep folder, is the b_dec SAELens' runner
    starts from. The model and the cache are stand-ins: nothing loads."""
    import datasets
    import numpy as np

    from benchmarks.sweeps.backends import lm

    rows_RCD = np.random.default_rng(0).normal(2.0, 1.0, (10, 8, 4)).astype("f4")
    cache = tmp_path / "cache"
    datasets.Dataset.from_dict({"model.layers.3": rows_RCD}).save_to_disk(str(cache))
    config = replace(
        SweepConfig(name="t", d_sae=[16], seeds=[0]),
        architectures=[ArchitectureSweep("topk", "k", [4], b_dec_init="mean")],
    )
    backend = lm.LMBackend(config, tmp_path / "sweep")
    backend._model, backend._d_in, backend._cache_dir = object(), 4, cache
    started = []

    def train_sae(*_args, override_sae, **_kwargs):
        started.append(override_sae.b_dec)

    monkeypatch.setattr(lm, "train_sae", train_sae)
    backend.train(expand_runs(config)[0], tmp_path / "sae")
    mean_D = rows_RCD.reshape(-1, 4).astype("f8").mean(0)
    torch.testing.assert_close(started[0], torch.tensor(mean_D, dtype=torch.float32))
    moments = read_activation_moments(tmp_path / "sweep")
    assert moments is not None and moments.tokens == 80
    assert np.allclose(moments.mean, mean_D, rtol=0, atol=1e-12)
