"""Every base's own verdicts from the matched sweeps (issue #33)."""

from benchmarks.analysis.verdicts.judge import judge_sweep
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import per_base
from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.runs import bracketed_labels, planned_main_run_count
from tests.record_factory import sweep


def _rows(*runs: list[dict]):
    return judge_sweep(SweepRecords.from_json([r for rs in runs for r in rs]))


def test_each_base_gets_its_own_rows_and_a_losing_base_is_not_pooled_away():
    # `tied` helps TopK and hurts gated: the pooled README cell would say
    # "better at 3, worse at 3 of 6"; each base's own row says which.
    topk = sweep(aligned_ev=0.05, aligned_dead=0.0, control_ev=0.0)
    gated = sweep(aligned_ev=-0.05, aligned_dead=0.0, architecture="gated")
    table = per_base.per_base_table({"m": _rows(topk, gated)})
    lines = table.splitlines()
    assert lines[0] == (
        "| base | claim (metric) | `m` vs stock | `m` vs fair control |"
    )
    gated_at = next(i for i, line in enumerate(lines) if line.startswith("| gated |"))
    topk_at = next(i for i, line in enumerate(lines) if line.startswith("| topk |"))
    assert gated_at < topk_at  # the L1 family first
    gated_rows = lines[gated_at:topk_at]
    ev = next(line for line in gated_rows if "(explained variance)" in line)
    assert "| worse at 3 of 3 | - |" in ev  # gated has no fair control here
    topk_ev = next(line for line in lines[topk_at:] if "(explained variance)" in line)
    assert "| better at 3 of 3 | better at 3 of 3 |" in topk_ev
    assert "pooled" not in table


def test_no_main_run_gives_no_rows_and_progress_says_how_far():
    assert judge_sweep(SweepRecords.from_json([])) == []
    assert per_base.per_base_table({"m": []}) == "No records yet."
    line = per_base.progress_line({"a": 54, "c": 9}, {"a": 162, "b": 162, "c": 9})
    assert line == (
        "Progress: `a` 54 of 162 main runs; `b` no main run recorded yet; "
        "`c` complete (9 main runs)."
    )


def test_the_matched_presets_plan_three_targets_times_three_seeds_per_arm():
    for name in ("cpu_matched", "synthetic_matched"):
        config = load_sweep_config(name)
        arms = sum(len(a.alignments or [None]) for a in config.architectures)
        # Plus two brackets per calibrated reference arm (stock, fair control).
        brackets = len(bracketed_labels(config)) * 2 * 3
        assert planned_main_run_count(config) == arms * 3 * 3 + brackets
    assert len(bracketed_labels(load_sweep_config("cpu_matched"))) == 8
