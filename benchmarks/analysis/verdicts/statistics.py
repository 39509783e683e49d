"""Seed statistics of the verdicts: paired differences, their intervals and
p-values, and the correction across a claim's comparisons.

Arms of a sweep share seeds, data order and evaluation tokens, so an aligned
arm's seed s is compared with its reference's seed s (a paired design); the
interval and p-value are Student t on the per-seed differences. Where the seeds
behind the differences are fewer than the differences (seed pairs of a stability
record share seeds), the degrees of freedom and standard error use the seeds.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
"""Level of every interval (two-sided)."""
ALPHA = 1 - CONFIDENCE
"""A comparison is better or worse when its corrected p-value is below this."""


@dataclass(frozen=True)
class Difference:
    """Mean of per-seed differences (aligned - reference) with its t interval.

    Args:
        mean: Mean difference.
        low: Lower end of the CONFIDENCE interval (NaN with one seed).
        high: Upper end.
        p_value: Two-sided p-value of "mean difference is 0" (NaN with one seed;
            0 when every seed differs by the same nonzero amount).
        n: Independent units behind it (seeds).
    """

    mean: float
    low: float
    high: float
    p_value: float
    n: int


def t_bounds(mean: float, sem: float, n: int) -> tuple[float, float]:
    """The CONFIDENCE t interval of a mean with standard error `sem` from `n`
    independent values (n - 1 degrees of freedom); NaN bounds below two values.
    With three seeds t = 4.30."""
    if n < 2 or not (math.isfinite(mean) and math.isfinite(sem)):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sem
    return mean - half, mean + half


def paired_difference(diffs: Sequence[float], n_units: int | None = None) -> Difference:
    """The Student t summary of per-seed differences.

    Args:
        diffs: One difference per seed (or per seed pair).
        n_units: Independent units behind `diffs` when fewer than its length
            (seed pairs: the number of seeds); defaults to len(diffs).
    """
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=float)
    n = len(d) if n_units is None else min(n_units, len(d))
    if len(d) == 0:
        return Difference(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(d.mean())
    if n < 2:
        return Difference(mean, math.nan, math.nan, math.nan, n)
    sem = float(d.std(ddof=1)) / math.sqrt(n)
    if sem == 0:
        p = 1.0 if mean == 0 else 0.0
        return Difference(mean, mean, mean, p, n)
    low, high = t_bounds(mean, sem, n)
    p = float(2 * stats.t.sf(abs(mean) / sem, n - 1))
    return Difference(mean, low, high, p, n)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the CONFIDENCE t interval of a seed mean over the
    finite values (NaN bounds for fewer than two)."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.nan
    return (mean, *t_bounds(mean, sem, len(x)))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN), over one claim's
    comparisons: scipy's `false_discovery_control`."""
    finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    out = [math.nan] * len(p_values)
    if finite:
        adjusted = stats.false_discovery_control([p_values[i] for i in finite])
        for i, q in zip(finite, adjusted):
            out[i] = float(q)
    return out
