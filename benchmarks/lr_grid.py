"""The learning-rate pass of a sweep: each arm trained at the rates of `lr_grid`
(its middle sparsity, first seed, first d_sae), scored on the validation split,
its best rate chosen, and the multi-seed main runs at that rate.

**No rate at the grid's edge.** An arm whose best rate is the lowest (highest)
rate it was tried at gets the next rate below (above) on the grid's ladder (its
rates' leading digits repeated in every decade: 1e-3, 3e-3, 1e-2 continues down
as 3e-4, 1e-4, 3e-5, ...), trained and scored like the others, until its best is
interior or the next rate would pass `SweepConfig.lr_floor` / `lr_ceiling` (the
bound itself is tried last). `lr_choice.json` then says, per arm, which edge
remains at a bound (`edge`) and which data chose the rate (`split`).

**Chosen on data the reported metrics do not read.** Grid runs are scored on
`SweepConfig.lr_split` (`validation`: `benchmarks.validation_split`). The main
run of seed 0 at the chosen rate trains exactly as the grid run did (same run
id, same SAE folder), so its weights are reused; its record is evaluated again on
the eval data. Grid records scored on another split (sweeps written before the
validation split) are moved to `records/superseded/lr_grid/` and the grid SAE
scored again (trained again when its folder is gone).

    python -m benchmarks.lr_grid --preset synthetic_cpu \
        --out benchmarks/results/synthetic_cpu --arms 'aligned[tied],aligned_gated[tied]'

reruns the named arms of a sweep folder this way (grid, choice, main runs,
stability); their records at rates no longer chosen move to `records/superseded/`.
"""

import argparse
import math
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.config import SweepConfig, load_sweep_config
from benchmarks.records import (
    LR_CHOICE_FILENAME,
    RECORDS_DIRNAME,
    flat_metrics,
    grid_record_path,
    read_lr_choice,
    read_record,
    write_json_atomic,
)
from benchmarks.runs import RunSpec, _forms, _run, arm_labels, expand_runs, middle_value

SUPERSEDED_DIRNAME = "superseded"

LR_TIE_TOLERANCE = 0.002
"""Grid scores closer than this to the best are ties. Explained variance varies
about this much between seeds on the cpu presets (half the 95% interval of a
3-seed mean: 0.001-0.002)."""


def sparsity_set_by_penalty(run: RunSpec) -> bool:
    """Whether the run's L0 is an outcome of training (an L1-style coefficient)
    rather than fixed by the architecture (`k`)."""
    return run.sparsity_param != "k"


def best_learning_rate(
    scores: dict[float, float], l0: dict[float, float] | None = None
) -> float:
    """The grid's best rate: the highest finite score; with `l0` (arms whose
    sparsity is set by a penalty), the sparsest of the rates within
    LR_TIE_TOLERANCE of the best.

    At a fixed penalty a smaller rate also ends with more active latents, which
    buys explained variance with sparsity: on the cpu preset standard's
    projected-init control scored 0.9315 at 3e-4 with L0 157 and 0.9314 at 1e-3
    with L0 92. The tie goes to the sparser rate, which is better on the
    sparsity-fidelity front.
    """
    finite = {lr: s for lr, s in scores.items() if math.isfinite(s)}
    if not finite:
        return next(iter(scores))
    best = max(finite, key=finite.__getitem__)
    if l0 is None:
        return best
    tied = [lr for lr, s in finite.items() if s >= finite[best] - LR_TIE_TOLERANCE]
    return min(tied, key=lambda lr: (l0.get(lr, math.inf), -finite[lr]))


# --------------------------------------------------------------------------- #
# The grid and its extension past an edge
# --------------------------------------------------------------------------- #


def grid_labels(config: SweepConfig) -> list[str]:
    """Labels of the arms the grid searches (those without their own `lr`)."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    return [
        label
        for arm, labels in zip(config.architectures, arm_labels(config))
        if arm.lr is None
        for _form, label in zip(_forms(arm, aligned), labels)
    ]


def expand_lr_grid(
    config: SweepConfig,
    rates: dict[str, list[float]] | None = None,
    labels: Iterable[str] | None = None,
) -> list[RunSpec]:
    """The learning-rate pass: every arm without its own `lr` (of `labels`, when
    given), at its middle sparsity value, the first seed and the first d_sae, at
    each of its rates (`rates[label]`, else `lr_grid`)."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    wanted = None if labels is None else set(labels)
    runs = []
    for arm, arm_labels_ in zip(config.architectures, arm_labels(config)):
        if arm.lr is not None:
            continue
        for form, label in zip(_forms(arm, aligned), arm_labels_):
            if wanted is not None and label not in wanted:
                continue
            value = middle_value(arm.sparsity_values)
            for lr in (rates or {}).get(label, config.lr_grid):
                runs.append(
                    _run(arm, form, label, value, config.d_sae[0], config.seeds[0], lr)
                )
    return runs


