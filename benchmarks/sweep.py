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
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmarks.backend import Backend, RunResult
from benchmarks.config import SweepConfig, check_device, load_sweep_config
from benchmarks.lr_grid import (  # noqa: F401  (re-exported: the lr pass moved)
    choose_learning_rates,
    main_runs,
    middle_sparsity_first,
    point_runs,
    run_lr_grid,
)
from benchmarks.records import (
    EVAL_TYPE_ID,
    SWEEP_FILENAME,
    checkpoint_record_path,
    grid_record_path,
    load_records,
    log_event,
    read_record,
    record_path,
    stability_path,
    write_json_atomic,
)
from benchmarks.runs import RunSpec, initial_sae
from saelens_aligned.errors import InputError
from saelens_aligned.pipeline.training import CHECKPOINTS_DIRNAME

EXECUTORS = ("local", "ray")


class SweepError(InputError):
    """The sweep cannot start; the message names the field and the fix."""


def make_backend(config: SweepConfig, out_dir: Path) -> Backend:
    if config.kind == "synthetic":
        from benchmarks.synthetic_backend import SyntheticBackend

        return SyntheticBackend(config, out_dir)
    from benchmarks.lm_backend import LMBackend

    return LMBackend(config, out_dir)


# --------------------------------------------------------------------------- #
# One run
# --------------------------------------------------------------------------- #


def has_valid_record(out_dir: Path, run_id: str) -> bool:
    return is_valid_record(record_path(out_dir, run_id))


