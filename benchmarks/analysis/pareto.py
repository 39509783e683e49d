"""Pareto analysis: pure functions over evaluation records.

Records are the dicts of `benchmarks.records.layout` (run records and stability records);
nothing here reads files or plots, and nothing here judges a claim (that is
`benchmarks.claims`).

- `aggregate` summarises one metric per sweep point (all seeds of one label,
  sparsity value and d_sae): seed mean, min, max, standard error, the t-based 95%
  confidence interval of the mean (`t_interval`), and the same for L0, the x
  coordinate of every Pareto plot. The pseudo-metrics `stability*` come from the
  stability records, joined with the L0 of the same point.
- `pareto_frontier` keeps the points no other point beats in both L0 and metric.
  Comparisons at matched L0 read each seed's own curve
  (`benchmarks.analysis.verdicts.matching`).
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.analysis.verdicts.statistics import t_bounds
from benchmarks.records.run_table import (
    STABILITY,
    STABILITY_ALL,
    STABILITY_ENC_DEC,
    STABILITY_KEYS,
    Arm,
    PointKey,
    StabilityRecord,
    SweepRecords,
)

__all__ = ["STABILITY", "STABILITY_ALL", "STABILITY_ENC_DEC", "STABILITY_KEYS"]

LOWER_IS_BETTER = frozenset(
    {
        "dead_fraction",
        "dead_fraction_long",
        "dead_fraction_end_of_training",
        "mse",
        "absorption_fraction",
        "absorption_full",
    }
)
# Metrics without a better direction: no frontier, no verdict.
NO_DIRECTION = frozenset(
    {
        "l0",
        "l1",
        "l2_ratio",
        "alignment_mean",
        "train_seconds",
        "absorption_split_features",
        "absorption_seconds",
        "sparse_probing_seconds",
        "sae_probes_seconds",
        "tpp_seconds",
        "tpp_intended",  # a drop that is only good beside the unintended one
        "tpp_unintended",
    }
)


def higher_is_better(metric: str) -> bool | None:
    """True / False for metrics with a better direction, None for the rest."""
    if metric in NO_DIRECTION:
        return None
    return metric not in LOWER_IS_BETTER


@dataclass(frozen=True)
class PointSummary:
    """One metric at one sweep point, over its seeds.

    Args:
        label: The curve: `architecture` or `architecture[alignment]`.
        architecture: Training architecture.
        alignment: `tied` / `projected`, None for non-aligned runs.
        base_architecture: The architecture an aligned one extends (itself for
            non-aligned runs).
        sparsity_param: `k`, `l1_coefficient`, ...
        sparsity_value: Its value at this point.
        d_sae: Dictionary size.
        metric: The metric summarised.
        init_from: `tied` / `projected` for an init control (the base
            architecture started from an aligned form's initial weights), else
            None.
        mean: Seed mean of the metric.
        min: Smallest seed value.
        max: Largest seed value.
        sem: Standard error of the mean (NaN for one value). For `stability*`
            the seed pairs' standard deviation over sqrt(seeds), not sqrt(pairs):
            pairs share seeds, so they are not independent.
        ci_low: Lower end of the CONFIDENCE (95%) t interval of the mean, with
            n - 1 degrees of freedom (seeds - 1 for `stability*`); NaN for one
            value.
        ci_high: Upper end of that interval.
        n: Values behind it: seeds, or seed pairs for `stability*`.
        l0_mean: Seed mean of L0.
        l0_min: Smallest seed L0.
        l0_max: Largest seed L0.
        l0_sem: Standard error of the L0 mean.
        n_seeds: Seeds of the point (run records).
    """

    label: str
    architecture: str
    alignment: str | None
    base_architecture: str
    init_from: str | None
    sparsity_param: str
    sparsity_value: float
    d_sae: int
    metric: str
    mean: float
    min: float
    max: float
    sem: float
    ci_low: float
    ci_high: float
    n: int
    l0_mean: float
    l0_min: float
    l0_max: float
    l0_sem: float
    n_seeds: int

    @property
    def key(self) -> tuple[str, str, float, int]:
        """The sweep point: label, sparsity param and value, d_sae."""
        return (self.label, self.sparsity_param, self.sparsity_value, self.d_sae)


def _stats(
    values: Sequence[float], n_eff: int | None = None
) -> tuple[float, float, float, float, float, float]:
    """mean, min, max, standard error, CI low, CI high of the finite values (NaN
    when none). `n_eff` replaces the count in the standard error and the degrees
    of freedom (seed pairs: the number of seeds)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return (math.nan,) * 6
    n = x.size if n_eff is None else min(n_eff, x.size)
    mean = float(x.mean())
    sem = float(x.std(ddof=1) / math.sqrt(n)) if x.size > 1 and n > 1 else math.nan
    return (mean, float(x.min()), float(x.max()), sem, *t_bounds(mean, sem, n))


def _summary(
    arm: Arm,
    point: PointKey,
    metric: str,
    values: Sequence[float],
    l0s: Sequence[float],
    n_seeds: int,
    n_eff: int | None = None,
) -> PointSummary:
    mean, lo, hi, sem, ci_low, ci_high = _stats(values, n_eff)
    l0_mean, l0_min, l0_max, l0_sem, _, _ = _stats(l0s)
    return PointSummary(
        label=arm.label,
        architecture=arm.architecture,
        alignment=arm.alignment,
        base_architecture=arm.base_architecture,
        init_from=arm.init_from,
        sparsity_param=point.sparsity_param,
        sparsity_value=point.sparsity_value,
        d_sae=point.d_sae,
        metric=metric,
        mean=mean,
        min=lo,
        max=hi,
        sem=sem,
        ci_low=ci_low,
        ci_high=ci_high,
        n=sum(math.isfinite(v) for v in values),
        l0_mean=l0_mean,
        l0_min=l0_min,
        l0_max=l0_max,
        l0_sem=l0_sem,
        n_seeds=n_seeds,
    )


POINT_COLUMNS = ["label", "sparsity_param", "sparsity_value", "d_sae"]


def _none(value: Any) -> Any:
    """A frame cell as the record held it (pandas reads a missing str as NaN)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def point_summaries(frame: pd.DataFrame, metric: str) -> list[PointSummary]:
    """One summary of `metric` per sweep point of the per-run table
    (`run_table.run_frame`) that has a finite value of it.

    A point is a label (architecture, alignment form or init control), sparsity
    value and d_sae; its seeds are averaged. Seeds where the metric is NaN are
    left out of the metric's statistics; L0 statistics cover the seeds that have
    the metric. Sorted by d_sae, label and L0.
    """
    summaries = []
    for key, runs in frame.groupby(POINT_COLUMNS, sort=False, dropna=False):
        first = runs.iloc[0]
        arm = Arm(
            str(first["label"]),
            str(first["architecture"]),
            _none(first["alignment"]),
            str(first["base_architecture"]),
            _none(first["init_from"]),
        )
        values = runs[metric].astype(float)
        l0s = runs.loc[np.isfinite(values), "l0"].astype(float).tolist()
        point = PointKey(str(key[0]), str(key[1]), float(key[2]), int(key[3]))
        summary = _summary(arm, point, metric, values.tolist(), l0s, len(runs))
        if math.isfinite(summary.mean):
            summaries.append(summary)
    return sorted(summaries, key=_sort_key)


def stability_summaries(
    stability: Iterable[StabilityRecord], frame: pd.DataFrame, metric: str = STABILITY
) -> list[PointSummary]:
    """One summary of a stability pseudo-metric (STABILITY_KEYS) per stability
    record: the values are its seed pairs' shared fractions, the standard error
    and interval use the number of seeds (pairs share seeds), and L0 covers every
    seed of the point's runs in `frame`."""
    l0 = {
        tuple(key): runs["l0"].astype(float).tolist()
        for key, runs in frame.groupby(POINT_COLUMNS)
    }
    summaries = []
    for record in stability:
        values = [p.values[metric] for p in record.pairs if metric in p.values]
        l0s = l0.get(tuple(record.point), [])
        seeds = {s for p in record.pairs for s in p.seeds}
        n_seeds = len(l0s) or len(seeds)
        summary = _summary(
            record.arm, record.point, metric, values, l0s, n_seeds, n_eff=n_seeds
        )
        if math.isfinite(summary.mean):
            summaries.append(summary)
    return sorted(summaries, key=_sort_key)


def summaries_of(
    frame: pd.DataFrame, stability: Iterable[StabilityRecord], metric: str
) -> list[PointSummary]:
    """`point_summaries` or `stability_summaries`, by metric."""
    if metric in STABILITY_KEYS:
        return stability_summaries(stability, frame, metric)
    return point_summaries(frame, metric)


def aggregate(
    run_records: Iterable[dict[str, Any]],
    metric: str,
    stability_records: Iterable[dict[str, Any]] = (),
) -> list[PointSummary]:
    """`summaries_of` record dicts (every record counts: no learning-rate choice
    is applied). Args: run records; a name of `records.FLAT_METRICS` or of
    STABILITY_KEYS; stability records (for the stability pseudo-metrics)."""
    sweep = SweepRecords.from_json(run_records, stability_records)
    return summaries_of(sweep.frame(), sweep.stability, metric)


def _sort_key(p: PointSummary) -> tuple[int, str, float, float]:
    l0 = p.l0_mean if math.isfinite(p.l0_mean) else math.inf
    return (p.d_sae, p.label, l0, p.sparsity_value)


def _on_curve(point: PointSummary) -> bool:
    return (
        math.isfinite(point.mean) and math.isfinite(point.l0_mean) and point.l0_mean > 0
    )


def pareto_frontier(
    points: Iterable[PointSummary], higher_is_better: bool = True
) -> list[PointSummary]:
    """The points no other point dominates, sorted by L0.

    Point q dominates p when q's seed-mean L0 is at most p's and its seed-mean
    metric at least as good, one of them strictly. Points without a finite L0 > 0
    and metric are left out.
    """
    sign = 1.0 if higher_is_better else -1.0
    pts = [p for p in points if _on_curve(p)]

    def dominates(q: PointSummary, p: PointSummary) -> bool:
        qv, pv = sign * q.mean, sign * p.mean
        return (
            q.l0_mean <= p.l0_mean and qv >= pv and (q.l0_mean < p.l0_mean or qv > pv)
        )

    frontier = [p for p in pts if not any(dominates(q, p) for q in pts)]
    return sorted(frontier, key=lambda p: p.l0_mean)


def curves(points: Iterable[PointSummary]) -> dict[tuple[str, int], list[PointSummary]]:
    """Points grouped by (label, d_sae), each curve sorted by L0."""
    out: dict[tuple[str, int], list[PointSummary]] = defaultdict(list)
    for p in points:
        if _on_curve(p):
            out[(p.label, p.d_sae)].append(p)
    return {k: sorted(v, key=lambda p: p.l0_mean) for k, v in out.items()}
