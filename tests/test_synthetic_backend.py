import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.records.layout import flat_metrics, load_records, read_run_log, run_info
from benchmarks.sweeps.backends.synthetic import (
    LM_ONLY_EVALS,
    NO_LM_REASON,
    StoredSamples,
    load_or_build_synthetic_model,
)
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.presets import load_sweep_config, sweep_config_from_dict
from benchmarks.sweeps.runs import expand_runs
from benchmarks.sweeps.sweep import run_sweep

TINY_MODEL: dict[str, Any] = {
    "num_features": 256,
    "hidden_dim": 32,
    "firing_probability": {
        "generator_name": "zipfian",
        "exponent": 0.5,
        "max_prob": 0.4,
        "min_prob": 5e-3,
    },
    "hierarchy": {
        "total_root_nodes": 8,
        "branching_factor": 2,
        "max_depth": 2,
        "mutually_exclusive_portion": 1.0,
        "compensate_probabilities": True,
        "scale_children_by_parent": True,
    },
    "correlation": {"rank": 4, "correlation_scale": 0.1},
    "orthogonalization": {"num_steps": 5, "lr": 3e-4},
    "mean_firing_magnitudes": {"generator_name": "linear", "start": 5.0, "end": 4.0},
    "std_firing_magnitudes": {
        "generator_name": "folded_normal",
        "mean": 0.5,
        "std": 0.5,
    },
    "bias": 0.5,
    "seed": 7,
}


def tiny_config() -> SweepConfig:
    return sweep_config_from_dict(
        {
            "name": "tiny-synthetic",
            "kind": "synthetic",
            "synthetic_model": TINY_MODEL,
            "d_sae": [64],
            "seeds": [0, 1],
            "training_tokens": 20 * 128,
            "train_batch_size_tokens": 128,
            "lr": 1e-3,
            "eval": {
                "synthetic_eval_samples": 1024,
                "meta_structure": True,
                "meta_structure_train_steps": 5,
            },
            "architectures": [
                {"architecture": "topk", "sparsity_param": "k", "sparsity_values": [4]},
                {
                    "architecture": "aligned_topk",
                    "sparsity_param": "k",
                    "sparsity_values": [4],
                    "alignments": ["tied"],
                },
            ],
        }
    )


def strict_json(path: Path) -> Any:
    def reject(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}, which is not valid JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def test_tiny_synthetic_sweep_writes_ground_truth_records_and_stability(
    tmp_path: Path,
) -> None:
    config = tiny_config()
    out = tmp_path / "out"
    records = run_sweep(config, out, report=False)

    runs = expand_runs(config)
    assert sorted(run_info(r)["run_id"] for r in records) == sorted(
        r.run_id for r in runs
    )
    for path in (out / "records").glob("*.json"):
        strict_json(path)
    for record in records:
        values = flat_metrics(record)
        for name in ("mcc", "explained_variance", "l0", "uniqueness", "f1"):
            assert math.isfinite(values[name]), (run_info(record)["run_id"], name)
        metrics = record["eval_result_metrics"]
        assert set(metrics["ground_truth"]) >= {
            "mcc",
            "uniqueness",
            "f1",
            "dead_latents",
            "shrinkage",
            "true_l0",
        }
        assert 0 <= metrics["misc"]["frac_dead_latents"] <= 1
        assert "meta_structure" in metrics
        assert "alignment" in metrics
        unstructured = record["eval_result_unstructured"]
        assert len(unstructured["alignment_histogram"]["counts"]) > 0
        assert unstructured["training_data"] == "stored"
        for name in LM_ONLY_EVALS:
            assert unstructured["skipped_evals"][name] == NO_LM_REASON
        assert record["sae_cfg_dict"]["d_sae"] == 64
    # aligned_topk[tied] SAEs are saved with a_i = 1 for every feature.
    aligned = [r for r in records if run_info(r)["alignment"] == "tied"]
    assert aligned and all(
        r["eval_result_metrics"]["alignment"]["max_abs_deviation_from_one"] < 1e-4
        for r in aligned
    )

    _, stability = load_records(out)
    assert sorted(s["eval_config"]["point"]["point_id"] for s in stability) == sorted(
        {r.point_id for r in runs}
    )
    for record in stability:  # an untrained SAE's ground truth, the chance level
        chance = record["eval_result_metrics"]["chance_ground_truth"]
        assert 0 <= chance["mcc"] <= 1 and math.isfinite(chance["f1"])
    assert (out / "synthetic_model" / "synthetic_model_config.json").exists()
    assert (out / "synthetic_data" / "train.safetensors").exists()

    # Rerunning resumes: nothing is trained or evaluated again.
    n_events = len(read_run_log(out))
    run_sweep(config, out, report=False)
    assert len(read_run_log(out)) == n_events


