"""A point's stability is written as soon as its seeds are done; a sweep resumed
on a machine without its SAEs retrains the recorded seeds it lacks, checks each
against its record, and writes the same stability record the original SAEs
gave."""

import json
import shutil
from pathlib import Path

from benchmarks.records.layout import load_records, read_record, record_path
from benchmarks.sweeps.executor import SweepExecutor
from benchmarks.sweeps.plan import run_plan, sweep_plan
from benchmarks.sweeps.restore import (
    RETRAINED_FILENAME,
    compare_with_record,
    read_reproduction,
)
from benchmarks.sweeps.runs import expand_runs
from benchmarks.sweeps.stability_phase import runs_to_restore
from tests.test_synthetic_backend import tiny_config


def stability_by_point(out: Path) -> dict[str, dict]:
    return {
        s["eval_config"]["point"]["point_id"]: s["eval_result_metrics"]["stability"]
        for s in load_records(out)[1]
    }


def test_stability_retrains_missing_seeds_and_reproduces_the_record(
    tmp_path: Path,
) -> None:
    config = tiny_config()
    out = tmp_path / "out"
    # The main runs alone write each point's stability as its seeds finish.
    main = [p for p in sweep_plan(config, out, report=False) if p.name == "main runs"]
    run_plan(main, SweepExecutor())
    before = stability_by_point(out)
    assert sorted(before) == sorted({r.point_id for r in expand_runs(config)})
    records = {
        r.run_id: read_record(record_path(out, r.run_id)) for r in expand_runs(config)
    }
    assert all(
        len(r["eval_result_metrics"]["training"]["weights_sha256"]) == 64
        for r in records.values()
    )

    # A fresh machine: records committed, SAEs and stability of seed 1 gone.
    lost = [r for r in expand_runs(config) if r.seed == 1]
    for run in lost:
        shutil.rmtree(out / "saes" / run.run_id)
    for path in (out / "records").glob("stability-*.json"):
        path.unlink()
    assert sorted(r.run_id for r in runs_to_restore(config, out)) == sorted(
        r.run_id for r in lost
    )

    phases = [p for p in sweep_plan(config, out, report=False) if p.name == "stability"]
    run_plan(phases, SweepExecutor())

    assert runs_to_restore(config, out) == []
    for run in lost:
        check = read_reproduction(out / "saes" / run.run_id)
        assert check is not None and check.run_id == run.run_id
        assert (check.reproduced, check.checked) == (True, "weights_sha256")
    for run in expand_runs(config):
        if run.seed == 0:  # the SAE its own training saved
            assert read_reproduction(out / "saes" / run.run_id) is None
    assert stability_by_point(out) == before
    for stability in load_records(out)[1]:
        retrained = stability["eval_config"]["retrained"]
        assert [r["run_id"] for r in retrained] == [
            r.run_id
            for r in lost
            if r.point_id == stability["eval_config"]["point"]["point_id"]
        ]

    # Without the hash (records written before it was kept), a stock SAE is
    # checked by its alignment scores; an aligned one, whose scores are all 1,
    # cannot be told apart by them.
    for run in lost:
        record = records[run.run_id]
        del record["eval_result_metrics"]["training"]["weights_sha256"]
        check = compare_with_record(record, out / "saes" / run.run_id)
        expected = ("none", None) if run.alignment == "tied" else ("alignment", True)
        assert (check.checked, check.reproduced) == expected
        # A record of other weights is caught.
        record["eval_result_metrics"]["training"]["weights_sha256"] = "0" * 64
        assert (
            compare_with_record(record, out / "saes" / run.run_id).reproduced is False
        )
    assert json.loads((out / "saes" / lost[0].run_id / RETRAINED_FILENAME).read_text())