def _leading_digit(lr: float) -> float:
    return round(lr / 10 ** math.floor(math.log10(lr) + 1e-9), 6)


def ladder_step(grid: list[float], edge: float, side: str) -> float:
    """The rate one step past `edge` on the ladder of `grid` (its rates' leading
    digits in every decade), below it for `side` "low", above for "high"."""
    digits = sorted({_leading_digit(lr) for lr in grid})
    decade = math.floor(math.log10(edge) + 1e-9)
    ladder = sorted(
        float(f"{d * 10.0**e:.6g}")
        for e in (decade - 1, decade, decade + 1)
        for d in digits
    )
    if side == "low":
        return max(r for r in ladder if r < edge * (1 - 1e-9))
    return min(r for r in ladder if r > edge * (1 + 1e-9))


def next_rate(config: SweepConfig, rates: list[float], chosen: float) -> float | None:
    """The rate to try next for an arm tried at `rates` whose best is `chosen`:
    one ladder step past the edge it sits at, clipped to lr_floor / lr_ceiling;
    None when `chosen` is interior or already at a bound."""
    low, high = min(rates), max(rates)
    if math.isclose(chosen, low) and low > config.lr_floor * (1 + 1e-9):
        return max(ladder_step(config.lr_grid, low, "low"), config.lr_floor)
    if math.isclose(chosen, high) and high < config.lr_ceiling * (1 - 1e-9):
        return min(ladder_step(config.lr_grid, high, "high"), config.lr_ceiling)
    return None


def bound_edge(config: SweepConfig, rates: list[float], chosen: float) -> str | None:
    """`low` / `high` when `chosen` is the grid's edge and that edge is the
    sweep's bound (so the grid could not be extended past it); else None."""
    if math.isclose(chosen, min(rates)) and min(rates) <= config.lr_floor * (1 + 1e-9):
        return "low"
    if math.isclose(chosen, max(rates)) and max(rates) >= config.lr_ceiling * (
        1 - 1e-9
    ):
        return "high"
    return None


# --------------------------------------------------------------------------- #
# Scores and the choice
# --------------------------------------------------------------------------- #


def record_split(record: dict[str, Any]) -> str:
    """Which held-out data a record's metrics read (`eval` in records written
    before the validation split existed)."""
    return record.get("eval_result_unstructured", {}).get("eval_split", "eval")


@dataclass(frozen=True)
class ArmGrid:
    """One arm's learning-rate pass.

    Args:
        scores: Rate -> `lr_metric` of the grid run.
        l0: Rate -> its L0.
        penalty_set: Whether the arm's L0 is an outcome of training.
        split: The data the scores read.
    """

    scores: dict[float, float]
    l0: dict[float, float]
    penalty_set: bool
    split: str

    @property
    def chosen(self) -> float:
        return best_learning_rate(self.scores, self.l0 if self.penalty_set else None)


def read_arm_grids(
    config: SweepConfig, out_dir: Path, runs: list[RunSpec]
) -> dict[str, ArmGrid]:
    """Each arm's grid from the records of `runs` (all of them must exist)."""
    scores: dict[str, dict[float, float]] = {}
    l0s: dict[str, dict[float, float]] = {}
    splits: dict[str, set[str]] = {}
    penalty: dict[str, bool] = {}
    for run in runs:
        record = read_record(grid_record_path(out_dir, run.run_id))
        metrics = flat_metrics(record)
        scores.setdefault(run.label, {})[run.lr] = metrics[config.lr_metric]
        l0s.setdefault(run.label, {})[run.lr] = metrics["l0"]
        splits.setdefault(run.label, set()).add(record_split(record))
        penalty[run.label] = sparsity_set_by_penalty(run)
    return {
        label: ArmGrid(scores[label], l0s[label], penalty[label], "+".join(sorted(s)))
        for label, s in splits.items()
    }


