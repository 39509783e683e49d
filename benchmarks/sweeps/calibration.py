"""The calibration phase of a sweep with `target_l0`: every arm whose L0 is set by
a penalty gets, separately, its learning rate chosen at matched L0 and its
coefficient found for each target L0, from one-seed trial runs scored on the
validation split. Main runs then train each such arm at its calibrated
coefficients, so every arm's curve passes through the same L0 values as the TopK
points (`k`), and every base gets points at matched L0.

1. **Rate at matched L0.** At each rate of the grid the arm's coefficient is
   searched for the middle target (`benchmarks.sweeps.l0_search`); the rate's
   score is `lr_metric` interpolated at that L0. The best score wins
   (`lr_rule.best_learning_rate`); a best rate at the grid's edge extends the
   grid (`lr_rule.next_rate`). Scoring at one coefficient instead rewarded a rate
   that leaves the SAE denser (on `synthetic_cpu`, gated's rate moved to 1e-4 and
   got worse at matched L0).
2. **Coefficients at the chosen rate**: the search for every target, using
   every trial at that rate.

Trials are grid runs (`records/lr_grid/`, seed `seeds[0]`, `d_sae[0]`,
`SweepConfig.grid_eval`). The search is a function of the records, so a rerun
replays it and trains only what is missing; searches of different arms, rates
and targets advance together, one batch of runs per round, so workers stay busy.
`calibration.json` records, per arm, the rate scores, the chosen rate and each
target's coefficient (or the L0 reached and why not); `lr_choice.json` gets the
arm's rate as the grid phase writes it. The trial at a target's coefficient is
seed 0's main run there (same run id), so its weights are reused.
"""

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.records.calibration import (
    ArmCalibration,
    CalibratedPoint,
    read_calibration,
    write_calibration,
)
from benchmarks.records.layout import flat_metrics, grid_record_path, read_record
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.l0_search import (
    SearchState,
    Trial,
    nearest,
    score_at_l0,
    search_step,
)
from benchmarks.sweeps.lr_grid import (
    ArmGrid,
    record_split,
    retire_other_split_grid_records,
    write_lr_choice,
)
from benchmarks.sweeps.lr_rule import (
    best_learning_rate,
    next_rate,
)
from benchmarks.sweeps.runs import (
    RunSpec,
    arm_forms,
    arm_labels,
    make_run,
    middle_value,
)


@dataclass(frozen=True)
class CalibratedArm:
    """An arm the phase calibrates: how to make its trial runs.

    Args:
        label: The arm.
        make: Builds the arm's trial run at (coefficient, rate).
        start: The first coefficient tried (the arm's middle sparsity value).
        rates: The rates tried first (the arm's own `lr`, else `lr_grid`).
        own_rate: Whether the rate is the arm's own (no rate search).
    """

    label: str
    make: Callable[[float, float], RunSpec]
    start: float
    rates: list[float]
    own_rate: bool


def calibrated_arms(config: SweepConfig) -> list[CalibratedArm]:
    """The arms the phase calibrates (`SweepConfig.calibrates`)."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    arms = []
    for arm, labels in zip(config.architectures, arm_labels(config)):
        if not config.calibrates(arm):
            continue
        for form, label in zip(arm_forms(arm, aligned), labels):

            def make(coef: float, lr: float, arm=arm, form=form, label=label):
                return make_run(
                    arm, form, label, coef, config.d_sae[0], config.seeds[0], lr
                )

            rates = [arm.lr] if arm.lr is not None else sorted(config.lr_grid)
            arms.append(
                CalibratedArm(
                    label,
                    make,
                    middle_value(arm.sparsity_values),
                    rates or [config.lr],
                    arm.lr is not None or not config.lr_grid,
                )
            )
    return arms


def middle_target(config: SweepConfig) -> float:
    return middle_value(config.target_l0)


class _Trials:
    """Every trial of the folder's grid records on `lr_split` at seed `seeds[0]`
    and `d_sae[0]`, by (arm, rate): the search is a function of them, so a rerun
    replays it. Each record is read once per process."""

    def __init__(self, config: SweepConfig, out_dir: Path) -> None:
        self.config, self.out_dir = config, out_dir
        self.seen: dict[Path, tuple[tuple[str, float], Trial] | None] = {}

    def of(self, label: str, lr: float) -> list[Trial]:
        folder = grid_record_path(self.out_dir, "x").parent
        for path in sorted(folder.glob("*.json")):
            if path not in self.seen:
                self.seen[path] = self._read(path)
        return sorted(
            (
                entry[1]
                for entry in self.seen.values()
                if entry is not None
                and entry[0][0] == label
                and math.isclose(entry[0][1], lr)
            ),
            key=lambda t: t.coefficient,
        )

    def _read(self, path: Path) -> tuple[tuple[str, float], Trial] | None:
        record = read_record(path)
        run = record["eval_config"]["run"]
        if (
            record_split(record) != self.config.lr_split
            or run["seed"] != self.config.seeds[0]
            or run["d_sae"] != self.config.d_sae[0]
        ):
            return None
        metrics = flat_metrics(record)
        trial = Trial(
            run["sparsity_value"], metrics["l0"], metrics[self.config.lr_metric]
        )
        return (run["label"], float(run["lr"])), trial


class _Searches:
    """The searches of the phase over the folder's trials."""

    def __init__(self, config: SweepConfig, out_dir: Path) -> None:
        self.config, self.out_dir = config, out_dir
        self.recorded = _Trials(config, out_dir)

    def trials(self, arm: CalibratedArm, lr: float) -> list[Trial]:
        return self.recorded.of(arm.label, lr)

    def step(self, arm: CalibratedArm, lr: float, target: float) -> SearchState:
        return search_step(
            self.trials(arm, lr),
            target,
            self.config.l0_tolerance,
            arm.start,
            self.config.calibration_max_trials,
        )


