"""Matched-L0 pairs: an aligned seed's value against its reference's same seed,
read off the reference seed's own curve at the aligned seed's L0.

Pure functions over the per-run table (`benchmarks.records.run_table.run_frame`). A
reference seed's curve is its points of one metric over the arm's sparsity
values, linear in log L0; it is read up to L0_REL_TOL beyond its end points
(continuing its end segment) and not at all farther out, so a comparison outside
the overlap of the two arms' L0 ranges is "no overlap", not a result.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

L0_REL_TOL = 0.10
"""How far (relative L0) beyond its end points a curve is read. The matched
sweeps calibrate every arm to within 5% (text) or 10% (synthetic) of the same
target L0 on held-out data, so two arms' end points can sit about 10% apart
even when both hit their target; a tighter reach would drop the very points
the calibration made comparable."""


@dataclass(frozen=True)
class SeedCurve:
    """One arm's seed: its L0 and metric value at each sparsity value, by L0."""

    l0: np.ndarray
    value: np.ndarray

    def at(self, l0: float, rel_tol: float = L0_REL_TOL) -> float:
        """The curve at `l0` (NaN outside its range widened by `rel_tol`)."""
        if len(self.l0) == 0 or not (math.isfinite(l0) and l0 > 0):
            return math.nan
        lo, hi = float(self.l0[0]), float(self.l0[-1])
        if l0 < lo / (1 + rel_tol) or l0 > hi * (1 + rel_tol):
            return math.nan
        x, xs = math.log(l0), np.log(self.l0)
        if len(xs) == 1 or lo <= l0 <= hi:
            return float(np.interp(x, xs, self.value))
        # Beyond an end, continue the end segment's slope: reading the end value
        # flat would favour whichever arm sits farther out along a rising curve.
        i = (0, 1) if l0 < lo else (-2, -1)
        (x0, x1), (y0, y1) = xs[list(i)], self.value[list(i)]
        return float(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def seed_curves(arm_runs: pd.DataFrame, metric: str) -> dict[int, SeedCurve]:
    """Seed -> its curve of `metric`, from one arm's runs at one d_sae (rows with
    a finite L0 > 0 and a finite metric)."""
    ok = arm_runs[np.isfinite(arm_runs[metric]) & (arm_runs["l0"] > 0)]
    out = {}
    for seed, runs in ok.groupby("seed"):
        runs = runs.sort_values("l0")
        out[int(seed)] = SeedCurve(runs["l0"].to_numpy(), runs[metric].to_numpy())
    return out


@dataclass(frozen=True)
class SeedPairing:
    """An aligned point's seeds against the reference's same seeds.

    Args:
        sparsity_value: The aligned point's sparsity value.
        l0: Mean L0 of the aligned seeds.
        aligned: Aligned value per paired seed.
        reference: Reference value (its curve at the aligned seed's L0) per seed.
        unpaired: Aligned seeds whose L0 lies outside the reference seed's curve,
            or whose seed the reference lacks.
    """

    sparsity_value: float
    l0: float
    aligned: dict[int, float]
    reference: dict[int, float]
    unpaired: tuple[int, ...]

    @property
    def diffs(self) -> list[float]:
        return [self.aligned[s] - self.reference[s] for s in sorted(self.aligned)]


def pair_at_matched_l0(
    aligned_runs: pd.DataFrame, reference_runs: pd.DataFrame, metric: str
) -> list[SeedPairing]:
    """Each aligned point (sparsity value) with its seeds paired at matched L0.

    Args:
        aligned_runs: The aligned arm's runs at one d_sae.
        reference_runs: The reference arm's runs at the same d_sae.
        metric: A column of both.
    """
    curves = seed_curves(reference_runs, metric)
    ok = aligned_runs[np.isfinite(aligned_runs[metric]) & (aligned_runs["l0"] > 0)]
    out = []
    for value, runs in ok.groupby("sparsity_value"):
        aligned, reference, unpaired = {}, {}, []
        for seed, l0, y in zip(runs["seed"], runs["l0"], runs[metric]):
            curve = curves.get(int(seed))
            ref = curve.at(float(l0)) if curve is not None else math.nan
            if math.isfinite(ref):
                aligned[int(seed)], reference[int(seed)] = float(y), ref
            else:
                unpaired.append(int(seed))
        out.append(
            SeedPairing(
                float(value),
                float(runs["l0"].mean()),
                aligned,
                reference,
                tuple(sorted(unpaired)),
            )
        )
    return out