def _format_lr(lr: float) -> str:
    return f"{lr:g}"


def _by_rate(values: dict[float, float]) -> dict[str, float]:
    return {_format_lr(lr): value for lr, value in sorted(values.items())}


def write_lr_choice(
    config: SweepConfig, out_dir: Path, grids: dict[str, ArmGrid]
) -> dict[str, float]:
    """LR_CHOICE_FILENAME: the metric, each arm's grid values and L0 by rate, its
    chosen rate, the edge left at a bound (`edge`: null, "low", "high") and the
    data that chose it (`split`). Arms chosen by an earlier part of the sweep
    (`--bases`, `--arms`) stay; those written before `edge` and `split` existed
    get them from their grid (split "eval")."""
    previous = read_lr_choice(out_dir) or {"grid": {}, "chosen": {}}
    chosen = {**previous["chosen"], **{k: g.chosen for k, g in grids.items()}}
    grid = {**previous["grid"], **{k: _by_rate(g.scores) for k, g in grids.items()}}
    grid_l0 = {
        **previous.get("grid_l0", {}),
        **{k: _by_rate(g.l0) for k, g in grids.items()},
    }
    split = {label: "eval" for label in chosen}
    split.update(previous.get("split") or {})
    split.update({k: g.split for k, g in grids.items()})
    edge = {
        label: bound_edge(config, [float(r) for r in grid[label]], float(lr))
        if grid.get(label)
        else None
        for label, lr in chosen.items()
    }
    write_json_atomic(
        out_dir / LR_CHOICE_FILENAME,
        {
            "metric": config.lr_metric,
            "grid": grid,
            "grid_l0": grid_l0,
            "chosen": chosen,
            "edge": edge,
            "split": split,
        },
        indent=1,
    )
    return {k: g.chosen for k, g in grids.items()}


def choose_learning_rates(config: SweepConfig, out_dir: Path) -> dict[str, float]:
    """Each arm's best rate of `lr_grid` by `lr_metric` from the grid's records
    (no extension; `run_lr_grid` extends), written to LR_CHOICE_FILENAME."""
    grids = read_arm_grids(config, Path(out_dir), expand_lr_grid(config))
    return write_lr_choice(config, Path(out_dir), grids)


def retire(out_dir: Path, path: Path) -> None:
    """Move a record under `records/superseded/`, keeping its place below
    `records/` (readers of `records/*.json` no longer see it)."""
    relative = path.relative_to(Path(out_dir) / RECORDS_DIRNAME)
    target = Path(out_dir) / RECORDS_DIRNAME / SUPERSEDED_DIRNAME / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))


def retire_other_split_grid_records(
    config: SweepConfig, out_dir: Path, runs: list[RunSpec]
) -> int:
    """Move grid records of `runs` scored on another split than `lr_split`, so
    the grid scores them again; returns how many moved."""
    moved = 0
    for run in runs:
        path = grid_record_path(out_dir, run.run_id)
        if path.exists() and record_split(read_record(path)) != config.lr_split:
            retire(out_dir, path)
            moved += 1
    return moved


def run_lr_grid(
    config: SweepConfig,
    out_dir: Path,
    execute: Callable[[list[RunSpec]], None],
    labels: Iterable[str] | None = None,
) -> dict[str, float]:
    """The learning-rate pass with the edge rule (module docstring): `execute`
    runs grid runs (skipping those with a record). Returns label -> chosen
    rate, as written to LR_CHOICE_FILENAME. Resumable: a rerun derives the same
    extensions from the records."""
    out_dir = Path(out_dir)
    labels = grid_labels(config) if labels is None else list(labels)
    rates = {label: sorted(config.lr_grid) for label in labels}
    pending = list(labels)
    grids: dict[str, ArmGrid] = {}
    while pending:
        runs = expand_lr_grid(config, rates, pending)
        retire_other_split_grid_records(config, out_dir, runs)
        execute(runs)
        grids.update(read_arm_grids(config, out_dir, runs))
        pending = []
        for label in sorted(grids):
            step = next_rate(config, rates[label], grids[label].chosen)
            if step is not None:
                rates[label] = sorted([*rates[label], step])
                pending.append(label)
                print(
                    f"{label}: best rate {grids[label].chosen:g} is its grid's "
                    f"edge; trying {step:g}",
                    file=sys.stderr,
                    flush=True,
                )
    return write_lr_choice(config, out_dir, grids)


