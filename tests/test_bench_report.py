import argparse
import copy
import json
import math

import pytest
from PIL import Image

from benchmarks.records import layout
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import report
from saelens_aligned.pipeline.eval_moments import RECORD_KEY
from tests.record_factory import collapse, make_stability, sweep


def verdict(summary: dict, claim: str, form: str, reference: str, **kw) -> str:
    """The verdict text of one claim row of summary.json."""
    metric = kw.get("metric")
    (found,) = [
        r
        for r in summary["claims"]
        if (r["claim"], r["form"], r["reference"], r["base"])
        == (claim, form, reference, kw.get("base", "pooled"))
        and metric in (None, r["metric"])
    ]
    return found["verdict"]


def write_sweep(out_dir, runs=None):
    if runs is None:
        runs = sweep(aligned_ev=0.1, aligned_dead=0.0, control_ev=0.0) + sweep(
            aligned_ev=-0.05, aligned_dead=0.5, form="projected"
        )
    for r in runs:
        info = layout.run_info(r)
        r["eval_result_metrics"]["alignment"] = {
            "mean": 1.0 if info["alignment"] else 0.4
        }
        r["eval_result_metrics"]["ground_truth"] = {"mcc": math.nan}
        r["eval_result_metrics"]["eval_windows"] = {
            "core_tokens": 4096,
            "dead_window_tokens": 262144 if info["seed"] else 131072,
        }
        if info["seed"] == 0:
            r["eval_result_unstructured"]["skipped_evals"] = {
                "absorption": "needs a HookedTransformer model"
            }
        layout.write_json_atomic(layout.record_path(out_dir, info["run_id"]), r)
    first_of_point = {}
    for r in runs:
        first_of_point.setdefault(layout.run_info(r)["point_id"], r)
    for point_id, r in first_of_point.items():
        aligned_tied = point_id.startswith("aligned_topk-tied")
        alive = [0.8, 0.9, 0.85] if aligned_tied else [0.3, 0.4, 0.35]
        layout.write_json_atomic(
            layout.stability_path(out_dir, point_id),
            make_stability(r, [0.5, 0.6, 0.55], alive=alive, chance=0.004),
        )
    return runs


