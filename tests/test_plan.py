"""A sweep is a plan of phases over run specs; resuming one finds what is done,
on every committed results folder."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.records.calibration import CALIBRATION_FILENAME
from benchmarks.records.layout import (
    LR_CHOICE_FILENAME,
    SWEEP_FILENAME,
    load_records,
    record_path,
    run_info,
)
from benchmarks.sweeps.executor import SweepExecutor, pending_runs
from benchmarks.sweeps.folder import check_out_dir
from benchmarks.sweeps.plan import run_plan, sweep_plan
from benchmarks.sweeps.presets import load_sweep_config, sweep_config_from_dict
from benchmarks.sweeps.runs import main_runs

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
COMMITTED = sorted(p.name for p in RESULTS.iterdir() if (p / SWEEP_FILENAME).exists())
# Sweeps still running, whose records are committed as they land
# (benchmarks/results/README.md says which).
IN_PROGRESS = {"scale_2x"}


def test_the_plan_lists_the_phases_in_order():
    config = load_sweep_config("synthetic_cpu")  # has an lr_grid
    names = [phase.name for phase in sweep_plan(config, Path("unused"))]
    assert names == ["learning-rate grid", "main runs", "stability", "report"]
    rerun = sweep_plan(config, Path("unused"), report=False, labels=["topk"])
    assert [phase.name for phase in rerun] == [
        "learning-rate grid",
        "retire records at rates no longer chosen",
        "main runs",
        "stability",
    ]
    assert [p.name for p in sweep_plan(load_sweep_config("ci"), Path("x"))][0] == (
        "main runs"
    )


def copy_of(name: str, tmp_path: Path) -> Path:
    """The committed folder's config, rate choice and records (its SAEs are not
    committed), copied where a resume may write."""
    source, copy = RESULTS / name, tmp_path / name
    copy.mkdir()
    for file in (SWEEP_FILENAME, LR_CHOICE_FILENAME, CALIBRATION_FILENAME):
        if (source / file).exists():
            shutil.copy(source / file, copy / file)
    if (source / "records").exists():  # a sweep just started has none yet
        shutil.copytree(source / "records", copy / "records")
    return copy


@pytest.mark.parametrize("name", COMMITTED)
def test_resuming_a_committed_sweep_finds_every_main_run_done(name, tmp_path):
    copy = copy_of(name, tmp_path)
    # Resumed as its README command does: the preset of the same name, which the
    # folder accepts as its own sweep.
    config = load_sweep_config(name)
    check_out_dir(config, copy)
    written = sweep_config_from_dict(json.loads((copy / SWEEP_FILENAME).read_text()))
    assert set(main_runs(written, copy)) <= set(main_runs(config, copy))
    runs = main_runs(config, copy)
    recorded = {run_info(r)["run_id"] for r in load_records(copy)[0]}
    # Every main-run record is a run of the plan: resuming orphans none.
    assert recorded <= {r.run_id for r in runs}
    if name in IN_PROGRESS:  # committed as its records land; resumes the rest
        assert pending_runs(copy, runs) == [r for r in runs if r.run_id not in recorded]
        return
    assert runs and pending_runs(copy, runs) == []
    # The main-runs and stability phases of the real plan then have nothing to
    # do: no run trains and no stability record is rewritten.
    phases = [p for p in sweep_plan(config, copy, report=False) if p.name != "report"]
    stability = sorted((copy / "records").glob("stability-*.json"))
    before = {p: p.read_bytes() for p in stability}
    run_plan(
        [p for p in phases if p.name in ("main runs", "stability")], SweepExecutor()
    )
    assert {p: p.read_bytes() for p in stability} == before
    # An interrupted sweep: a run whose record is gone is the one left to do.
    record_path(copy, runs[-1].run_id).unlink()
    assert pending_runs(copy, runs) == [runs[-1]]
