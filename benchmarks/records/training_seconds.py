"""Training time in main-run records whose SAE the learning-rate grid trained.

    python -m benchmarks.records.training_seconds [SWEEP_DIR ...]

A main run at its arm's chosen rate reuses the SAE the grid trained there (seed
0), so it trains nothing. Until the executor read the grid record's time
(`executor.earlier_training_seconds`), such a record said it trained in about
0 s, and each report's run-time table under-counted training. This copies the
grid run's seconds into every main record of the same run that says less than
a second; idempotent, and nothing else in a record changes. Without arguments it
fills every sweep folder under benchmarks/results/.
"""

import argparse
import json
from pathlib import Path

from benchmarks.records.layout import grid_record_path, write_json_atomic

RESULTS = Path(__file__).resolve().parents[1] / "results"
UNTIMED_SECONDS = 1.0
"""A record claiming less than this trained nothing: no SAE here trains in 1 s."""


def fill_sweep(out_dir: Path) -> list[str]:
    """Fill `out_dir`'s main records from its grid records; returns the run ids
    filled."""
    filled = []
    for path in sorted((out_dir / "records").glob("*.json")):
        record = json.loads(path.read_text())
        training = record.get("eval_result_metrics", {}).get("training")
        if training is None or (training.get("seconds") or 0.0) >= UNTIMED_SECONDS:
            continue
        grid = grid_record_path(out_dir, path.stem)
        if not grid.exists():
            continue
        seconds = json.loads(grid.read_text())["eval_result_metrics"]["training"][
            "seconds"
        ]
        if seconds < UNTIMED_SECONDS:
            continue
        training["seconds"] = seconds
        write_json_atomic(path, record)
        filled.append(path.stem)
    return filled


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.records.training_seconds",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("sweeps", nargs="*", type=Path)
    args = parser.parse_args()
    folders = args.sweeps or sorted(p.parent for p in RESULTS.glob("*/records"))
    for folder in folders:
        filled = fill_sweep(folder)
        if filled:
            print(f"{folder.name}: {len(filled)} records")


if __name__ == "__main__":
    main()