def test_report_renders_tables_claims_and_valid_plots(tmp_path):
    write_sweep(tmp_path)
    stale = tmp_path / "report" / "pareto_old_d1.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")

    path = report.render_report(tmp_path)

    assert path == tmp_path / "report" / "report.md"
    text = path.read_text()
    assert "## Claims" in text
    claims = text[text.index("## Claims") :].splitlines()
    # What the seeds vary, from the records' sweep settings (here: unrecorded).
    assert claims[2] == (
        "In this sweep the seeds vary the initialisation; whether they vary the "
        "data order is not recorded."
    )
    assert "vs stock base" in claims[4] and "vs fair control" in claims[4]
    summary = json.loads((path.parent / "summary.json").read_text())
    dead = "dead features eliminated"
    assert verdict(summary, dead, "tied", "stock base") == "better at 3 of 3"
    assert verdict(summary, dead, "tied", "fair control") == "better at 3 of 3"
    assert verdict(summary, dead, "projected", "stock base") == "worse at 3 of 3"
    # Both forms share one fair control: the base from the balanced init.
    assert verdict(summary, dead, "projected", "fair control") == "worse at 3 of 3"
    assert verdict(summary, "stability improved", "tied", "stock base") == (
        "better at 3 of 3"
    )
    assert "| composes with TopK" in text and "composes with BatchTopK" not in text
    words = " ".join(text.split())
    assert "Benjamini-Hochberg corrected p-value" in words
    assert "paired by seed" in words.lower()
    # eval windows once; a size that differs lists each
    assert text.count("Evaluation windows:") == 1
    assert "core_tokens 4096;" in text
    assert "dead_window_tokens 131072 (12 runs) / 262144 (24 runs)" in text
    assert "## Degenerate points\n\nNone" in text
    assert "## Learning rates" not in text  # no lr_choice.json
    # skipped evals, once per reason, with the number of runs
    assert "`absorption` (12 runs:" in text and "needs a HookedTransformer" in text
    # per-point table: seed mean ± half the 95% t interval (t = 4.30 for 3 seeds)
    half = 4.303 * 0.01 / math.sqrt(3)
    row = (
        f"| aligned_topk[tied] | k=8 | 8.0 | 0.800 ± {half:.3f} | 0.600 ± {half:.3f}"
        " | 0.000 |"
    )
    assert row in text
    assert text.index("| topk | k=8 |") < text.index(row)
    # stability section: alive and all-latent criteria beside the chance baseline
    assert "## Stability" in text and "untrained SAEs" in text
    stab = text[text.index("## Stability") :]
    assert "| aligned_topk[tied] | k=8 | 8.0 | 0.850 ± " in stab
    assert "| 0.550 ± " in stab and "| 0.004 |" in stab
    plots = sorted(p.name for p in path.parent.glob("*.png"))
    assert plots == [
        f"pareto_{m}_d64.png"
        for m in sorted(
            ["ce_loss_score", "explained_variance", "dead_fraction", "stability"]
            + ["alignment_mean"]
        )
    ]  # mcc is NaN everywhere: no plot; the stale plot is gone
    for name in plots:
        assert f"]({name})" in text
        with Image.open(path.parent / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 100
    assert summary["degenerate_points"] == []
    assert set(summary["points"]) == {
        "stability_all_latents",  # tabulated, not plotted
        "ce_loss_score",
        "explained_variance",
        "dead_fraction",
        "stability",
        "alignment_mean",
    }
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert "36 run records and 12 stability records" in text


@pytest.mark.parametrize(
    ("varies", "words"),
    [
        (False, "the seeds vary the initialisation only (every run sees the same"),
        (True, "the seeds vary the initialisation and the data order."),
    ],
)
def test_the_report_says_what_the_seeds_vary_from_the_sweep_config(
    tmp_path, varies, words
):
    runs = write_sweep(tmp_path)
    for r in runs:
        r["eval_config"]["sweep"] = {"name": "s", "seed_varies_data": varies}
        layout.write_json_atomic(
            layout.record_path(tmp_path, layout.run_info(r)["run_id"]), r
        )
    text = " ".join(report.render_report(tmp_path).read_text().split())
    assert f"In this sweep {words}" in text


def test_report_lists_degenerate_points(tmp_path):
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, ks=(8, 16, 32, 128))
    collapse(runs, "topk", 128)
    write_sweep(tmp_path, runs)
    text = report.render_report(tmp_path).read_text()
    table = text[text.index("## Degenerate points") :]
    assert "| topk | k=128 | 64 | 3/3 | l2_ratio 0.065 < 0.3, " in table
    assert "| yes |" in table
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    (pooled,) = [
        r
        for r in summary["claims"]
        if r["metric"] == "explained variance"
        and (r["form"], r["reference"], r["base"]) == ("tied", "stock base", "pooled")
    ]
    assert "1 collapsed points left out" in pooled["evidence"]


def grid_sweep(out_dir):
    """Main runs at lr 3e-4 (aligned) and 1e-3 (base); one grid run per arm at
    the other rate, whose bad numbers must not reach the claims."""
    main = sweep(aligned_ev=0.1, aligned_dead=0.0)
    for r in main:
        info = layout.run_info(r)
        info["lr"] = 3e-4 if info["alignment"] else 1e-3
    grid = []
    for r in main:
        info = layout.run_info(r)
        if info["seed"] == 0 and info["sparsity_value"] == 8:
            other = copy.deepcopy(r)
            other_info = layout.run_info(other)
            other_info["lr"] = 1e-3 if info["alignment"] else 3e-4
            other_info["run_id"] += "-grid"
            other["eval_result_metrics"]["reconstruction_quality"][RECORD_KEY] = -0.9
            grid.append(other)
    write_sweep(out_dir, main + grid)
    chosen = {"topk": 1e-3, "aligned_topk[tied]": 3e-4}
    (out_dir / "lr_choice.json").write_text(
        json.dumps(
            {
                "metric": "explained_variance",
                "grid": {
                    "topk": {"0.0003": -0.9, "0.001": 0.49},
                    "aligned_topk[tied]": {"0.0003": 0.59, "0.001": -0.9},
                },
                "chosen": chosen,
            }
        )
    )
    (out_dir / "sweep.json").write_text("{}")
    return main, grid, chosen