def is_valid_record(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        read_record(path)
    except ValueError:
        return False
    return True


def is_complete_sae_dir(path: Path) -> bool:
    return (path / "cfg.json").exists() and (path / "sae_weights.safetensors").exists()


def build_record(
    sweep: dict[str, Any], run: RunSpec, result: RunResult, seconds: float
) -> dict[str, Any]:
    """The run's record in SAEBench's result layout (see benchmarks.records)."""
    from sae_lens.registry import get_sae_training_class

    from saelens_aligned.architectures import aligned_architectures, base_architecture

    config_class = get_sae_training_class(run.architecture)[1]
    base = (
        base_architecture(config_class)
        if run.architecture in aligned_architectures()
        else run.architecture
    )
    try:
        from sae_bench.sae_bench_utils import (
            get_sae_bench_version,
            get_sae_lens_version,
        )

        sae_bench_version, sae_lens_version = (
            get_sae_bench_version(),
            get_sae_lens_version(),
        )
    except Exception:  # version lookup is informative only
        sae_bench_version, sae_lens_version = "unknown", "unknown"
    sweep = {k: v for k, v in sweep.items() if k != "architectures"}
    metrics = dict(result.metrics)
    metrics.setdefault("training", {})["seconds"] = round(seconds, 2)
    return {
        "eval_type_id": EVAL_TYPE_ID,
        "eval_config": {
            "run": {
                **{k: v for k, v in asdict(run).items() if k != "sae_kwargs"},
                "sae_kwargs": dict(run.sae_kwargs),
                "base_architecture": base,
                "point_id": run.point_id,
                "run_id": run.run_id,
            },
            "sweep": sweep,
        },
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": metrics,
        "eval_result_details": [],
        "eval_result_unstructured": result.unstructured,
        "sae_bench_commit_hash": sae_bench_version,
        "sae_lens_id": run.run_id,
        "sae_lens_release_id": f"saelens-aligned-sweep-{sweep['name']}",
        "sae_lens_version": sae_lens_version,
        "sae_cfg_dict": result.sae_cfg_dict,
    }


_BACKENDS: dict[str, Backend] = {}


def _backend_for(config: SweepConfig, out_dir: Path) -> Backend:
    """One backend per process and sweep: a worker loads the model once."""
    key = f"{out_dir}:{json.dumps(config.to_dict(), sort_keys=True)}"
    if key not in _BACKENDS:
        _BACKENDS[key] = make_backend(config, out_dir)
    return _BACKENDS[key]


def run_record_path(out_dir: Path, run: RunSpec, grid: bool) -> Path:
    return (
        grid_record_path(out_dir, run.run_id)
        if grid
        else record_path(out_dir, run.run_id)
    )


def execute_run(
    config: SweepConfig, out_dir: Path, run: RunSpec, grid: bool = False
) -> str:
    """Train (unless its SAE is already saved) and evaluate one run, then write its
    record: a main run's with the sweep's evaluation, a learning-rate grid run's
    with the grid's (`SweepConfig.grid_eval`) into `records/lr_grid/`. Returns
    "skipped", "evaluated" or "trained"."""
    out_dir = Path(out_dir)
    path = run_record_path(out_dir, run, grid)
    if is_valid_record(path):
        return "skipped"
    backend = _backend_for(config, out_dir)
    settings = config.grid_eval() if grid else config.eval
    sae_dir = out_dir / "saes" / run.run_id
    start = time.monotonic()
    status = "evaluated"
    log_event(out_dir, run.run_id, "start")
    if not is_complete_sae_dir(sae_dir):
        backend.train(run, sae_dir)
        status = "trained"
        log_event(out_dir, run.run_id, "trained")
    train_seconds = time.monotonic() - start
    # Checkpoints first: the run's own record marks the whole run as done.
    for step, checkpoint in checkpoints_to_evaluate(config, sae_dir).items():
        checkpoint_path = checkpoint_record_path(out_dir, run.run_id, step)
        if grid or is_valid_record(checkpoint_path):
            continue
        result = backend.evaluate(run, checkpoint, settings)
        record = build_record(config.to_dict(), run, result, train_seconds)
        record["eval_config"]["run"]["step"] = step
        write_json_atomic(checkpoint_path, record)
    result = backend.evaluate(run, sae_dir, settings)
    record = build_record(config.to_dict(), run, result, train_seconds)
    record["eval_config"]["run"]["step"] = config.training_steps
    write_json_atomic(path, record)
    log_event(out_dir, run.run_id, "finished", seconds=time.monotonic() - start)
    return status


def checkpoints_to_evaluate(config: SweepConfig, sae_dir: Path) -> dict[int, Path]:
    """step -> checkpoint folder for each of `config.eval_at_steps`: the first
    checkpoint SAELens saved at or after that step (it names checkpoints by the
    samples seen, one step after each threshold)."""
    folder = sae_dir / CHECKPOINTS_DIRNAME
    if not config.eval_at_steps or not folder.is_dir():
        return {}
    batch = config.train_batch_size_tokens
    saved = sorted(
        (int(p.name) // batch, p)
        for p in folder.iterdir()
        if p.name.isdigit() and is_complete_sae_dir(p)
    )
    chosen = {}
    for step in config.eval_at_steps:
        later = [(s, p) for s, p in saved if s >= step]
        if later:
            chosen[later[0][0]] = later[0][1]
    return chosen


# --------------------------------------------------------------------------- #
# Executors: where runs execute
# --------------------------------------------------------------------------- #

Progress = Callable[[RunSpec, str], None]


def run_local(
    config: SweepConfig,
    out_dir: Path,
    runs: list[RunSpec],
    progress: Progress,
    workers: int = 1,
    grid: bool = False,
) -> None:
    """In this process, one run after another; or `workers` processes (each loads
    the model once) where memory allows."""
    if workers <= 1:
        for run in runs:
            progress(run, execute_run(config, out_dir, run, grid))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(execute_run, config, out_dir, run, grid): run for run in runs
        }
        for future in as_completed(futures):
            progress(futures[future], future.result())


def run_ray(
    config: SweepConfig,
    out_dir: Path,
    runs: list[RunSpec],
    progress: Progress,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    grid: bool = False,
) -> None:
    """Each run a Ray task (`ray.init(address=...)`; None starts a local Ray).
    Workers read the shared data from `out_dir` and the activation cache, so both
    must be on a filesystem every node sees."""
    try:
        import ray
    except ImportError as e:
        raise SweepError(
            "--executor ray needs Ray: pip install 'saelens-aligned[ray]'."
        ) from e
    started_here = not ray.is_initialized()
    if started_here:
        # A local instance (address None) gets one CPU per core of this machine.
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=cpus_per_run)(execute_run)
        pending = {remote.remote(config, str(out_dir), run, grid): run for run in runs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                progress(pending.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


# --------------------------------------------------------------------------- #
# The sweep
# --------------------------------------------------------------------------- #


def check_out_dir(config: SweepConfig, out_dir: Path) -> None:
    """Refuse an output folder that holds another sweep or other files. Eval
    settings the folder's sweep did not have yet are not compared. A config
    that keeps every setting and every arm of the folder's sweep and adds arms
    extends it: runs are named by arm label, so the records already there stay
    valid and only the new arms train (gated added to a finished sweep, say)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SweepError(f"--out {str(out_dir)!r} is a file; choose a folder.")
    snapshot = out_dir / SWEEP_FILENAME
    if snapshot.exists():
        previous = json.loads(snapshot.read_text())
        current = json.loads(json.dumps(config.to_dict()))
        # A setting added after the folder's sweep ran, left at its default,
        # changes nothing the folder holds.
        current = _without_new_defaults(current, previous, SweepConfig)
        if isinstance(current.get("eval"), dict):
            # An eval added after the folder's sweep ran applies to runs evaluated
            # from then on; each record's skipped_evals says which evals it lacks.
            before = previous.get("eval") or {}
            current["eval"] = {k: v for k, v in current["eval"].items() if k in before}
        if previous != current and not only_adds_arms(previous, current):
            raise SweepError(
                f"--out {str(out_dir)!r} holds a sweep with a different config "
                f"({snapshot}). Choose another --out, or delete that folder to start "
                "over; rerunning the same config there resumes it, and a config "
                "that only appends entries to `architectures` extends it."
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise SweepError(
            f"--out {str(out_dir)!r} exists and holds files that are not a sweep; "
            "choose an empty or new folder."
        )


def _without_new_defaults(
    current: dict[str, Any], previous: dict[str, Any], settings: type
) -> dict[str, Any]:
    """`current` less the fields of `settings` that `previous` lacks and that sit at
    their default (evals added since the folder's sweep ran, left off)."""
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(settings)
        if f.default is not dataclasses.MISSING
    }
    return {
        k: v
        for k, v in current.items()
        if k in previous or k not in defaults or v != defaults[k]
    }


def only_adds_arms(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether config `current` is `previous` with entries appended to
    `architectures` and nothing else changed (both as written to sweep.json)."""
    old_arms = previous.get("architectures", [])
    new_arms = current.get("architectures", [])
    rest_equal = {k: v for k, v in previous.items() if k != "architectures"} == {
        k: v for k, v in current.items() if k != "architectures"
    }
    return rest_equal and new_arms[: len(old_arms)] == old_arms


# Seeds of the two untrained SAEs behind every stability record's chance baseline,
# far from any sweep's own seeds.
CHANCE_SEEDS = (10_000, 10_001)


def alive_latents(record: dict[str, Any]) -> np.ndarray | None:
    """Latents that fired in the record's longest evaluation window. [d_sae]"""
    unstructured = record.get("eval_result_unstructured", {})
    density = unstructured.get("feature_density_long") or unstructured.get(
        "feature_density"
    )
    return None if density is None else np.asarray(density) > 0


def chance_weights(run: RunSpec, d_in: int, training_steps: int) -> Any:
    """(W_enc, W_dec) of two independently initialised, untrained SAEs of the
    run's arm and shape: what two seeds share before any training."""
    pair = []
    for seed in CHANCE_SEEDS:
        sae = initial_sae(replace(run, seed=seed), d_in, training_steps)
        pair.append(
            (sae.W_enc.detach().float().numpy(), sae.W_dec.detach().float().numpy())
        )
    return tuple(pair)


def untrained_ground_truth(
    config: SweepConfig, out_dir: Path, run: RunSpec, d_in: int
) -> dict[str, Any]:
    """Ground-truth metrics (MCC, F1, ...) of an untrained SAE of the run's arm:
    what a synthetic sweep's numbers are measured against."""
    import tempfile

    sae = initial_sae(replace(run, seed=CHANCE_SEEDS[0]), d_in, config.training_steps)
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_inference_model(tmp)
        result = _backend_for(config, out_dir).evaluate(
            run, Path(tmp), replace(config.grid_eval(), split="eval")
        )
    return result.metrics.get("ground_truth", {})


def write_stability_records(config: SweepConfig, out_dir: Path) -> int:
    """Stability of every point whose seeds (>= 2) are all done; returns how
    many records were written (existing ones are kept)."""
    from benchmarks.records import run_info
    from benchmarks.stability import point_stability

    written = 0
    for point_id, runs in point_runs(main_runs(config, out_dir)).items():
        if len(runs) < 2 or stability_path(out_dir, point_id).exists():
            continue
        if not all(has_valid_record(out_dir, r.run_id) for r in runs):
            continue
        run_records = [read_record(record_path(out_dir, r.run_id)) for r in runs]
        members = [
            (run_info(record), out_dir / "saes" / r.run_id, alive_latents(record))
            for r, record in zip(runs, run_records)
        ]
        if not all(is_complete_sae_dir(d) for _, d, _ in members):
            continue  # SAEs not kept here (e.g. records copied elsewhere)
        d_in = int(run_records[0]["sae_cfg_dict"]["d_in"])
        chance = chance_weights(runs[0], d_in, config.training_steps)
        record = point_stability(members, config.stability_threshold, chance=chance)
        if config.kind == "synthetic":
            record["eval_result_metrics"]["chance_ground_truth"] = (
                untrained_ground_truth(config, out_dir, runs[0], d_in)
            )
        write_json_atomic(stability_path(out_dir, point_id), record)
        written += 1
    return written


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
    _backend_for(config, out_dir).prepare()
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
