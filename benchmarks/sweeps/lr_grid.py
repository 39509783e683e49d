"""The learning-rate phase of a sweep: each arm trained at the rates of `lr_grid`
(its middle sparsity, first seed, first d_sae), scored on the validation split,
its best rate chosen by `benchmarks.sweeps.lr_rule` and extended past an edge as
that rule says. `lr_choice.json` then says, per arm, which rate was chosen, which
edge remains at a bound (`edge`) and which data chose the rate (`split`); the
main-runs phase (`benchmarks.sweeps.runs.main_runs`) reads it.

**Chosen on data the reported metrics do not read.** Grid runs are scored on
`SweepConfig.lr_split` (`validation`: `benchmarks.sweeps.backends.validation_split`).
The main run of seed 0 at the chosen rate trains exactly as the grid run did
(same run id, same SAE folder), so its weights are reused; its record is
evaluated again on the eval data. Grid records scored on another split (sweeps
written before the validation split) are moved to `records/superseded/lr_grid/`
and the grid SAE scored again (trained again when its folder is gone).
"""

import math
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.records.layout import (
    LR_CHOICE_FILENAME,
    RECORDS_DIRNAME,
    flat_metrics,
    grid_record_path,
    read_lr_choice,
    read_record,
    write_json_atomic,
)
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.lr_rule import (
    best_learning_rate,
    bound_edge,
    next_rate,
    sparsity_set_by_penalty,
)
from benchmarks.sweeps.runs import (
    RunSpec,
    arm_forms,
    arm_labels,
    make_run,
    middle_value,
)

SUPERSEDED_DIRNAME = "superseded"

# --------------------------------------------------------------------------- #
# The grid and its extension past an edge
# --------------------------------------------------------------------------- #


def grid_labels(config: SweepConfig) -> list[str]:
    """Labels of the arms the grid searches: those without their own `lr`, less
    the arms the calibration phase chooses a rate for (`target_l0`: those whose
    L0 is set by a penalty)."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    return [
        label
        for arm, labels in zip(config.architectures, arm_labels(config))
        if arm.lr is None and not config.calibrates(arm)
        for _form, label in zip(arm_forms(arm, aligned), labels)
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
    wanted = set(grid_labels(config) if labels is None else labels)
    runs = []
    for arm, arm_labels_ in zip(config.architectures, arm_labels(config)):
        if arm.lr is not None:
            continue
        for form, label in zip(arm_forms(arm, aligned), arm_labels_):
            if label not in wanted:
                continue
            value = middle_value(arm.sparsity_values)
            for lr in (rates or {}).get(label, config.lr_grid):
                runs.append(
                    make_run(
                        arm, form, label, value, config.d_sae[0], config.seeds[0], lr
                    )
                )
    return runs


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