def test_main_records_keep_each_arm_at_its_chosen_rate(tmp_path):
    main, grid, chosen = grid_sweep(tmp_path)
    sweep = SweepRecords.read(tmp_path)
    assert sorted(r.run_id for r in sweep.runs) == sorted(
        layout.run_info(r)["run_id"] for r in main
    )
    assert all(math.isclose(r.lr, chosen[r.arm.label]) for r in sweep.runs)
    everything = SweepRecords.from_json(main + grid)  # no choice: every record
    assert len(everything.runs) == len(main) + len(grid)
    # a rate that differs from the chosen one by float rounding is the chosen one
    rounded = copy.deepcopy(main[0])
    layout.run_info(rounded)["lr"] *= 1 + 1e-12
    with_choice = SweepRecords.from_json([rounded], lr_choice=sweep.lr_choice)
    assert len(with_choice.runs) == 1


def test_report_with_a_learning_rate_grid_reports_main_runs_only(tmp_path):
    main, grid, _ = grid_sweep(tmp_path)
    text = report.render_report(tmp_path).read_text()
    assert f"{len(main)} run records" in text
    assert "## Learning rates" in text and "explained_variance over the grid" in text
    assert "| aligned_topk[tied] | **0.5900** | -0.9000 | 0.0003 |" in text
    assert "| topk | -0.9000 | **0.4900** | 0.001 |" in text
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert (
        verdict(
            summary,
            "reconstruction improved",
            "tied",
            "stock base",
            metric="explained variance",
        )
        == "better at 3 of 3"
    )
    # without sweep.json the folder is not a grid sweep: every record counts
    (tmp_path / "sweep.json").unlink()
    text = report.render_report(tmp_path).read_text()
    assert f"{len(main) + len(grid)} run records" in text
    assert "## Learning rates" not in text


def test_report_command_and_missing_records(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    with pytest.raises(FileNotFoundError, match="no run records"):
        report.main(parser.parse_args([str(tmp_path)]))
    write_sweep(tmp_path)
    report.main(parser.parse_args([str(tmp_path)]))
    assert "report.md" in capsys.readouterr().out


def test_report_gives_each_run_s_training_and_whole_run_seconds(tmp_path):
    runs = write_sweep(tmp_path)
    first, second = (layout.run_info(r)["run_id"] for r in runs[:2])
    for r in runs:
        r["eval_result_metrics"]["training"] = {"seconds": 12.4}
    layout.write_json_atomic(layout.record_path(tmp_path, first), runs[0])
    layout.log_event(tmp_path, first, "start")
    layout.log_event(tmp_path, first, "finished", seconds=99.6)
    # a rerun's finished event replaces the first
    layout.log_event(tmp_path, first, "finished", seconds=80.2)
    layout.log_event(tmp_path, second, "start")  # killed: never finished

    text = report.render_report(tmp_path).read_text()

    times = text[text.index("## Run times") :]
    assert f"| `{first}` | 12 | 80 |" in times
    assert f"| `{second}` | - | - |" in times
    assert "36 runs; whole runs (training and every evaluation) took 1.3 min" in times
    # only runs the log saw finish count: 12.4 of 80.2 s
    assert "training 0.2 min of it (15%), evaluation the rest" in times
