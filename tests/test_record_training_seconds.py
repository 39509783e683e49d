"""Committed main records whose SAE the grid trained get the grid's time."""

import json
from pathlib import Path

from benchmarks.records.training_seconds import fill_sweep


def _write(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"eval_result_metrics": {"training": {"seconds": seconds}, "x": 1}}
    path.write_text(json.dumps(record))


def _seconds(path: Path) -> float:
    return json.loads(path.read_text())["eval_result_metrics"]["training"]["seconds"]


def test_only_untimed_records_with_a_grid_record_are_filled_once(tmp_path):
    records = tmp_path / "records"
    _write(records / "lr_grid" / "a-s0.json", 31.5)
    _write(records / "a-s0.json", 0.002)  # reused the grid's SAE
    _write(records / "a-s1.json", 0.0)  # untimed, but no grid run to ask
    _write(records / "lr_grid" / "b-s0.json", 40.0)
    _write(records / "b-s0.json", 28.0)  # timed: left alone
    assert fill_sweep(tmp_path) == ["a-s0"]
    assert _seconds(records / "a-s0.json") == 31.5
    assert _seconds(records / "a-s1.json") == 0.0
    assert _seconds(records / "b-s0.json") == 28.0
    assert (
        json.loads((records / "a-s0.json").read_text())["eval_result_metrics"]["x"] == 1
    )
    assert fill_sweep(tmp_path) == []  # idempotent
