"""Pareto analysis: pure functions over evaluation records.

Records are the dicts of `benchmarks.records` (run records and stability records);
nothing here reads files or plots, and nothing here judges a claim (that is
`benchmarks.claims`).

- `aggregate` summarises one metric per sweep point (all seeds of one label,
  sparsity value and d_sae): seed mean, min, max, standard error, and the same for
  L0, the x coordinate of every Pareto plot. The metric `stability` comes from
  the stability records, joined with the L0 of the same point.
- `pareto_frontier` keeps the points no other point beats in both L0 and metric;
  `interpolate_at_l0` reads a curve at a given L0, so that curves whose sparsity
  knobs differ are compared at matched L0.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import records

STABILITY = "stability"
"""Pseudo-metric: shared-latent fraction across seeds (stability records)."""
LOWER_IS_BETTER = frozenset({"dead_fraction", "mse"})
# Metrics without a better direction: no frontier, no verdict.
NO_DIRECTION = frozenset({"l0", "l1", "l2_ratio", "alignment_mean", "train_seconds"})
L0_REL_TOL = 0.05
"""A curve is read up to this far (relative L0) beyond its end points, as flat."""


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
        mean: Seed mean of the metric.
        min: Smallest seed value.
        max: Largest seed value.
        sem: Standard error of the mean (NaN for one value).
        n: Values behind it: seeds, or seed pairs for `stability`.
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
    sparsity_param: str
    sparsity_value: float
    d_sae: int
    metric: str
    mean: float
    min: float
    max: float
    sem: float
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


def _point_key(info: dict[str, Any]) -> tuple[str, str, float, int]:
    return (
        info["label"],
        info["sparsity_param"],
        float(info["sparsity_value"]),
        int(info["d_sae"]),
    )


def _stats(values: Sequence[float]) -> tuple[float, float, float, float]:
    """mean, min, max, standard error of the finite values (NaN when none)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return (math.nan,) * 4
    sem = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), float(x.min()), float(x.max()), sem


def _summary(
    info: dict[str, Any],
    metric: str,
    values: Sequence[float],
    l0s: Sequence[float],
    n_seeds: int,
    bounds: tuple[float, float, float] | None = None,
) -> PointSummary:
    mean, lo, hi, sem = _stats(values)
    if bounds is not None:  # mean, min, max given by the record
        mean, lo, hi = bounds
    l0_mean, l0_min, l0_max, l0_sem = _stats(l0s)
    return PointSummary(
        label=info["label"],
        architecture=info["architecture"],
        alignment=info.get("alignment"),
        base_architecture=info.get("base_architecture", info["architecture"]),
        sparsity_param=info["sparsity_param"],
        sparsity_value=float(info["sparsity_value"]),
        d_sae=int(info["d_sae"]),
        metric=metric,
        mean=mean,
        min=lo,
        max=hi,
        sem=sem,
        n=sum(math.isfinite(v) for v in values),
        l0_mean=l0_mean,
        l0_min=l0_min,
        l0_max=l0_max,
        l0_sem=l0_sem,
        n_seeds=n_seeds,
    )


def aggregate(
    run_records: Iterable[dict[str, Any]],
    metric: str,
    stability_records: Iterable[dict[str, Any]] = (),
) -> list[PointSummary]:
    """One summary per sweep point that has a finite value of `metric`.

    Args:
        run_records: Run records.
        metric: A name of `records.FLAT_METRICS`, or `stability`.
        stability_records: Needed for `stability` only.

    A point is a label (architecture and alignment form), sparsity value and
    d_sae; its seeds are averaged. Seeds where the metric is NaN are left out of
    the metric's statistics; L0 statistics cover the seeds that have the metric.
    For `stability` the values are the seed pairs' shared fractions (mean, min and
    max from the stability record) and L0 covers every seed of the point. Sorted
    by d_sae, label and L0.
    """
    by_point: dict[tuple[str, str, float, int], list[dict[str, Any]]] = defaultdict(
        list
    )
    for record in run_records:
        by_point[_point_key(records.run_info(record))].append(record)
    summaries = []
    if metric == STABILITY:
        for record in stability_records:
            info = record["eval_config"]["point"]
            stab = record["eval_result_metrics"]["stability"]
            shared = [d["shared_fraction"] for d in record["eval_result_details"]]
            runs = by_point.get(_point_key(info), [])
            l0s = [records.flat_metrics(r)["l0"] for r in runs]
            bounds = (
                float(stab["shared_fraction_mean"]),
                float(stab["shared_fraction_min"]),
                float(stab["shared_fraction_max"]),
            )
            summary = _summary(info, metric, shared, l0s, len(runs), bounds)
            if math.isfinite(summary.mean):
                summaries.append(summary)
    else:
        for runs in by_point.values():
            flat = [records.flat_metrics(r) for r in runs]
            values = [f[metric] for f in flat]
            l0s = [f["l0"] for f in flat if math.isfinite(f[metric])]
            summary = _summary(
                records.run_info(runs[0]), metric, values, l0s, len(runs)
            )
            if math.isfinite(summary.mean):
                summaries.append(summary)
    return sorted(summaries, key=_sort_key)


def _sort_key(p: PointSummary) -> tuple[int, str, float, float]:
    l0 = p.l0_mean if math.isfinite(p.l0_mean) else math.inf
    return (p.d_sae, p.label, l0, p.sparsity_value)


def has_data(run_records: Iterable[dict[str, Any]], metric: str) -> bool:
    """Whether any run record has a finite value of `metric`."""
    return any(math.isfinite(records.flat_metrics(r)[metric]) for r in run_records)


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


def interpolate_at_l0(
    curve: Sequence[PointSummary],
    l0: float,
    attr: str = "mean",
    rel_tol: float = L0_REL_TOL,
) -> float:
    """A curve's value at `l0`: linear in log L0 between its seed-mean points.

    Args:
        curve: Points of one label (any order).
        l0: Where to read it.
        attr: `mean`, `min` or `max` (the seed spread, interpolated alike).
        rel_tol: Up to this relative distance beyond the curve's lowest and
            highest L0, the end value is returned (seed-to-seed L0 jitter at a
            shared end point, e.g. TopK's L0 just under k); farther out, NaN.
    """
    pts = sorted((p for p in curve if _on_curve(p)), key=lambda p: p.l0_mean)
    if not pts or not (math.isfinite(l0) and l0 > 0):
        return math.nan
    lo, hi = pts[0].l0_mean, pts[-1].l0_mean
    if l0 < lo / (1 + rel_tol) or l0 > hi * (1 + rel_tol):
        return math.nan
    x = np.log([p.l0_mean for p in pts])
    y = [getattr(p, attr) for p in pts]
    return float(np.interp(math.log(min(max(l0, lo), hi)), x, y))