def search_round(
    searches: _Searches,
    wanted: list[tuple[CalibratedArm, float, float]],
    execute: Callable[[list[RunSpec]], None],
) -> dict[tuple[str, float, float], SearchState]:
    """Advance every (arm, rate, target) search of `wanted` to its end, one batch
    of trial runs per round; returns each one's final state."""
    while True:
        states = {(a.label, lr, t): searches.step(a, lr, t) for a, lr, t in wanted}
        runs: dict[str, RunSpec] = {}
        for arm, lr, target in wanted:
            state = states[(arm.label, lr, target)]
            if not state.done and state.next_coefficient is not None:
                run = arm.make(state.next_coefficient, lr)
                runs[run.run_id] = run
        if not runs:
            return states
        todo = list(runs.values())
        # A trial scored on another split is scored again, as the grid does.
        retire_other_split_grid_records(searches.config, searches.out_dir, todo)
        print(f"Calibration: {len(todo)} trial runs", file=sys.stderr, flush=True)
        execute(todo)
        missing = [
            r.run_id
            for r in todo
            if not grid_record_path(searches.out_dir, r.run_id).exists()
        ]
        if missing:
            raise RuntimeError(f"calibration trials left no record: {missing}")


def choose_rates(
    config: SweepConfig,
    arms: list[CalibratedArm],
    searches: _Searches,
    execute: Callable[[list[RunSpec]], None],
) -> dict[str, dict[float, float]]:
    """Step 1 of the phase: each arm's rates scored at the middle target L0,
    the grid extended past an edge (`lr_rule.next_rate`). Label -> rate -> score."""
    middle = middle_target(config)
    rates = {arm.label: list(arm.rates) for arm in arms}
    scores: dict[str, dict[float, float]] = {}
    pending = list(arms)
    while pending:
        search_round(
            searches,
            [(a, lr, middle) for a in pending for lr in rates[a.label]],
            execute,
        )
        extended = []
        for arm in pending:
            scores[arm.label] = {
                lr: score_at_l0(searches.trials(arm, lr), middle, config.l0_tolerance)
                for lr in rates[arm.label]
            }
            if arm.own_rate:
                continue
            chosen = best_learning_rate(scores[arm.label])
            step = next_rate(config, rates[arm.label], chosen)
            if step is not None:
                rates[arm.label] = sorted([*rates[arm.label], step])
                extended.append(arm)
                print(
                    f"{arm.label}: best rate {chosen:g} at L0 {middle:g} is its "
                    f"grid's edge; trying {step:g}",
                    file=sys.stderr,
                    flush=True,
                )
        pending = extended
    return scores


def run_calibration(
    config: SweepConfig,
    out_dir: Path,
    execute: Callable[[list[RunSpec]], None],
    labels: Iterable[str] | None = None,
) -> dict[str, ArmCalibration]:
    """The phase (module docstring) for every calibrated arm (of `labels`, when
    given): `execute` runs grid runs, skipping those with a record. Returns and
    writes each arm's calibration."""
    out_dir = Path(out_dir)
    arms = calibrated_arms(config)
    if labels is not None:
        arms = [arm for arm in arms if arm.label in set(labels)]
    searches = _Searches(config, out_dir)
    # Rates chosen by an earlier run stand: scores read off later trials at
    # the chosen rate (step 2) would differ, and the choice must not move.
    stored = read_calibration(out_dir)
    scores = {
        a.label: stored[a.label].rate_scores
        for a in arms
        if a.label in stored and set(a.rates) <= set(stored[a.label].rate_scores)
    }
    scores.update(
        choose_rates(
            config, [a for a in arms if a.label not in scores], searches, execute
        )
    )
    grids = {
        a.label: ArmGrid(scores[a.label], {}, False, config.lr_split) for a in arms
    }
    write_calibration(
        out_dir,
        {
            a.label: ArmCalibration(a.label, grids[a.label].chosen, scores[a.label])
            for a in arms
            if a.label not in stored
        },
    )
    chosen = {label: grid.chosen for label, grid in grids.items()}
    # 2: every target at the chosen rate
    states = search_round(
        searches,
        [(a, chosen[a.label], t) for a in arms for t in sorted(config.target_l0)],
        execute,
    )
    calibration = {}
    for arm in arms:
        lr = chosen[arm.label]
        points = []
        for target in sorted(config.target_l0):
            state = states[(arm.label, lr, target)]
            trials = searches.trials(arm, lr)
            closest = state.found or (nearest(trials, target) if trials else None)
            points.append(
                CalibratedPoint(
                    target_l0=target,
                    coefficient=state.found.coefficient if state.found else None,
                    l0=closest.l0 if closest else math.nan,
                    trials=len(trials),
                    why=state.why,
                )
            )
        calibration[arm.label] = ArmCalibration(
            arm.label, lr, scores[arm.label], points
        )
    write_calibration(out_dir, calibration)
    grid_arms = {a.label: grids[a.label] for a in arms if not a.own_rate}
    if grid_arms:
        write_lr_choice(config, out_dir, grid_arms)
    return calibration
