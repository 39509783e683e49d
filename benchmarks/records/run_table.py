"""Typed views of a sweep folder's records and the one per-run table built from them.

The files stay in SAEBench's layout (`benchmarks.records.layout`); these classes own
reading them and the sweep point key, so analysis never reads a nested dict by
string path:

- `RunRecord`: one run (or learning-curve checkpoint): its identity and its
  numbers under `layout.FLAT_METRICS`' names.
- `StabilityRecord`: one point's seed pairs and their shared-latent fractions.
- `LearningRateChoice`: `lr_choice.json`, with which arms sit at an edge of their
  grid.
- `run_frame`: one row per run, identity columns then metric columns; built once
  per report and handed to the verdicts, tables and figures.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from benchmarks.records import layout

STABILITY = "stability"
"""Pseudo-metric: shared-latent fraction across seeds by the decoder criterion
over latents alive in both SAEs (over all latents for records without alive
latents). A dead latent is never shared, so counting dead ones would credit an
arm for having fewer of them, which "dead features eliminated" already judges."""
STABILITY_ALL = "stability_all_latents"
"""Pseudo-metric: the decoder criterion over all latents, dead ones included."""
STABILITY_ENC_DEC = "stability_enc_dec"
"""Pseudo-metric: the encoder+decoder criterion over all latents (untied arms)."""
STABILITY_KEYS: dict[str, tuple[str, ...]] = {
    STABILITY: ("shared_fraction_decoder_alive", "shared_fraction_decoder"),
    STABILITY_ALL: ("shared_fraction_decoder",),
    STABILITY_ENC_DEC: (
        "shared_fraction_enc_dec",
        "shared_fraction",  # records written before #14: this criterion only
    ),
}
"""Pseudo-metric -> keys of a stability record's per-pair details, first present
(not None) wins."""


class PointKey(NamedTuple):
    """A sweep point: one arm at one sparsity value and dictionary size."""

    label: str
    sparsity_param: str
    sparsity_value: float
    d_sae: int


@dataclass(frozen=True)
class Arm:
    """What was trained, without the sparsity value or seed.

    Args:
        label: `architecture`, `architecture[form]` or `base[init=form]`.
        architecture: SAELens training architecture.
        alignment: `tied` / `projected` for an aligned arm, else None.
        base_architecture: The architecture an aligned one extends (itself
            otherwise).
        init_from: The aligned form whose start an unconstrained control copies,
            else None.
        b_dec_init: `mean` when the decoder bias started at the activations'
            mean (`ArchitectureSweep.b_dec_init`), else None.
    """

    label: str
    architecture: str
    alignment: str | None
    base_architecture: str
    init_from: str | None
    b_dec_init: str | None = None

    @property
    def is_stock(self) -> bool:
        return (
            self.alignment is None
            and self.init_from is None
            and self.b_dec_init is None
        )

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "Arm":
        """From a record's `eval_config["run"]` or `eval_config["point"]`."""
        return cls(
            label=info["label"],
            architecture=info["architecture"],
            alignment=info.get("alignment"),
            base_architecture=info.get("base_architecture", info["architecture"]),
            init_from=info.get("init_from"),
            b_dec_init=info.get("b_dec_init"),
        )


def point_of(info: dict[str, Any]) -> PointKey:
    """The sweep point of a record's `eval_config["run"]` or `["point"]`."""
    return PointKey(
        info["label"],
        info["sparsity_param"],
        float(info["sparsity_value"]),
        int(info["d_sae"]),
    )


