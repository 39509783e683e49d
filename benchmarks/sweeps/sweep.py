"""Run a benchmark sweep: shared activations, one SAE per run, one record per run.

    python -m benchmarks sweep --preset cpu --out results/cpu
    python -m benchmarks sweep --preset my_sweep.yaml --out DIR --executor ray

Layout of DIR:
    sweep.json                the config (a rerun with a different config refuses,
                              unless it only adds arms: `check_out_dir`)
    saes/<run_id>/            each SAE, a SAELens folder (renamed into place whole)
    records/<run_id>.json     its evaluation record (benchmarks.records.layout), atomic
    records/stability-<point_id>.json   seed-to-seed stability of each point
    logs/runs.jsonl           one line per run start / train / finish
    report/                   benchmarks.reports.report's markdown and plots

The phases (learning-rate grid, main runs, stability, report) are listed in
`benchmarks.sweeps.plan`. Resuming is rerunning: a run whose record exists is skipped; a run whose SAE folder
exists but has no record is evaluated without training again. A killed sweep loses
at most the run in progress.

The data every SAE sees is made once per sweep, before any run: LM activations go
to SAELens' activation cache on disk (shared by every worker, on one machine or
through a shared filesystem with Ray); the synthetic model is built from its seeded
config.
"""

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.records.layout import SWEEP_FILENAME, load_records, write_json_atomic
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.config_checks import check_device
from benchmarks.sweeps.executor import EXECUTORS, SweepExecutor
from benchmarks.sweeps.folder import check_out_dir
from benchmarks.sweeps.plan import run_plan, sweep_plan
from benchmarks.sweeps.presets import load_sweep_config


def run_sweep(
    config: SweepConfig,
    out_dir: Path,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    report: bool = True,
    bases: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run the plan of `config` (`benchmarks.sweeps.plan`: learning-rate grid,
    main runs, stability, report) into `out_dir`, skipping what is done. Returns
    the run records. `bases` runs only those base architectures' arms
    (`SweepConfig.restricted_to`); the folder stays the whole sweep's."""
    out_dir = Path(out_dir)
    runner = SweepExecutor(executor, workers, ray_address)
    check_device(config.device)
    # Checked before the folder is touched; the folder keeps the whole sweep.
    part = config.restricted_to(bases) if bases else config
    check_out_dir(config, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / SWEEP_FILENAME, config.to_dict())
    run_plan(sweep_plan(part, out_dir, report=report), runner)
    return load_records(out_dir)[0]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        required=True,
        help="ci, cpu, synthetic, synthetic_cpu, gpu, or a YAML file of the same shape",
    )
    parser.add_argument(
        "--out", required=True, help="sweep folder (resumes if it exists)"
    )
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument(
        "--workers", type=int, default=1, help="local: processes (each loads the model)"
    )
    parser.add_argument(
        "--ray-address", default=None, help="ray: cluster address (default: local Ray)"
    )
    parser.add_argument(
        "--device", default=None, help="override the preset's device (cpu, cuda)"
    )
    parser.add_argument("--no-report", action="store_true", help="skip the report")
    parser.add_argument(
        "--bases",
        default=None,
        help="comma-separated base architectures: run only their arms (the base, its "
        "init controls, its aligned variant); rerun with others to fill the folder",
    )


def main(args: argparse.Namespace) -> None:
    config = load_sweep_config(args.preset)
    if args.device:
        config = replace(config, device=args.device)
    run_sweep(
        config,
        Path(args.out),
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
        report=not args.no_report,
        bases=args.bases.split(",") if args.bases else None,
    )
