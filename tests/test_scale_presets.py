"""The presets of the dictionary-size study (issue #34) load, name the arms the
issue asks for, and plan the grid, the main runs and stability."""

import pytest

from benchmarks.sweeps.plan import sweep_plan
from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.runs import arm_labels, expand_runs

ALL_ARMS = [
    "topk",
    "topk[init=projected]",
    "aligned_topk[tied]",
    "aligned_topk[tied,aux_loss_coefficient=0]",
    "topk[b_dec=mean]",
]
PRESETS = {
    "scale_2x": (1152, [32.0], ALL_ARMS),
    "scale_8x": (4608, [16.0, 32.0, 64.0], ALL_ARMS),
    "scale_gpu": (4608, [16.0, 32.0, 64.0], ALL_ARMS),
    "scale_32x": (18432, [32.0], ALL_ARMS),
    # Arms 1-3, and arm 5, which won step 1 on reconstruction (its yaml says how).
    "scale_long": (4608, [32.0], ALL_ARMS[:3] + ALL_ARMS[4:]),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_scale_preset_has_the_issues_arms_and_plan(name, tmp_path):
    d_sae, ks, arms = PRESETS[name]
    config = load_sweep_config(name)
    assert [label for labels in arm_labels(config) for label in labels] == arms
    runs = expand_runs(config)
    assert {r.d_sae for r in runs} == {d_sae}
    assert sorted({r.sparsity_value for r in runs}) == ks
    assert len(runs) == len(arms) * len(ks) * 3
    assert config.sparse_stock_step and config.seed_varies_data
    assert config.lr_split == "validation" and len(config.lr_grid) == 3
    assert config.eval.dead_window_tokens == 262_144
    assert config.eval.sae_probes and config.eval.sparse_probing
    assert config.eval.absorption_sparsity_values == [32]
    assert len(config.eval_at_steps) >= 4 and config.checkpoint_core_only
    assert config.training_tokens >= (8_000_000 if name == "scale_long" else 2_000_000)
    assert config.device == ("cuda" if name == "scale_gpu" else "cpu")
    phases = [p.name for p in sweep_plan(config, tmp_path, report=True)]
    assert phases == [
        "learning-rate grid",
        "main runs",
        "stability",
        "report",
    ]


def test_checkpoints_get_the_core_metrics_only():
    config = load_sweep_config("scale_8x")
    checkpoint = config.checkpoint_eval()
    assert not (checkpoint.absorption or checkpoint.sae_probes)
    assert not checkpoint.sparse_probing
    assert checkpoint.dead_window_tokens == config.eval.dead_window_tokens
    assert checkpoint.n_eval_reconstruction_batches == 8


def test_a_finished_run_keeps_only_its_evaluated_checkpoints(tmp_path):
    from dataclasses import replace

    from benchmarks.sweeps.executor import prune_unevaluated_checkpoints

    config = replace(
        load_sweep_config("scale_long"), train_batch_size_tokens=10
    )  # checkpoint folders are named by samples seen: step * 10
    folder = tmp_path / "checkpoints"
    steps = range(126, 8001, 125)  # 63 checkpoints, as SAELens names them
    for step in steps:
        checkpoint = folder / str(step * 10)
        checkpoint.mkdir(parents=True)
        (checkpoint / "cfg.json").write_text("{}")
        (checkpoint / "sae_weights.safetensors").write_text("")
        (checkpoint / "trainer_state.pt").write_text("")
        (checkpoint / "activations_store_state.safetensors").write_text("")
    deleted = prune_unevaluated_checkpoints(config, tmp_path)
    kept = sorted(int(p.name) // 10 for p in folder.iterdir())
    assert kept == [126, 251, 501, 1001, 2001, 4001]
    # The run is over: what was kept is what an evaluation loads, not the
    # optimizer and data-position state SAELens saves to resume from.
    for checkpoint in folder.iterdir():
        names = sorted(p.name for p in checkpoint.iterdir())
        assert names == ["cfg.json", "sae_weights.safetensors"]
    assert len(deleted) == len(steps) - len(kept) + 2 * len(kept)
