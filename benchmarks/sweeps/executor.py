"""Where a sweep's runs execute: `SweepExecutor.execute` takes a list of runs,
skips those already recorded, makes the shared data once and runs the rest (one
run: `execute_run`, train unless its SAE is saved, evaluate, write its record) in
this process, in local worker processes, or as Ray tasks. Each process keeps one
backend per sweep, so a worker loads the model once. Every phase of a sweep's
plan (`benchmarks.sweeps.plan`) runs its runs through one executor."""

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from sae_lens.constants import (
    ACTIVATIONS_STORE_STATE_FILENAME,
    TRAINER_STATE_FILENAME,
)
from tqdm.auto import tqdm

from benchmarks.records.layout import (
    checkpoint_record_path,
    log_event,
    read_record,
    record_path,
    write_json_atomic,
)
from benchmarks.sweeps.backends.base import Backend
from benchmarks.sweeps.config import SweepConfig, SweepError
from benchmarks.sweeps.restore import (
    RETRAINED_FILENAME,
    compare_with_record,
    weights_sha256,
)
from benchmarks.sweeps.run_records import (
    build_record,
    is_complete_sae_dir,
    is_valid_record,
    run_record_path,
)
from benchmarks.sweeps.runs import RunSpec
from saelens_aligned.pipeline.training import CHECKPOINTS_DIRNAME

# Written by SAELens beside each checkpoint only so that training can resume.
RESUME_STATE_FILENAMES = (TRAINER_STATE_FILENAME, ACTIVATIONS_STORE_STATE_FILENAME)

EXECUTORS = ("local", "ray")


def make_backend(config: SweepConfig, out_dir: Path) -> Backend:
    if config.kind == "synthetic":
        from benchmarks.sweeps.backends.synthetic import SyntheticBackend

        return SyntheticBackend(config, out_dir)
    from benchmarks.sweeps.backends.lm import LMBackend

    return LMBackend(config, out_dir)


LOADED_BACKENDS: dict[str, Backend] = {}


def backend_for(config: SweepConfig, out_dir: Path) -> Backend:
    """One backend per process and sweep: a worker loads the model once."""
    key = f"{out_dir}:{json.dumps(config.to_dict(), sort_keys=True)}"
    if key not in LOADED_BACKENDS:
        LOADED_BACKENDS[key] = make_backend(config, out_dir)
    return LOADED_BACKENDS[key]


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
    backend = backend_for(config, out_dir)
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
    else:
        train_seconds = earlier_training_seconds(out_dir, run)
    # Checkpoints first: the run's own record marks the whole run as done.
    for step, checkpoint in checkpoints_to_evaluate(config, sae_dir).items():
        checkpoint_path = checkpoint_record_path(out_dir, run.run_id, step)
        if grid or is_valid_record(checkpoint_path):
            continue
        result = backend.evaluate(run, checkpoint, config.checkpoint_eval())
        record = build_record(config.to_dict(), run, result, train_seconds)
        record["eval_config"]["run"]["step"] = step
        write_json_atomic(checkpoint_path, record)
    result = backend.evaluate(run, sae_dir, settings)
    record = build_record(config.to_dict(), run, result, train_seconds)
    record["eval_config"]["run"]["step"] = config.training_steps
    # What a machine without this SAE checks a retrained one against
    # (`benchmarks.sweeps.restore`).
    record["eval_result_metrics"]["training"]["weights_sha256"] = weights_sha256(
        sae_dir
    )
    write_json_atomic(path, record)
    prune_unevaluated_checkpoints(config, sae_dir)
    log_event(out_dir, run.run_id, "finished", seconds=time.monotonic() - start)
    return status


def earlier_training_seconds(out_dir: Path, run: RunSpec) -> float:
    """How long the saved SAE of `run` took to train, from the record of the run
    that trained it (the learning-rate grid's, whose SAE a main run at the
    chosen rate reuses); NaN when no record says (not 0: nothing was timed)."""
    for grid in (True, False):
        path = run_record_path(out_dir, run, grid)
        if path.exists():
            training = json.loads(path.read_text())["eval_result_metrics"]["training"]
            if training.get("seconds"):
                return float(training["seconds"])
    return math.nan


def prune_unevaluated_checkpoints(config: SweepConfig, sae_dir: Path) -> list[Path]:
    """Delete what no record of a finished run reads: SAELens saves a checkpoint
    every `checkpoint_every_steps` with the state to resume from (optimizer
    moments as large as the SAE, the activation store's position), and a long
    run of a large dictionary would otherwise fill the disk (scale_long: 63 per
    run; 32x: 0.7 GB per run). The evaluated checkpoints stay beside the SAE as
    weights and config only: the run is over, so nothing resumes from them.
    Returns what was deleted."""
    import shutil

    folder = sae_dir / CHECKPOINTS_DIRNAME
    if not folder.is_dir():
        return []
    kept = set(checkpoints_to_evaluate(config, sae_dir).values())
    deleted = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path not in kept:
            shutil.rmtree(path)
            deleted.append(path)
    for path in sorted(kept):
        for name in RESUME_STATE_FILENAMES:
            if (path / name).exists():
                (path / name).unlink()
                deleted.append(path / name)
    return deleted


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


