"""The dictionary-size study's page (docs/scale.md) from sweep folders, and the
wall-time estimate of its steps."""

import json
import math

import pytest

from benchmarks.perf.scale_estimate import STEPS, estimate_step, estimate_table
from benchmarks.records.layout import grid_record_path
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import scale
from benchmarks.sweeps.presets import load_sweep_config
from tests.record_factory import make_record

ARMS = {
    # label: (make_record fields, run fields to set, CE offset, dead fraction)
    "topk": ({"architecture": "topk"}, {}, 0.0, 0.10),
    "topk[init=projected]": (
        {"architecture": "topk", "init_from": "projected"},
        {},
        0.01,
        0.05,
    ),
    "aligned_topk[tied]": (
        {"architecture": "aligned_topk", "alignment": "tied"},
        {},
        0.02,
        0.0,
    ),
    "aligned_topk[tied,aux_loss_coefficient=0]": (
        {"architecture": "aligned_topk", "alignment": "tied"},
        {"sae_kwargs": {"aux_loss_coefficient": 0}},
        0.03,
        0.0,
    ),
    "topk[b_dec=mean]": ({"architecture": "topk"}, {"b_dec_init": "mean"}, -0.01, 0.02),
}


def write_sweep(folder, d_sae: int, tokens: int | None = None) -> None:
    records = folder / "records"
    records.mkdir(parents=True)
    jitter = (-0.002, 0.0, 0.002)
    for label, (fields, run_fields, offset, dead) in ARMS.items():
        for i, k in enumerate((16, 32, 64)):
            for seed in range(3):
                record = make_record(
                    **fields,
                    base_architecture="topk",
                    sparsity_value=k,
                    seed=seed,
                    d_sae=d_sae,
                    explained_variance=0.6 + 0.05 * i + offset + jitter[seed],
                    ce_loss_score=0.8 + 0.05 * i + offset + jitter[seed],
                    dead_fraction_long=dead * d_sae / 1152,
                    dead_fraction=dead,
                    l0=float(k),
                    l2_ratio=0.9,
                )
                if tokens:
                    record["eval_config"]["sweep"] = {"training_tokens": tokens}
                run = record["eval_config"]["run"]
                run.update(run_fields, label=label)
                run["run_id"] = f"{label}-k{k}-d{d_sae}-s{seed}"
                path = records / f"{run['run_id']}.json"
                path.write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path):
    write_sweep(tmp_path / "cpu", 1152)
    write_sweep(tmp_path / "scale_8x", 4608)
    return tmp_path


def test_each_size_has_a_table_per_aligned_recipe_or_says_not_run_yet(results):
    text = scale.claims_block(results)
    assert "### 2× (d_sae 1152, `benchmarks/results/cpu`)" in text
    assert "### 8× (d_sae 4608, `benchmarks/results/scale_8x`)" in text
    assert "### 32× (d_sae 18432)\n\nNot run yet: `python -m benchmarks sweep " in text
    assert text.count("#### aligned TopK (tied): the other recipe") == 2
    assert text.count("#### aligned TopK (tied, no AuxK): the better recipe here") == 2
    assert "vs mean-centred base" in text
    # Judged against the centred arm, not "no data": it is in these sweeps.
    rows = [line for line in text.splitlines() if "explained variance" in line]
    assert rows and all("no data" not in line for line in rows)


def test_the_better_recipe_is_the_one_ahead_of_its_references_and_comes_first(
    results,
):
    sweep = scale.topk_arms(SweepRecords.read(results / "scale_8x"), 4608)
    # Both recipes beat every reference at every point here, so the nets tie and
    # the higher CE-loss score (no AuxK: +0.03 against +0.02) decides.
    first, second = scale.judged_recipes(sweep)
    assert first.net == second.net > 0
    assert first.label == "aligned_topk[tied,aux_loss_coefficient=0]"

    # Make the no-AuxK recipe leave latents dead: it falls behind on the dead
    # claim against every reference, and the recipe with AuxK moves first.
    for path in (results / "scale_8x" / "records").glob("*aux_loss*.json"):
        record = json.loads(path.read_text())
        record["eval_result_metrics"]["misc"]["frac_dead_latents_long"] = 0.5
        path.write_text(json.dumps(record))
    sweep = scale.topk_arms(SweepRecords.read(results / "scale_8x"), 4608)
    first, second = scale.judged_recipes(sweep)
    assert first.label == "aligned_topk[tied]"
    assert first.net > second.net


