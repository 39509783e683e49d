"""A sweep as a plan: the phases it runs, in order, over its run specs.

    1. learning-rate grid   each arm at the rates of `lr_grid`, scored on the
                            validation split, extended past an edge
                            (`benchmarks.sweeps.lr_grid`, its rule in
                            `benchmarks.sweeps.lr_rule`); only with `lr_grid`
    1b. calibration         with `target_l0`: each arm whose L0 is set by a
                            penalty gets its rate chosen at matched L0 and its
                            coefficient for every target
                            (`benchmarks.sweeps.calibration`)
    2. retire               records of rerun arms at rates no longer chosen move
                            to `records/superseded/`; only when rerunning arms
    3. main runs            every arm at its chosen rate, every sparsity, size
                            and seed (`benchmarks.sweeps.runs.main_runs`),
                            trained and evaluated; each point's stability as
                            soon as its seeds are done
    4. stability            seed-to-seed stability of each point with its chance
                            baseline (`benchmarks.sweeps.stability_phase`),
                            after retraining the recorded seeds' SAEs this
                            machine lacks (`benchmarks.sweeps.restore`)
    5. report               the sweep's report and learning curves
                            (`benchmarks.reports`); optional

Phases hand each other nothing but the sweep folder: each reads what earlier
ones wrote (`lr_choice.json`, records), so any phase can be rerun alone, and
rerunning the plan resumes it (a run with a record is skipped). Every phase that
trains runs its runs through one `SweepExecutor`.
"""

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.records.layout import read_lr_choice
from benchmarks.sweeps.calibration import calibrated_arms, run_calibration
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.executor import SweepExecutor
from benchmarks.sweeps.lr_grid import (
    grid_labels,
    retire_unchosen_records,
    run_lr_grid,
)
from benchmarks.sweeps.runs import RunSpec, main_runs
from benchmarks.sweeps.stability_phase import (
    runs_to_restore,
    write_stability_records,
)


@dataclass(frozen=True)
class Phase:
    """One step of a sweep's plan.

    Args:
        name: What the step does, as the log names it.
        run: Carries the step out, training through the executor it is given.
    """

    name: str
    run: Callable[[SweepExecutor], None]


def sweep_plan(
    config: SweepConfig,
    out_dir: Path,
    report: bool = True,
    labels: Iterable[str] | None = None,
) -> list[Phase]:
    """The phases of `config`'s sweep into `out_dir` (module docstring). With
    `labels`, only those arms are (re)run: their grid, the retirement of their
    records at rates no longer chosen, their main runs; stability covers the
    whole folder."""
    out_dir = Path(out_dir)
    arms = None if labels is None else list(labels)

    def wanted(runs: list[RunSpec]) -> list[RunSpec]:
        return runs if arms is None else [r for r in runs if r.label in set(arms)]

    def grid(executor: SweepExecutor) -> None:
        searched = grid_labels(config)
        chosen = run_lr_grid(
            config,
            out_dir,
            lambda runs: executor.execute(config, out_dir, runs, grid=True),
            searched if arms is None else [a for a in arms if a in searched],
        )
        print(f"Chosen learning rates: {chosen}", file=sys.stderr, flush=True)

    def calibrate(executor: SweepExecutor) -> None:
        calibration = run_calibration(
            config,
            out_dir,
            lambda runs: executor.execute(config, out_dir, runs, grid=True),
            arms,
        )
        for label, arm in calibration.items():
            print(
                f"{label}: lr {arm.lr:g}, "
                + ", ".join(
                    f"L0 {p.target_l0:g} -> {p.coefficient if p.coefficient else p.why}"
                    for p in arm.points
                ),
                file=sys.stderr,
                flush=True,
            )

    def retire(_executor: SweepExecutor) -> None:
        choice = read_lr_choice(out_dir)
        chosen = choice["chosen"] if choice else {}
        moved = retire_unchosen_records(out_dir, chosen, arms or [])
        print(f"{moved} records at rates no longer chosen moved to records/superseded/")

    def main(executor: SweepExecutor) -> None:
        # A point's stability is written as soon as its seeds are done, while its
        # SAEs are on this machine: a sweep cut off at the end of a session then
        # leaves few SAEs to retrain on the next machine.
        executor.execute(
            config,
            out_dir,
            wanted(main_runs(config, out_dir)),
            after_each=lambda _run: write_stability_records(config, out_dir),
        )

    def stability(executor: SweepExecutor) -> None:
        executor.restore(config, out_dir, runs_to_restore(config, out_dir))
        write_stability_records(config, out_dir)

    def render(_executor: SweepExecutor) -> None:
        from benchmarks.reports.curves import render_curves
        from benchmarks.reports.report import render_report

        render_report(out_dir)
        if config.eval_at_steps:
            render_curves(out_dir)

    phases = []
    if config.lr_grid and grid_labels(config):
        phases.append(Phase("learning-rate grid", grid))
    if calibrated_arms(config):
        phases.append(Phase("calibration to target L0", calibrate))
    if arms is not None:
        phases.append(Phase("retire records at rates no longer chosen", retire))
    phases += [Phase("main runs", main), Phase("stability", stability)]
    if report:
        phases.append(Phase("report", render))
    return phases


def run_plan(phases: list[Phase], executor: SweepExecutor) -> None:
    """Each phase in order, through `executor`."""
    for i, phase in enumerate(phases, 1):
        print(f"Phase {i}/{len(phases)}: {phase.name}", file=sys.stderr, flush=True)
        phase.run(executor)
