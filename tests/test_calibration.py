"""Calibration to target L0: the coefficient search, the rate chosen at matched L0,
and the phase's records (benchmarks.sweeps.l0_search, benchmarks.sweeps.calibration)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.records.calibration import (
    CALIBRATION_FILENAME,
    read_calibration,
)
from benchmarks.records.layout import (
    EVAL_TYPE_ID,
    LR_CHOICE_FILENAME,
    SWEEP_FILENAME,
    grid_record_path,
    read_record,
    record_path,
    write_json_atomic,
)
from benchmarks.sweeps.calibration import run_calibration
from benchmarks.sweeps.config import SweepConfigError, SweepError
from benchmarks.sweeps.folder import check_out_dir
from benchmarks.sweeps.l0_search import Trial, score_at_l0, search_step, within
from benchmarks.sweeps.lr_grid import grid_labels
from benchmarks.sweeps.presets import sweep_config_from_dict
from benchmarks.sweeps.runs import RunSpec, main_runs, planned_main_runs
from saelens_aligned.pipeline.eval_moments import RECORD_KEY


def power_law(scale: float, slope: float):
    return lambda c: scale * c**slope


def search(l0_of, target: float, start: float, tolerance=0.1, max_trials=8):
    trials: list[Trial] = []
    while True:
        state = search_step(trials, target, tolerance, start, max_trials)
        if state.done:
            return state, trials
        c = state.next_coefficient
        trials.append(Trial(c, l0_of(c), 0.0))


@pytest.mark.parametrize("slope", [-0.6, -1.3, -3.0])
@pytest.mark.parametrize("start", [0.05, 4.0, 200.0])
@pytest.mark.parametrize("target", [16.0, 32.0, 64.0])
def test_the_search_reaches_a_power_law_target_in_few_trials(slope, start, target):
    state, trials = search(power_law(40.0, slope), target, start)
    assert state.found is not None, state.why
    assert within(state.found.l0, target, 0.1)
    assert len(trials) <= 7


def test_a_collapse_brackets_the_target_and_a_cliff_is_explained():
    # L0 falls smoothly to 20, then collapses to 0 past coefficient 2.
    state, _ = search(lambda c: 0.0 if c > 2 else 40 / c, 24.0, 8.0)
    assert state.found is not None and within(state.found.l0, 24.0, 0.1)
    # A cliff from 40 straight to 0: no coefficient gives 20; the search says so.
    state, trials = search(lambda c: 0.0 if c > 2 else 40.0, 20.0, 1.0)
    assert state.found is None
    assert "L0" in state.why and len(trials) <= 8


def test_a_target_out_of_reach_ends_after_the_trial_budget_with_the_l0_reached():
    state, trials = search(lambda _c: 500.0, 32.0, 1.0, max_trials=4)
    assert state.found is None and len(trials) == 4
    assert "reached L0 500" in state.why


def test_the_score_at_l0_interpolates_in_log_l0_between_the_nearest_trials():
    trials = [Trial(1, 64, 0.9), Trial(2, 16, 0.7), Trial(4, 4, 0.1)]
    assert score_at_l0(trials, 32, 0.1) == pytest.approx(0.9 - 0.2 / 2)
    # One side only: the trial within tolerance, else nothing.
    assert score_at_l0([Trial(1, 33, 0.8)], 32, 0.1) == pytest.approx(0.8)
    assert math.isnan(score_at_l0([Trial(1, 64, 0.8)], 32, 0.1))


def config(**overrides):
    data = {
        "name": "calibrated",
        "kind": "synthetic",
        "synthetic_model": {"num_features": 8, "hidden_dim": 4},
        "d_sae": [16],
        "seeds": [0, 1],
        "lr_grid": [1e-3, 3e-3, 1e-2],
        "target_l0": [8, 16, 32],
        "architectures": [
            {"architecture": "topk", "sparsity_param": "k", "sparsity_values": [16]},
            {
                "architecture": "standard",
                "sparsity_param": "l1_coefficient",
                "sparsity_values": [1, 2, 4],
            },
        ],
        **overrides,
    }
    return sweep_config_from_dict(data)


def fake_response(run: RunSpec) -> tuple[float, float]:
    """(L0, explained variance) of a trial: a higher rate leaves the SAE denser at
    one coefficient (so scoring at one coefficient favours it), while at matched
    L0 the best rate is 3e-3."""
    l0 = 20.0 * (run.lr / 1e-3) ** 0.5 * run.sparsity_value**-1.2
    at_matched_l0 = 0.8 - 0.1 * abs(math.log10(run.lr / 3e-3))
    return l0, at_matched_l0 + 0.05 * math.log(l0 / 16)


def recording_execute(out_dir: Path):
    calls: list[list[str]] = []

    def execute(runs: list[RunSpec]) -> None:
        todo = [r for r in runs if not grid_record_path(out_dir, r.run_id).exists()]
        calls.append([r.run_id for r in todo])
        for run in todo:
            l0, ev = fake_response(run)
            write_json_atomic(
                grid_record_path(out_dir, run.run_id),
                {
                    "eval_type_id": EVAL_TYPE_ID,
                    "eval_config": {
                        "run": {
                            "label": run.label,
                            "lr": run.lr,
                            "seed": run.seed,
                            "d_sae": run.d_sae,
                            "sparsity_value": run.sparsity_value,
                        }
                    },
                    "eval_result_metrics": {
                        "reconstruction_quality": {RECORD_KEY: ev},
                        "sparsity": {"l0": l0},
                    },
                    "eval_result_unstructured": {"eval_split": "validation"},
                },
            )

    return execute, calls


def test_each_penalty_arm_gets_its_rate_at_matched_l0_and_a_coefficient_per_target(
    tmp_path: Path,
):
    sweep = config()
    (tmp_path / SWEEP_FILENAME).write_text(json.dumps(sweep.to_dict()))
    assert grid_labels(sweep) == ["topk"]  # the grid leaves standard to calibration
    execute, calls = recording_execute(tmp_path)
    calibration = run_calibration(sweep, tmp_path, execute)
    arm = calibration["standard"]
    # At one coefficient 1e-2 scores best (denser); at matched L0 3e-3 does.
    assert arm.lr == pytest.approx(3e-3)
    assert max(arm.rate_scores, key=arm.rate_scores.__getitem__) == pytest.approx(3e-3)
    assert [p.target_l0 for p in arm.points] == [8, 16, 32]
    for point in arm.points:
        assert point.coefficient is not None and within(point.l0, point.target_l0, 0.1)
    # Every trial is a seed-0 grid run scored on the validation split.
    assert all(r.endswith("-s0") for c in calls for r in c)
    assert read_calibration(tmp_path)["standard"] == arm
    choice = json.loads((tmp_path / LR_CHOICE_FILENAME).read_text())
    assert choice["chosen"]["standard"] == pytest.approx(3e-3)

    # Main runs: standard at its calibrated coefficients and rate, every seed.
    runs = [r for r in main_runs(sweep, tmp_path) if r.label == "standard"]
    assert sorted({r.sparsity_value for r in runs}) == sorted(arm.coefficients)
    assert {r.lr for r in runs} == {arm.lr} and {r.seed for r in runs} == {0, 1}

    # Resuming replays the search from the records and trains nothing.
    again, calls_again = recording_execute(tmp_path)
    assert run_calibration(sweep, tmp_path, again) == calibration
    assert all(not c for c in calls_again)


def test_brackets_carry_the_reference_curves_past_the_end_targets(tmp_path: Path):
    arms = [
        {"architecture": "standard", "sparsity_param": "l1_coefficient"},
        {
            "architecture": "standard",
            "sparsity_param": "l1_coefficient",
            "init_from": "projected",
        },
        {
            "architecture": "aligned",
            "sparsity_param": "l1_coefficient",
            "alignments": ["tied"],
        },
    ]
    sweep = config(
        bracket_factor=1.25,
        architectures=[{**a, "sparsity_values": [2]} for a in arms],
    )
    (tmp_path / SWEEP_FILENAME).write_text(json.dumps(sweep.to_dict()))
    execute, _ = recording_execute(tmp_path)
    calibration = run_calibration(sweep, tmp_path, execute)
    runs = main_runs(sweep, tmp_path)
    values = {
        label: {r.sparsity_value for r in runs if r.label == label}
        for label in calibration
    }
    # The references get two coefficients past the ends; the aligned arm none.
    assert values["aligned[tied]"] == set(calibration["aligned[tied]"].coefficients)
    for label in ("standard", "standard[init=projected]"):
        arm = calibration[label]
        brackets = values[label] - set(arm.coefficients)
        assert len(brackets) == 2 and len(values[label]) == 5
        # On fake_response's power law they land at 8 / 1.25 and 32 x 1.25.
        reached = [
            fake_response(replace(runs[0], lr=arm.lr, sparsity_value=c))[0]
            for c in brackets
        ]
        assert sorted(reached) == pytest.approx([6.4, 40.0], rel=0.01)
    assert len(planned_main_runs(sweep)) == len(runs) == (3 * 3 + 2 * 2) * 2


def test_brackets_extend_a_finished_sweep_and_need_targets(tmp_path: Path):
    sweep = config()
    (tmp_path / SWEEP_FILENAME).write_text(json.dumps(sweep.to_dict()))
    check_out_dir(replace(sweep, bracket_factor=1.25), tmp_path)  # extends it
    (tmp_path / SWEEP_FILENAME).write_text(
        json.dumps(replace(sweep, bracket_factor=1.25).to_dict())
    )
    with pytest.raises(SweepError, match="different config"):
        check_out_dir(replace(sweep, bracket_factor=1.5), tmp_path)
    with pytest.raises(SweepConfigError, match="bracket_factor"):
        config(bracket_factor=0.8)
    with pytest.raises(SweepConfigError, match="bracket_factor"):
        config(bracket_factor=1.25, target_l0=[])


def test_a_penalty_arm_without_calibration_has_no_main_runs_yet(tmp_path: Path):
    sweep = config()
    assert {r.label for r in main_runs(sweep, tmp_path)} == {"topk"}
    assert not (tmp_path / CALIBRATION_FILENAME).exists()


def test_bad_calibration_settings_name_the_field():
    with pytest.raises(SweepConfigError, match="target_l0"):
        config(target_l0=[16, -1])
    with pytest.raises(SweepConfigError, match="l0_tolerance"):
        config(l0_tolerance=0.9)


def test_a_tiny_synthetic_sweep_trains_calibrated_points(tmp_path: Path):
    from benchmarks.sweeps.sweep import run_sweep
    from tests.test_synthetic_backend import tiny_config

    data = tiny_config().to_dict()
    data.update(
        seeds=[0],
        lr_grid=[],
        target_l0=[12],
        l0_tolerance=0.25,
        calibration_max_trials=6,
    )
    data["eval"] = {**data["eval"], "meta_structure": False}
    data["architectures"] = [
        {
            "architecture": "standard",
            "sparsity_param": "l1_coefficient",
            "sparsity_values": [1.0],
        }
    ]
    sweep = sweep_config_from_dict(data)
    run_sweep(sweep, tmp_path, report=False)
    (point,) = read_calibration(tmp_path)["standard"].points
    if point.coefficient is None:  # 20 steps may not reach it: then it says so
        assert point.why and main_runs(sweep, tmp_path) == []
        return
    (main,) = main_runs(sweep, tmp_path)
    assert main.sparsity_value == point.coefficient
    record = read_record(record_path(tmp_path, main.run_id))
    assert record["eval_result_metrics"]["sparsity"]["l0"] > 0


def test_the_report_table_gives_each_targets_coefficient_or_why_not():
    from benchmarks.records.calibration import ArmCalibration, CalibratedPoint
    from benchmarks.reports.tables import calibration_table

    table = calibration_table(
        {
            "gated": ArmCalibration(
                "gated",
                3e-3,
                {1e-3: 0.7, 3e-3: 0.8, 1e-2: 0.75},
                [
                    CalibratedPoint(16, 12.5, 15.2, 6),
                    CalibratedPoint(32, None, 55.0, 12, "12 trials reached L0 55"),
                ],
            )
        }
    )
    assert (
        "| gated | 0.003 | 12.5 (L0 15.2) | not reached: 12 trials reached L0 55 |"
        in (table)
    )
    assert table.splitlines()[0] == "| arm | lr | L0 16 | L0 32 |"
