"""Rerun named arms of a sweep folder: their learning-rate grid (with the edge
rule, on `lr_split`), choice, main runs and stability; the other arms' records
and choices stay as they are, and the rerun arms' records at rates no longer
chosen move to `records/superseded/`.

    python -m benchmarks.sweeps.rerun_arms --preset synthetic_cpu \
        --out benchmarks/results/synthetic_cpu --arms 'aligned[tied],aligned_gated[tied]'
"""

import argparse
import sys
from pathlib import Path

from benchmarks.records.layout import SWEEP_FILENAME, read_lr_choice, write_json_atomic
from benchmarks.sweeps.backends.validation_split import ValidationSplitError
from benchmarks.sweeps.config import SweepConfig, SweepConfigError, SweepError
from benchmarks.sweeps.executor import SweepExecutor
from benchmarks.sweeps.folder import check_out_dir
from benchmarks.sweeps.lr_grid import grid_labels
from benchmarks.sweeps.plan import run_plan, sweep_plan
from benchmarks.sweeps.presets import load_sweep_config


def rerun_arms(
    config: SweepConfig, out_dir: Path, labels: list[str], workers: int = 1
) -> dict[str, float]:
    """The plan of `benchmarks.sweeps.plan` for the arms `labels` of the sweep in
    `out_dir`, without a report; returns their chosen rates."""
    out_dir = Path(out_dir)
    known = grid_labels(config)
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise SweepError(
            f"--arms: {unknown} are not arms of {config.name!r} searched by its "
            f"lr_grid; choose from {known}."
        )
    executor = SweepExecutor("local", workers)
    check_out_dir(config, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / SWEEP_FILENAME, config.to_dict())
    run_plan(sweep_plan(config, out_dir, report=False, labels=labels), executor)
    chosen = (read_lr_choice(out_dir) or {"chosen": {}})["chosen"]
    return {label: chosen[label] for label in labels}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweeps.rerun_arms")
    parser.add_argument("--preset", required=True, help="the folder's sweep preset")
    parser.add_argument("--out", required=True, help="the sweep folder")
    parser.add_argument(
        "--arms", required=True, help="comma-separated arm labels, e.g. 'aligned[tied]'"
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        config = load_sweep_config(args.preset)
        rerun_arms(config, Path(args.out), args.arms.split(","), args.workers)
    except (SweepError, SweepConfigError, ValidationSplitError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