def test_seeds_see_the_same_training_samples_in_different_orders(
    tmp_path: Path,
) -> None:
    from benchmarks.sweeps.backends.synthetic import SyntheticBackend, stored_batches

    backend = SyntheticBackend(tiny_config(), tmp_path)
    samples = backend.train_samples()
    feature_dict = backend.model.feature_dict

    def first_pass(seed: int) -> torch.Tensor:
        batches = stored_batches(samples, feature_dict, 128, seed, "cpu")
        return torch.cat([next(batches) for _ in range(len(samples) // 128)])

    a, b = first_pass(0), first_pass(1)
    assert not torch.equal(a, b)
    sort = lambda x: x[torch.argsort(x[:, 0])]  # noqa: E731
    torch.testing.assert_close(sort(a), sort(b))
    assert torch.equal(a, first_pass(0))


def test_stored_samples_round_trip_the_dense_activations(tmp_path: Path) -> None:
    model = load_or_build_synthetic_model(TINY_MODEL, tmp_path / "model")
    torch.manual_seed(3)
    dense = model.activation_generator.sample(64)
    samples = StoredSamples.draw(model, 64, seed=3, batch_size=64)
    assert torch.equal(samples.rows(torch.arange(64)).to_dense(), dense)
    samples.save(tmp_path / "s.safetensors")
    loaded = StoredSamples.load(tmp_path / "s.safetensors")
    index = torch.tensor([5, 0, 63, 5])
    assert torch.equal(loaded.rows(index).to_dense(), dense[index])


def test_cached_synthetic_model_samples_like_a_freshly_built_one(
    tmp_path: Path,
) -> None:
    built = load_or_build_synthetic_model(TINY_MODEL, tmp_path / "model")
    loaded = load_or_build_synthetic_model(TINY_MODEL, tmp_path / "model")
    assert loaded is not built
    torch.manual_seed(0)
    a = built.sample(256)
    torch.manual_seed(0)
    b = loaded.sample(256)
    assert torch.equal(a, b)


@pytest.mark.parametrize("preset", ["synthetic", "synthetic_cpu"])
def test_synthetic_presets_load(preset: str) -> None:
    config = load_sweep_config(preset)
    assert config.kind == "synthetic"
    assert len(config.seeds) == 3
    assert expand_runs(config)


def test_live_sampling_trains_the_same_sae_for_the_same_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    import benchmarks.sweeps.backends.synthetic as synthetic_backend

    # Too big to store: every run samples live (as on an accelerator).
    monkeypatch.setattr(synthetic_backend, "PREGENERATE_MAX_BYTES", 0)
    config = tiny_config()
    backend = synthetic_backend.SyntheticBackend(config, tmp_path)
    backend.prepare()
    assert not (tmp_path / "synthetic_data" / "train.safetensors").exists()
    run = expand_runs(config)[-1]
    for name in ("a", "b"):
        backend.train(run, tmp_path / name)
    a = load_file(str(tmp_path / "a" / "sae_weights.safetensors"))
    b = load_file(str(tmp_path / "b" / "sae_weights.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    result = backend.evaluate(run, tmp_path / "a", config.eval)
    assert result.unstructured["training_data"] == "live"
    assert math.isfinite(result.metrics["ground_truth"]["mcc"])


def test_grid_controls_and_checkpoints_run_end_to_end(tmp_path: Path) -> None:
    """An LR grid picks each arm's rate by the preset's metric, the multi-seed
    runs use it (the grid run at that rate is one of them), the init control
    trains, AuxK's window and the seed protocol are recorded, and learning-curve
    checkpoints get records of their own."""
    from benchmarks.records.layout import LR_CHOICE_FILENAME, load_checkpoint_records
    from benchmarks.sweeps.runs import main_runs

    data = tiny_config().to_dict()
    data.update(
        name="tiny-grid",
        seeds=[0, 1, 2],
        lr_grid=[1e-3, 3e-3, 1e-2],
        # Bounded at the grid: tests/test_lr_grid.py covers extending it.
        lr_floor=1e-3,
        lr_ceiling=1e-2,
        checkpoint_every_steps=5,
        eval_at_steps=[5, 10],
        lr_decay_steps=4,
    )
    data["eval"] = {**data["eval"], "meta_structure": False}
    data["architectures"] = [
        {"architecture": "topk", "sparsity_param": "k", "sparsity_values": [4]},
        {
            "architecture": "topk",
            "sparsity_param": "k",
            "sparsity_values": [4],
            "init_from": "tied",
        },
        {
            "architecture": "aligned_topk",
            "sparsity_param": "k",
            "sparsity_values": [4],
            "alignments": ["tied"],
            "lr": 3e-3,
        },
    ]
    config = sweep_config_from_dict(data)
    out = tmp_path / "out"
    run_sweep(config, out, report=False)

    choice = json.loads((out / LR_CHOICE_FILENAME).read_text())
    assert set(choice["grid"]) == {"topk", "topk[init=tied]"}
    for label, values in choice["grid"].items():
        assert len(values) == 3
        best = max(values, key=values.get)
        assert choice["chosen"][label] == float(best)
    records, _ = load_records(out)
    main = {r.run_id for r in main_runs(config, out)}
    assert main == {run_info(r)["run_id"] for r in records}
    # Grid records apart; the arm with its own rate is not searched.
    grid = sorted((out / "records" / "lr_grid").glob("*.json"))
    assert len(grid) == 2 * 3
    assert len(main & {p.stem for p in grid}) == 2  # the chosen rates, reused
    for record in records:
        training = record["eval_result_metrics"]["training"]
        assert training["dead_feature_window"] == 5  # a quarter of 20 steps
        assert training["data_seed"] == config.activation_seed
        assert training["init_seed"] == run_info(record)["seed"]
        assert 0 <= training["frac_dead_at_end_of_training"] <= 1
    checkpoints = load_checkpoint_records(out)
    steps = {run_info(r)["step"] for r in checkpoints}
    assert steps == {6, 11}  # SAELens names a checkpoint one step past its mark
    assert {run_info(r)["run_id"] for r in checkpoints} == {
        run_info(r)["run_id"] for r in records
    }

    from benchmarks.analysis.curves import paired_gaps
    from benchmarks.reports.curves import render_curves

    gaps = paired_gaps(
        checkpoints + records,
        "explained_variance",
        "aligned_topk[tied]",
        "topk[init=tied]",
    )
    assert [step for step, _ in gaps] == [6, 11, 20]
    assert all(gap.n == 3 and math.isfinite(gap.mean) for _, gap in gaps)
    text = render_curves(out).read_text()
    assert "Gap aligned_topk[tied] - topk[init=tied] (init control;" in text
    assert "## Stability at the last point" in text
    assert "| aligned_topk[tied] (k=4) | 3 | " in text
    assert (out / "report" / "curves.png").stat().st_size > 0


def test_curve_gaps_pair_each_aligned_arm_with_its_control_and_stock_base():
    from benchmarks.analysis.curves import reference_pairs
    from benchmarks.records.run_table import Arm

    arms = [
        Arm("topk", "topk", None, "topk", None),
        Arm("topk[init=tied,lr=0.003]", "topk", None, "topk", "tied"),
        Arm("topk[init=projected]", "topk", None, "topk", "projected"),
        Arm("aligned_topk[tied]", "aligned_topk", "tied", "topk", None),
        Arm("aligned_topk[projected]", "aligned_topk", "projected", "topk", None),
        Arm("batchtopk[init=tied]", "batchtopk", None, "batchtopk", "tied"),
        Arm("standard", "standard", None, "standard", None),
    ]
    assert reference_pairs(arms) == [
        ("aligned_topk[projected]", "topk[init=projected]", "init control"),
        (
            "aligned_topk[projected]",
            "topk[init=tied,lr=0.003]",
            "init control from tied",
        ),
        ("aligned_topk[projected]", "topk", "stock base"),
        ("aligned_topk[tied]", "topk[init=tied,lr=0.003]", "init control"),
        ("aligned_topk[tied]", "topk[init=projected]", "init control from projected"),
        ("aligned_topk[tied]", "topk", "stock base"),
    ]