@dataclass(frozen=True)
class SweepInfo:
    """The sweep settings a record carries (`eval_config["sweep"]`).

    Args:
        name: Sweep name.
        kind: `lm` or `synthetic`.
        model: Model name (None: the embedded default).
        hook: Hook point.
        training_tokens: Tokens (samples) each SAE trains on.
        batch_tokens: Tokens (samples) per step.
        lr_decay_steps: Steps of the final learning-rate decay (0: none).
        lr: The sweep's default rate.
        seeds: Its seeds.
        seed_varies_data: Whether a run's seed also set its batch order
            (`SweepConfig.seed_varies_data`); None in records older than the
            field.
    """

    name: str | None = None
    kind: str | None = None
    model: str | None = None
    hook: str | None = None
    training_tokens: int | None = None
    batch_tokens: int | None = None
    lr_decay_steps: int = 0
    lr: float | None = None
    seeds: tuple[int, ...] = ()
    seed_varies_data: bool | None = None

    @classmethod
    def from_json(cls, sweep: dict[str, Any]) -> "SweepInfo":
        return cls(
            name=sweep.get("name"),
            kind=sweep.get("kind"),
            model=sweep.get("model"),
            hook=sweep.get("hook"),
            training_tokens=sweep.get("training_tokens"),
            batch_tokens=sweep.get("train_batch_size_tokens"),
            lr_decay_steps=int(sweep.get("lr_decay_steps") or 0),
            lr=sweep.get("lr"),
            seeds=tuple(sweep.get("seeds") or ()),
            seed_varies_data=sweep.get("seed_varies_data"),
        )


@dataclass(frozen=True)
class RunRecord:
    """One evaluated run (a learning-curve checkpoint is one too, at its step).

    Args:
        run_id: The run's id (file name of its record).
        arm: What was trained.
        point: The sweep point.
        seed: Training seed.
        lr: Learning rate.
        step: Training step the SAE was evaluated at (None in old records).
        sweep: The sweep's settings.
        metrics: `layout.FLAT_METRICS` name -> value, NaN where absent.
        eval_windows: Tokens (samples) behind each evaluation, by window name.
        skipped_evals: Eval name -> why it did not run.
    """

    run_id: str
    arm: Arm
    point: PointKey
    seed: int
    lr: float
    step: int | None
    sweep: SweepInfo
    metrics: dict[str, float]
    eval_windows: dict[str, float] = field(default_factory=dict)
    skipped_evals: dict[str, str] = field(default_factory=dict)

    @property
    def training_tokens(self) -> int | None:
        return self.sweep.training_tokens

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "RunRecord":
        run = layout.run_info(record)
        sweep = record.get("eval_config", {}).get("sweep", {})
        arm, point = Arm.from_info(run), point_of(run)
        metrics = record.get("eval_result_metrics", {})
        windows = metrics.get("eval_windows") or {}
        skipped = (record.get("eval_result_unstructured") or {}).get("skipped_evals")
        return cls(
            run_id=run.get("run_id", ""),
            arm=arm,
            point=point,
            seed=int(run["seed"]),
            lr=float(run.get("lr") or sweep.get("lr") or math.nan),
            step=run.get("step"),
            sweep=SweepInfo.from_json(sweep),
            metrics=layout.flat_metrics(record),
            eval_windows={k: float(v) for k, v in windows.items()},
            skipped_evals={k: str(v) for k, v in (skipped or {}).items()},
        )

    @classmethod
    def read(cls, path: Path) -> "RunRecord":
        return cls.from_json(layout.read_record(path))


@dataclass(frozen=True)
class SeedPair:
    """Two seeds of one point and the fraction of latents they share.

    Args:
        seeds: The two seeds, ascending.
        values: Stability pseudo-metric (STABILITY_KEYS) -> shared fraction, for
            the criteria the record has.
    """

    seeds: tuple[int, int]
    values: dict[str, float]

    @property
    def shared_fraction(self) -> float:
        """The headline criterion (STABILITY), NaN when not recorded."""
        return self.values.get(STABILITY, math.nan)