def test_a_sweep_still_running_does_not_displace_a_finished_one(results):
    write_sweep(results / "cpu_matched", 1152)
    for record in (results / "cpu_matched" / "records").glob("*-s[12].json"):
        record.unlink()
    text = scale.claims_block(results)
    assert "### 2× (d_sae 1152, `benchmarks/results/cpu`)" in text
    assert "Running:" not in text

    # Alone, the running sweep is shown, and said to be partial.
    for record in (results / "cpu" / "records").glob("*.json"):
        record.unlink()
    text = scale.claims_block(results)
    assert "### 2× (d_sae 1152, `benchmarks/results/cpu_matched`)" in text
    planned = scale.planned_topk_runs("cpu_matched", 1152)
    assert f"Running: 15 of {planned} TopK runs recorded so far" in text


def test_a_sweep_with_the_activation_mean_states_its_gamma(results):
    from benchmarks.records.activation_moments import (
        ActivationMoments,
        write_activation_moments,
    )

    moments = ActivationMoments([0.0], 0.6, 0.26, 1_024_000, "cache")
    write_activation_moments(results / "scale_8x", moments)
    text = scale.claims_block(results)
    assert "γ = ‖μ‖/‖σ‖ = 0.60; the mean carries 26% of E‖x‖² (1,024,000" in text


def test_a_folder_without_records_is_not_run_yet(tmp_path):
    text = scale.claims_block(tmp_path)
    assert text.count("Not run yet") == 3
    assert "Not drawn yet" in scale.figure_block(tmp_path, "figures/x.png")
    assert scale.scale_figure(tmp_path) is None


