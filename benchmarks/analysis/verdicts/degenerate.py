"""Collapsed sweep points: a point whose seed mean crosses a floor of
DEGENERATE_FLOORS anchors nothing and is left out of both sides of every verdict.
"""

import math
from dataclasses import dataclass

import pandas as pd

from benchmarks.records.run_table import PointKey

DEGENERATE_FLOORS: dict[str, float] = {
    "l2_ratio": 0.3,
    "ce_loss_score": 0.0,
    "explained_variance": 0.0,
}
"""A point whose seed mean of one of these is below its floor has collapsed (e.g.
standard ReLU+L1 at l1 128: CE-loss score -0.41, L2 ratio 0.065). Explained
variance about the mean below 0: worse than reconstructing every token as the
mean activation."""


@dataclass(frozen=True)
class DegeneratePoint:
    """A sweep point with at least one collapsed seed.

    Args:
        point: The sweep point.
        n_seeds: Seeds of the point.
        n_degenerate_seeds: Seeds below a floor.
        reasons: The floors the seed means cross, e.g. `l2_ratio 0.065 < 0.3`
            (empty when only some seeds cross).
    """

    point: PointKey
    n_seeds: int
    n_degenerate_seeds: int
    reasons: tuple[str, ...]

    @property
    def excluded(self) -> bool:
        """Whether the seed means cross a floor: then the point is left out."""
        return bool(self.reasons)

    def describe(self) -> str:
        why = ", ".join(self.reasons) or (
            f"{self.n_degenerate_seeds}/{self.n_seeds} seeds collapsed"
        )
        return f"{self.point.label} {self.point.sparsity_param}={self.point.sparsity_value:g} ({why})"


def _below(values: pd.Series) -> list[str]:
    return [
        f"{name} {values[name]:.3g} < {floor:g}"
        for name, floor in DEGENERATE_FLOORS.items()
        if math.isfinite(values[name]) and values[name] < floor
    ]


def degenerate_points(frame: pd.DataFrame) -> list[DegeneratePoint]:
    """Every point of the per-run table with a seed below a floor, sorted."""
    out = []
    keys = ["label", "sparsity_param", "sparsity_value", "d_sae"]
    for key, runs in frame.groupby(keys, sort=True):
        means = runs[list(DEGENERATE_FLOORS)].mean(skipna=True)
        reasons = tuple(_below(means))
        n_bad = sum(bool(_below(row)) for _, row in runs.iterrows())
        if n_bad or reasons:
            point = PointKey(str(key[0]), str(key[1]), float(key[2]), int(key[3]))
            out.append(DegeneratePoint(point, len(runs), n_bad, reasons))
    return out