@dataclass(frozen=True)
class StabilityRecord:
    """One point's stability across seeds.

    Args:
        point: The sweep point.
        arm: Its arm.
        lr: Learning rate of its runs (NaN in records without one).
        pairs: Every seed pair with the headline shared fraction.
        chance: Shared fraction of two untrained SAEs, decoder criterion (NaN
            when not recorded).
        chance_enc_dec: The same by the encoder+decoder criterion.
    """

    point: PointKey
    arm: Arm
    lr: float
    pairs: tuple[SeedPair, ...]
    chance: float
    chance_enc_dec: float = math.nan

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> "StabilityRecord":
        info = record["eval_config"]["point"]
        arm, point = Arm.from_info(info), point_of(info)
        pairs = []
        for detail in record.get("eval_result_details", []):
            values = {}
            for metric, keys in STABILITY_KEYS.items():
                value = next(
                    (detail[k] for k in keys if detail.get(k) is not None), None
                )
                if value is not None:
                    values[metric] = float(value)
            a, b = sorted(int(s) for s in detail["seeds"])
            pairs.append(SeedPair((a, b), values))
        summary = record.get("eval_result_metrics", {}).get("stability", {})

        def number(key: str) -> float:
            value = summary.get(key)
            return math.nan if value is None else float(value)

        lr = float(info["lr"]) if info.get("lr") is not None else math.nan
        return cls(
            point,
            arm,
            lr,
            tuple(pairs),
            number("chance_shared_fraction_decoder"),
            number("chance_shared_fraction_enc_dec"),
        )


@dataclass(frozen=True)
class LearningRateChoice:
    """A sweep's learning-rate pass (`lr_choice.json`).

    Args:
        metric: What ranked the rates.
        grid: Arm label -> {rate: score}.
        chosen: Arm label -> the rate its main runs use.
        bound_edges: Arm label -> `low` / `high` where the sweep stopped extending
            the grid at a stated bound (the edge is then explained).
        splits: Arm label -> which data ranked its rates: `validation`, or
            `eval` (the reported metrics' own data) for arms chosen before the
            validation split existed.
    """

    metric: str
    grid: dict[str, dict[float, float]]
    chosen: dict[str, float]
    bound_edges: dict[str, str]
    splits: dict[str, str]

    @property
    def split(self) -> str:
        """The splits in words: `validation`, or `validation (3 arms), eval (19)`."""
        counts: dict[str, int] = {}
        for split in self.splits.values():
            counts[split] = counts.get(split, 0) + 1
        if len(counts) <= 1:
            return next(iter(counts), "eval")
        return ", ".join(f"{k} ({n} arms)" for k, n in sorted(counts.items()))

    @classmethod
    def read(cls, out_dir: Path) -> "LearningRateChoice | None":
        raw = layout.read_lr_choice(Path(out_dir))
        if raw is None:
            return None
        edges = raw.get("edge", {})
        split = raw.get("split", "eval")
        if isinstance(split, str):  # one split for every arm (or none recorded)
            split = dict.fromkeys(raw["chosen"], split)
        return cls(
            metric=raw["metric"],
            grid={
                label: {float(lr): float(v) for lr, v in values.items()}
                for label, values in raw["grid"].items()
            },
            chosen={label: float(lr) for label, lr in raw["chosen"].items()},
            bound_edges={k: v for k, v in edges.items() if v} if edges else {},
            splits=dict(split),
        )

    def edge(self, label: str) -> str | None:
        """`low` / `high` when `label`'s chosen rate is its grid's lowest or
        highest (None inside, or for an arm not in the grid)."""
        rates = sorted(self.grid.get(label, {}))
        chosen = self.chosen.get(label)
        if chosen is None or len(rates) < 2:
            return None
        if math.isclose(chosen, rates[0]):
            return "low"
        if math.isclose(chosen, rates[-1]):
            return "high"
        return None

    def unexplained_edges(self) -> dict[str, str]:
        """Arms at an edge the sweep did not extend past (no stated bound)."""
        out = {}
        for label in sorted(self.chosen):
            edge = self.edge(label)
            if edge and self.bound_edges.get(label) != edge:
                out[label] = edge
        return out


IDENTITY_COLUMNS = (
    "label",
    "architecture",
    "alignment",
    "base_architecture",
    "init_from",
    "b_dec_init",
    "sparsity_param",
    "sparsity_value",
    "d_sae",
    "seed",
    "lr",
    "step",
    "training_tokens",
    "tokens_seen",
    "lr_decay_steps",
)