# --------------------------------------------------------------------------- #
# The main runs
# --------------------------------------------------------------------------- #


def point_runs(runs: Iterable[RunSpec]) -> dict[str, list[RunSpec]]:
    points: dict[str, list[RunSpec]] = {}
    for run in runs:
        points.setdefault(run.point_id, []).append(run)
    return points


def main_runs(config: SweepConfig, out_dir: Path) -> list[RunSpec]:
    """The multi-seed runs: every arm at its chosen learning rate (the grid-only
    runs at other rates are left out)."""
    choice = read_lr_choice(out_dir)
    return middle_sparsity_first(
        expand_runs(config, choice["chosen"] if choice else None)
    )


def middle_sparsity_first(runs: list[RunSpec]) -> list[RunSpec]:
    """`runs` with every arm's middle sparsity first, then the values next to it,
    and within one sparsity seed by seed (every arm's seed 0, then every arm's
    seed 1, ...): a sweep cut short (or watched while it runs) already compares
    every arm at one sparsity, paired by seed, and a learning-curve sweep has
    every arm's curve for the seeds it reached."""
    values: dict[str, list[float]] = {}
    seeds: list[int] = []
    for run in runs:
        values.setdefault(run.label, [])
        if run.sparsity_value not in values[run.label]:
            values[run.label].append(run.sparsity_value)
        if run.seed not in seeds:
            seeds.append(run.seed)

    def distance(run: RunSpec) -> tuple[float, int]:
        ordered = sorted(values[run.label])
        middle = abs(ordered.index(run.sparsity_value) - (len(ordered) - 1) / 2)
        return middle, seeds.index(run.seed)

    return sorted(runs, key=distance)


def retire_unchosen_records(
    out_dir: Path, chosen: dict[str, float], labels: Iterable[str]
) -> int:
    """Move the run, stability and checkpoint records of `labels` at a rate other
    than their chosen one to `records/superseded/`; returns how many moved."""
    wanted = set(labels)
    folder = Path(out_dir) / RECORDS_DIRNAME
    moved = 0
    paths = [*folder.glob("*.json"), *(folder / "checkpoints").glob("*.json")]
    for path in paths:
        config = read_record(path).get("eval_config", {})
        info = config.get("run") or config.get("point") or {}
        label, lr = info.get("label"), info.get("lr")
        if label in wanted and lr is not None and not math.isclose(lr, chosen[label]):
            retire(out_dir, path)
            moved += 1
    return moved


# --------------------------------------------------------------------------- #
# Rerunning arms of a sweep folder
# --------------------------------------------------------------------------- #


def rerun_arms(
    config: SweepConfig, out_dir: Path, labels: list[str], workers: int = 1
) -> dict[str, float]:
    """Grid (with the edge rule, on `lr_split`), choice, main runs and stability
    of the arms `labels` of the sweep in `out_dir`; the other arms' records and
    choices stay as they are."""
    from benchmarks import sweep

    out_dir = Path(out_dir)
    known = grid_labels(config)
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise sweep.SweepError(
            f"--arms: {unknown} are not arms of {config.name!r} searched by its "
            f"lr_grid; choose from {known}."
        )
    sweep.check_out_dir(config, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / sweep.SWEEP_FILENAME, config.to_dict())

    def execute(runs: list[RunSpec], grid: bool) -> None:
        sweep._execute(config, out_dir, runs, "local", workers, None, grid=grid)

    chosen = run_lr_grid(config, out_dir, lambda runs: execute(runs, True), labels)
    print(f"Chosen learning rates: {chosen}", file=sys.stderr, flush=True)
    moved = retire_unchosen_records(out_dir, chosen, labels)
    print(f"{moved} records at rates no longer chosen moved to records/superseded/")
    execute([r for r in main_runs(config, out_dir) if r.label in set(labels)], False)
    sweep.write_stability_records(config, out_dir)
    return chosen


def main(argv: list[str] | None = None) -> None:
    from benchmarks.config import SweepConfigError
    from benchmarks.sweep import SweepError
    from benchmarks.validation_split import ValidationSplitError

    parser = argparse.ArgumentParser(prog="python -m benchmarks.lr_grid")
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
