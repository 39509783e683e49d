"""Run a benchmark sweep: shared activations, one SAE per run, one record per run.

    python -m benchmarks sweep --preset cpu --out results/cpu
    python -m benchmarks sweep --preset my_sweep.yaml --out DIR --executor ray

Layout of DIR:
    sweep.json                the config (a rerun with a different config refuses,
                              unless it only adds arms: `check_out_dir`)
    saes/<run_id>/            each SAE, a SAELens folder (renamed into place whole)
    records/<run_id>.json     its evaluation record (benchmarks.records), atomic
    records/stability-<point_id>.json   seed-to-seed stability of each point
    logs/runs.jsonl           one line per run start / train / finish
    report/                   benchmarks.report's markdown and plots

Resuming is rerunning: a run whose record exists is skipped; a run whose SAE folder
exists but has no record is evaluated without training again. A killed sweep loses
at most the run in progress.

The data every SAE sees is made once per sweep, before any run: LM activations go
to SAELens' activation cache on disk (shared by every worker, on one machine or
through a shared filesystem with Ray); the synthetic model is built from its seeded
config.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmarks.config import SweepConfig, SweepError, load_sweep_config
from benchmarks.config_checks import check_device
from benchmarks.executors import EXECUTORS, backend_for, run_local, run_ray
from benchmarks.lr_grid import main_runs, run_lr_grid
from benchmarks.records import SWEEP_FILENAME, load_records, write_json_atomic
from benchmarks.runs import RunSpec
from benchmarks.sweep_folder import check_out_dir
from benchmarks.sweep_records import is_valid_record, run_record_path
from benchmarks.sweep_stability import write_stability_records

# Names other modules and tests reach through `benchmarks.sweep`.
__all__ = [
    "SweepError",
    "check_out_dir",
    "run_sweep",
    "write_stability_records",
]


def run_sweep(
    config: SweepConfig,
    out_dir: Path,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    report: bool = True,
    bases: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Run every missing run of `config` into `out_dir`, then stability and the
    report. Returns the run records. `bases` runs only those base architectures'
    arms (`SweepConfig.restricted_to`); the folder stays the whole sweep's."""
    out_dir = Path(out_dir)
    if executor not in EXECUTORS:
        raise SweepError(f"--executor {executor!r}: choose one of {list(EXECUTORS)}.")
    if workers < 1:
        raise SweepError(f"--workers {workers}: must be at least 1.")
    check_device(config.device)
    # Checked before the folder is touched; the folder keeps the whole sweep.
    part = config.restricted_to(bases) if bases else config
    check_out_dir(config, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / SWEEP_FILENAME, config.to_dict())
    config = part
    if config.lr_grid:
        # Scored on the validation split; an arm at its grid's edge is extended.
        chosen = run_lr_grid(
            config,
            out_dir,
            lambda runs: _execute(
                config, out_dir, runs, executor, workers, ray_address, grid=True
            ),
        )
        print(f"Chosen learning rates: {chosen}", file=sys.stderr, flush=True)
    _execute(
        config, out_dir, main_runs(config, out_dir), executor, workers, ray_address
    )
    write_stability_records(config, out_dir)
    if report:
        from benchmarks.report import render_report

        render_report(out_dir)
        if config.eval_at_steps:
            from benchmarks.curves import render_curves

            render_curves(out_dir)
    return load_records(out_dir)[0]


def _execute(
    config: SweepConfig,
    out_dir: Path,
    runs: list[RunSpec],
    executor: str,
    workers: int,
    ray_address: str | None,
    grid: bool = False,
) -> None:
    todo = [r for r in runs if not is_valid_record(run_record_path(out_dir, r, grid))]
    what = "learning-rate grid" if grid else "runs"
    print(
        f"Sweep {config.name!r}, {what}: {len(runs)} runs, {len(runs) - len(todo)} "
        f"already done, {len(todo)} to run -> {out_dir}",
        file=sys.stderr,
        flush=True,
    )
    if not todo:
        return
    # The shared data is made here, once, before any worker starts.
    backend_for(config, out_dir).prepare()
    # Runs already done count toward the bar, not toward its rate and ETA.
    with tqdm(
        total=len(runs),
        initial=len(runs) - len(todo),
        desc=what,
        unit="run",
        file=sys.stderr,
    ) as bar:

        def progress(run: RunSpec, status: str) -> None:
            bar.set_postfix_str(f"{run.run_id}: {status}", refresh=False)
            bar.update()

        if executor == "ray":
            run_ray(config, out_dir, todo, progress, address=ray_address, grid=grid)
        else:
            run_local(config, out_dir, todo, progress, workers=workers, grid=grid)


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