Progress = Callable[[RunSpec, str], None]
Task = Callable[[SweepConfig, Path, RunSpec, bool], str]
"""What an executor does with one run: `execute_run`, or `restore_run`."""


def restore_run(config: SweepConfig, out_dir: Path, run: RunSpec, _grid: bool) -> str:
    """Retrain a recorded `run`'s SAE (no evaluation) unless this machine holds
    it, check it against the run's record (`benchmarks.sweeps.restore`) and keep
    the check beside it. Returns "kept", or "retrained: reproduced" /
    "retrained: differs" / "retrained: unchecked"."""
    from filelock import FileLock

    out_dir = Path(out_dir)
    sae_dir = out_dir / "saes" / run.run_id
    sae_dir.parent.mkdir(parents=True, exist_ok=True)
    # Two jobs restoring one folder (a sweep and a rerun of its stability) take
    # turns on each run: the second finds the SAE the first made.
    with FileLock(sae_dir.parent / f".{run.run_id}.lock"):
        if is_complete_sae_dir(sae_dir):
            return "kept"
        log_event(out_dir, run.run_id, "retrain_start")
        backend_for(config, out_dir).train(run, sae_dir)
        prune_unevaluated_checkpoints(config, sae_dir)
        record = read_record(record_path(out_dir, run.run_id))
        check = compare_with_record(record, sae_dir)
        (sae_dir / RETRAINED_FILENAME).write_text(json.dumps(asdict(check), indent=1))
    outcome = {True: "reproduced", False: "differs", None: "unchecked"}
    log_event(
        out_dir, run.run_id, "retrained", reproduced=check.reproduced, by=check.checked
    )
    return f"retrained: {outcome[check.reproduced]}"


def run_local(
    config: SweepConfig,
    out_dir: Path,
    runs: list[RunSpec],
    progress: Progress,
    workers: int = 1,
    grid: bool = False,
    task: Task = execute_run,
) -> None:
    """`task` on each run in this process, one run after another; or in
    `workers` processes (each loads the model once) where memory allows."""
    if workers <= 1:
        for run in runs:
            progress(run, task(config, out_dir, run, grid))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(task, config, out_dir, run, grid): run for run in runs}
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
    task: Task = execute_run,
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
        remote = ray.remote(num_cpus=cpus_per_run)(task)
        pending = {remote.remote(config, str(out_dir), run, grid): run for run in runs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                progress(pending.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


def pending_runs(
    out_dir: Path, runs: list[RunSpec], grid: bool = False
) -> list[RunSpec]:
    """The runs of `runs` without a valid record (of the grid's kind when
    `grid`): what resuming a sweep still has to do."""
    return [r for r in runs if not is_valid_record(run_record_path(out_dir, r, grid))]


@dataclass(frozen=True)
class SweepExecutor:
    """How a sweep's runs execute.

    Args:
        kind: `local` (this process, or `workers` processes) or `ray`.
        workers: Local worker processes (each loads the model).
        ray_address: Ray cluster address; None starts a local Ray.
    """

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise SweepError(
                f"--executor {self.kind!r}: choose one of {list(EXECUTORS)}."
            )
        if self.workers < 1:
            raise SweepError(f"--workers {self.workers}: must be at least 1.")

    def execute(
        self,
        config: SweepConfig,
        out_dir: Path,
        runs: list[RunSpec],
        grid: bool = False,
        after_each: Callable[[RunSpec], None] | None = None,
    ) -> None:
        """Every run of `runs` without a valid record (of the grid's kind when
        `grid`), with a progress bar on which runs already done count;
        `after_each` is called in this process as each run ends."""
        todo = pending_runs(out_dir, runs, grid)
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
                if after_each is not None:
                    after_each(run)

            self._dispatch(config, out_dir, todo, progress, grid, execute_run)

    def restore(self, config: SweepConfig, out_dir: Path, runs: list[RunSpec]) -> None:
        """Retrain the SAEs of recorded `runs` that this machine does not hold
        (`benchmarks.sweeps.restore`), each checked against its record."""
        if not runs:
            return
        print(
            f"Sweep {config.name!r}: retraining {len(runs)} recorded runs' SAEs "
            "that this machine lacks, for stability",
            file=sys.stderr,
            flush=True,
        )
        backend_for(config, out_dir).prepare()

        def progress(run: RunSpec, status: str) -> None:
            print(f"{run.run_id}: {status}", file=sys.stderr, flush=True)

        self._dispatch(config, out_dir, runs, progress, False, restore_run)

    def _dispatch(
        self,
        config: SweepConfig,
        out_dir: Path,
        runs: list[RunSpec],
        progress: Progress,
        grid: bool,
        task: Task,
    ) -> None:
        if self.kind == "ray":
            run_ray(
                config,
                out_dir,
                runs,
                progress,
                address=self.ray_address,
                grid=grid,
                task=task,
            )
        else:
            run_local(
                config,
                out_dir,
                runs,
                progress,
                workers=self.workers,
                grid=grid,
                task=task,
            )
