import argparse
import json
import math

import pytest
from PIL import Image

from benchmarks import records, report
from tests.test_claims import make_stability, sweep


def write_sweep(out_dir):
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0) + sweep(
        aligned_ev=-0.05, aligned_dead=0.5, form="projected"
    )
    for r in runs:
        info = records.run_info(r)
        r["eval_result_metrics"]["alignment"] = {
            "mean": 1.0 if info["alignment"] else 0.4
        }
        r["eval_result_metrics"]["ground_truth"] = {"mcc": math.nan}
        if info["seed"] == 0:
            r["eval_result_unstructured"]["skipped_evals"] = {
                "absorption": "needs a HookedTransformer model"
            }
        records.write_json_atomic(records.record_path(out_dir, info["run_id"]), r)
    first_of_point = {}
    for r in runs:
        first_of_point.setdefault(records.run_info(r)["point_id"], r)
    for point_id, r in first_of_point.items():
        shared = [0.8, 0.9] if "tied" in point_id else [0.3, 0.4]
        records.write_json_atomic(
            records.stability_path(out_dir, point_id), make_stability(r, shared)
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
    assert "| dead features eliminated | tied | **confirms** |" in text
    assert "| dead features eliminated | projected | **refutes** |" in text
    assert "| stability improved | tied | **confirms** |" in text
    assert "| composes with BatchTopK | tied | **no data** |" in text
    # skipped evals, once per reason, with the number of runs
    assert "`absorption` (9 runs:" in text and "needs a HookedTransformer" in text
    # per-point table: seed mean ± half range, seeds
    row = "| aligned_topk[tied] | k=8 | 8.0 | 0.800 ± 0.010 | 0.600 ± 0.010 | 0.000 |"
    assert row + " 0.850 ± 0.050 | 1.000 | 3 |" in text
    # base rows come before aligned ones
    assert text.index("| topk | k=8 |") < text.index(row)
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
    summary = json.loads((path.parent / "summary.json").read_text())
    assert len(summary["claims"]) == 14
    assert set(summary["points"]) == {
        "ce_loss_score",
        "explained_variance",
        "dead_fraction",
        "stability",
        "alignment_mean",
    }
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert "27 run records and 9 stability records" in text


def test_report_command_and_missing_records(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    with pytest.raises(FileNotFoundError, match="no run records"):
        report.main(parser.parse_args([str(tmp_path)]))
    write_sweep(tmp_path)
    report.main(parser.parse_args([str(tmp_path)]))
    assert "report.md" in capsys.readouterr().out