def run_frame(runs: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per run: IDENTITY_COLUMNS, then every metric of FLAT_METRICS."""
    rows = []
    for run in runs:
        rows.append(
            {
                "label": run.arm.label,
                "architecture": run.arm.architecture,
                "alignment": run.arm.alignment,
                "base_architecture": run.arm.base_architecture,
                "init_from": run.arm.init_from,
                "b_dec_init": run.arm.b_dec_init,
                "sparsity_param": run.point.sparsity_param,
                "sparsity_value": run.point.sparsity_value,
                "d_sae": run.point.d_sae,
                "seed": run.seed,
                "lr": run.lr,
                "step": run.step,
                "training_tokens": run.training_tokens,
                "tokens_seen": _tokens_seen(run),
                "lr_decay_steps": run.sweep.lr_decay_steps,
                **run.metrics,
            }
        )
    columns = [*IDENTITY_COLUMNS, *layout.FLAT_METRICS]
    return pd.DataFrame(rows, columns=columns)


def _tokens_seen(run: RunRecord) -> float:
    """Tokens the SAE had trained on when evaluated (its whole budget for a
    record without a step)."""
    if run.step is not None and run.sweep.batch_tokens:
        return float(run.step * run.sweep.batch_tokens)
    return float(run.training_tokens) if run.training_tokens else math.nan


def arms_of(runs: Sequence[RunRecord]) -> dict[str, Arm]:
    """Label -> arm, for every arm with a run."""
    return {run.arm.label: run.arm for run in runs}


@dataclass(frozen=True)
class SweepRecords:
    """Everything a report reads from one sweep folder, read once.

    Args:
        runs: The main runs (each arm at its chosen rate; grid-only runs at
            other rates left out).
        stability: Their stability records.
        checkpoints: Learning-curve checkpoint records (empty for most sweeps).
        lr_choice: The learning-rate pass, when the sweep had one.
    """

    runs: tuple[RunRecord, ...]
    stability: tuple[StabilityRecord, ...]
    checkpoints: tuple[RunRecord, ...]
    lr_choice: LearningRateChoice | None

    @classmethod
    def from_json(
        cls,
        run_records: Iterable[dict[str, Any]],
        stability_records: Iterable[dict[str, Any]] = (),
        checkpoint_records: Iterable[dict[str, Any]] = (),
        lr_choice: LearningRateChoice | None = None,
    ) -> "SweepRecords":
        """From record dicts; with `lr_choice`, only each arm's chosen-rate runs
        (and their points' stability records) are kept."""
        runs = [RunRecord.from_json(r) for r in run_records]
        stability = [StabilityRecord.from_json(r) for r in stability_records]
        if lr_choice is not None:
            runs = [r for r in runs if _at_chosen_rate(r.arm.label, r.lr, lr_choice)]
            stability = [
                s for s in stability if _at_chosen_rate(s.arm.label, s.lr, lr_choice)
            ]
        checkpoints = [RunRecord.from_json(r) for r in checkpoint_records]
        return cls(tuple(runs), tuple(stability), tuple(checkpoints), lr_choice)

    @classmethod
    def read(cls, out_dir: Path) -> "SweepRecords":
        out_dir = Path(out_dir)
        run_dicts, stability_dicts = layout.load_records(out_dir)
        return cls.from_json(
            run_dicts,
            stability_dicts,
            layout.load_checkpoint_records(out_dir),
            LearningRateChoice.read(out_dir),
        )

    def frame(self) -> pd.DataFrame:
        return run_frame(self.runs)

    def checkpoint_frame(self) -> pd.DataFrame:
        """Checkpoints and final runs together: one row per run and step."""
        return run_frame([*self.checkpoints, *self.runs])


def _at_chosen_rate(label: str, lr: float, choice: LearningRateChoice) -> bool:
    """Whether a run (or point) at `lr` is one of its arm's main runs: the arm
    has no chosen rate, or `lr` is it."""
    chosen = choice.chosen.get(label)
    return chosen is None or math.isclose(chosen, lr, rel_tol=1e-9)
