"""Learning curves as numbers: how each arm's metrics move with training, and
how the gap between an aligned arm and a reference grows, shrinks or vanishes.

A learning-curve sweep saves checkpoints (`checkpoint_every_steps`) and evaluates
some of them (`eval_at_steps`) besides the final SAE; their records carry the
step in `run_info(record)["step"]`. Everything here is pure (records in, numbers
out); `benchmarks.reports.curves` renders it.

The gap at a step pairs runs by seed: an aligned run and its init control share
the initial weights and the batch order, so their difference per seed removes
both; the interval is the t-based 95% interval of the mean paired difference.
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.analysis.verdicts.statistics import mean_interval
from benchmarks.records import layout
from benchmarks.records.run_table import Arm


@dataclass(frozen=True)
class Interval:
    """A seed mean with its t-based 95% interval (NaN bounds for one value)."""

    mean: float
    low: float
    high: float
    n: int


def t_interval(values: Iterable[float]) -> Interval:
    """The seed mean of `values` with its CONFIDENCE t interval."""
    finite = [v for v in values if math.isfinite(v)]
    mean, low, high = mean_interval(finite)
    return Interval(mean, low, high, len(finite))


def _by_label_step_seed(
    run_records: Iterable[dict[str, Any]],
) -> dict[tuple[str, int], dict[int, dict[str, float]]]:
    out: dict[tuple[str, int], dict[int, dict[str, float]]] = defaultdict(dict)
    for record in run_records:
        info = layout.run_info(record)
        step = info.get("step")
        if step is None:
            continue
        out[(info["label"], int(step))][int(info["seed"])] = layout.flat_metrics(record)
    return out


def curve_points(
    run_records: Iterable[dict[str, Any]], metric: str
) -> dict[str, list[tuple[int, Interval]]]:
    """label -> [(step, seed interval of `metric`)] sorted by step."""
    curves: dict[str, list[tuple[int, Interval]]] = defaultdict(list)
    for (label, step), seeds in sorted(_by_label_step_seed(run_records).items()):
        interval = t_interval(values[metric] for values in seeds.values())
        if interval.n:
            curves[label].append((step, interval))
    return dict(curves)


def paired_gaps(
    run_records: Iterable[dict[str, Any]], metric: str, label: str, control: str
) -> list[tuple[int, Interval]]:
    """[(step, interval of `label` minus `control`, paired by seed)]."""
    table = _by_label_step_seed(run_records)
    gaps = []
    for (name, step), seeds in sorted(table.items()):
        if name != label or (control, step) not in table:
            continue
        other = table[(control, step)]
        diffs = [
            seeds[s][metric] - other[s][metric] for s in sorted(set(seeds) & set(other))
        ]
        interval = t_interval(diffs)
        if interval.n:
            gaps.append((step, interval))
    return gaps


def reference_pairs(arms: Iterable[Arm]) -> list[tuple[str, str, str]]:
    """(aligned label, reference label, kind) for every aligned arm and each
    reference present among `arms`: the base from the aligned form's own start
    (kind "init control"; the diagnostic for `tied`), the base's other init
    controls ("init control from <form>"; from `projected` the fair control),
    and its stock base ("stock base")."""
    arms = sorted(set(arms), key=lambda a: a.label)
    pairs = []
    for aligned in (a for a in arms if a.alignment is not None):
        for other in arms:
            if other.alignment is not None:
                continue
            if other.architecture != aligned.base_architecture:
                continue
            if other.init_from == aligned.alignment:
                pairs.append((aligned.label, other.label, "init control"))
            elif other.init_from is not None:
                kind = f"init control from {other.init_from}"
                pairs.append((aligned.label, other.label, kind))
            else:
                pairs.append((aligned.label, other.label, "stock base"))
    order = {"init control": 0, "stock base": 2}
    return sorted(pairs, key=lambda p: (p[0], order.get(p[2], 1), p[1]))