def test_a_size_still_in_its_rate_grid_says_so(tmp_path):
    for run_id in ("topk-k32-a", "topk-k32-b"):
        path = grid_record_path(tmp_path / "scale_8x", run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    text = scale.claims_block(tmp_path)
    assert "Learning-rate grid under way: 2 grid runs recorded" in text
    assert text.count("Not run yet") == 2  # 2x and 32x


def test_the_figure_draws_every_arm_at_every_size_with_records(results):
    points = scale.figure_points(results)
    assert set(points) == {"dead_fraction_long", "ce_loss_score"}
    assert set(points["ce_loss_score"]) == set(ARMS)
    sizes = [d for d, _ in points["dead_fraction_long"]["topk"]]
    assert sizes == [1152, 4608]
    figure = scale.scale_figure(results)
    assert figure is not None and len(figure.figure.axes) == 2
    for ax in figure.figure.axes:
        assert "dictionary size" in ax.get_xlabel() and ax.get_ylabel()
    assert "k = 32" in figure.caption
    assert scale.figure_block(results, "figures/x.png").startswith("![")


def test_the_figure_names_each_sizes_training_length_and_warns_when_they_differ(
    tmp_path,
):
    write_sweep(tmp_path / "cpu", 1152, tokens=204_800)
    write_sweep(tmp_path / "scale_8x", 4608, tokens=2_048_000)
    assert scale.figure_tokens(tmp_path) == {1152: 204_800, 4608: 2_048_000}
    figure = scale.scale_figure(tmp_path)
    assert figure is not None
    assert "not the dictionary size alone" in figure.caption
    figure.figure.canvas.draw()
    ticks = [t.get_text() for t in figure.figure.axes[0].get_xticklabels()]
    assert ticks == ["1152 (2×)\n205k tokens", "4608 (8×)\n2.0M tokens"]

    # One length at every size: nothing to warn about.
    write_sweep(tmp_path / "scale_2x", 1152, tokens=2_048_000)
    figure = scale.scale_figure(tmp_path)
    assert figure is not None and "alone" not in figure.caption


def test_a_sweep_without_checkpoints_has_no_tokens_to_target(results):
    text = scale.tokens_block(results)
    assert text.count("No learning-curve checkpoints yet.") == 2


def timing(seconds_per_step: float, eval_s: float) -> dict:
    sizes = ("1152", "4608", "18432")
    labels = list(ARMS)
    return {
        "batch_tokens": 1024,
        "k": 32,
        "dead_fraction": 0.25,
        "steps_timed": 20,
        "machine": {"processor": "x", "cpu_count": 2, "cpu_threads": 2},
        "step_seconds": {d: dict.fromkeys(labels, seconds_per_step) for d in sizes},
        "eval_seconds": {
            d: {
                "grid": eval_s,
                "core": eval_s,
                "final (first of the sweep)": eval_s,
                "final": eval_s,
                "final without absorption": eval_s,
            }
            for d in sizes
        },
    }


def test_the_estimate_counts_every_run_and_evaluation_of_a_step():
    config = load_sweep_config("scale_8x")
    e = estimate_step("1", "scale_8x", config, timing(1.0, 10.0))
    assert (e.saes, e.grid_runs) == (45, 15)
    # 45 main runs, 5 of them the grid's at the chosen rate, plus 15 grid runs.
    assert e.training_hours == pytest.approx((40 + 15) * 2000 / 3600)
    # Each main SAE: 4 checkpoints and its final eval; each grid run one.
    assert e.eval_hours == pytest.approx((45 * 5 + 15) * 10 / 3600)
    assert math.isclose(e.total_hours, e.training_hours + e.eval_hours)


def test_the_estimate_table_names_each_step_and_the_machine():
    configs = {p: load_sweep_config(p) for _, p in STEPS}
    text = estimate_table(configs, timing(1.0, 10.0))
    for preset in configs:
        assert f"`{preset}`" in text
    assert "Machine: x, 2 cores" in text


def test_a_size_whose_evals_were_not_measured_borrows_the_nearest_and_says_so():
    configs = {p: load_sweep_config(p) for _, p in STEPS}
    partial = timing(1.0, 10.0)
    del partial["eval_seconds"]["18432"]
    text = estimate_table(configs, partial)
    assert "18432 uses d_sae 4608's" in text
    assert text.count(" * |") == 1  # only scale_32x's eval hours are marked


def test_the_readme_brief_gives_the_better_recipe_at_each_size(results):
    from benchmarks.reports import scale_brief

    text = scale_brief.render(results)
    eight = [line for line in text.splitlines() if line.startswith("| 8× ")]
    assert len(eight) == 1
    assert "aligned TopK (tied, no AuxK) | dead fraction (long window) |" in eight[0]
    assert eight[0].endswith(
        "| better at 3 of 3 | better at 3 of 3 | better at 3 of 3 |"
    )
    assert "No main runs yet at 32×" in text

    # A size without the centred arm gets a dash in that column...
    for path in (results / "cpu" / "records").glob("topk[[]b_dec=mean[]]*.json"):
        path.unlink()
    sweep = scale.topk_arms(SweepRecords.read(results / "cpu"), 1152)
    best = scale.judged_recipes(sweep)[0]
    assert scale_brief.size_lines("2×", best)[0].endswith("| - |")
    # ...and a sweep short of its preset's plan (`cpu` plans 45 TopK runs) shows
    # only how far it has got: its verdicts would move as runs land.
    text = scale_brief.render(results)
    assert "| 2× (`cpu`, ?) | running: 36 of 45 runs |" in text


def test_each_activation_cache_is_paid_once_by_the_first_step_to_read_it():
    configs = {p: load_sweep_config(p) for _, p in STEPS}
    measured = timing(1.0, 10.0) | {
        "training_cache": {"tokens": 1_000_000, "seconds": 3600, "note": "x"}
    }
    text = estimate_table(configs, measured)
    rows = {
        line.split("|")[2].strip(" `"): line.split("|")
        for line in text.splitlines()
        if line.startswith("| ") and "`" in line
    }
    cache_h = {preset: float(row[7]) for preset, row in rows.items()}
    brown_8x = configs["scale_8x"]
    # scale_8x builds Brown's caches (training and held-out); the later Brown
    # steps share them; scale_long reads another text and builds its own.
    assert cache_h["scale_8x"] == pytest.approx(
        (brown_8x.activation_tokens + brown_8x.eval.dead_window_tokens) / 1e6, abs=0.05
    )
    assert cache_h["scale_2x"] == cache_h["scale_32x"] == 0.0
    long = configs["scale_long"]
    assert long.dataset != brown_8x.dataset
    assert cache_h["scale_long"] == pytest.approx(
        (long.activation_tokens + long.eval.dead_window_tokens) / 1e6, abs=0.05
    )
