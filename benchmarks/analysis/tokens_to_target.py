"""Tokens to target: how many training tokens each arm needs to reach the stock
arm's final score, read off its learning-curve checkpoints. It is the compute a
user saves by choosing the arm (or does not: "not reached").

For each dictionary size and sparsity value, the target is the stock arm's final
`metric` (its seed mean at its last step). Each seed of each arm is a curve of
the metric against tokens seen (its checkpoints and its final SAE); it reaches
the target where the curve first crosses it, linear in log tokens between the
two checkpoints around the crossing. A seed already at the target at its first
checkpoint is counted there (an upper bound: the curve is not measured
earlier). A seed that never gets there is "not reached". Seeds combine as a
geometric mean with its t interval (in log tokens): a ratio of budgets is what
the number is read as.

Pure: the run table of checkpoints and final runs
(`SweepRecords.checkpoint_frame`) in, numbers out.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.analysis.curves import Interval, t_interval

TARGET_METRIC = "ce_loss_score"
"""The score the targets are set on (higher is better)."""


def _stock_rows(frame: pd.DataFrame) -> pd.Series:
    stock = frame["alignment"].isna() & frame["init_from"].isna()
    if "b_dec_init" in frame:
        stock &= frame["b_dec_init"].isna()
    return stock


def first_crossing(tokens: np.ndarray, values: np.ndarray, target: float) -> float:
    """Tokens where a curve (sorted by tokens) first reaches `target`, linear in
    log tokens between checkpoints; its first tokens if it starts there; NaN if
    it never does."""
    for i, (t, v) in enumerate(zip(tokens, values)):
        if v < target:
            continue
        if i == 0:
            return float(t)
        t0, v0 = float(tokens[i - 1]), float(values[i - 1])
        share = (target - v0) / (v - v0)
        return float(math.exp(math.log(t0) + share * (math.log(t) - math.log(t0))))
    return math.nan


@dataclass(frozen=True)
class TokensToTarget:
    """One arm's tokens to reach the stock arm's final score at one point.

    Args:
        label: The arm.
        d_sae: Dictionary size.
        sparsity_value: The point's sparsity value (k).
        target: The stock arm's final seed-mean score.
        budget: Tokens each run trained on.
        seeds: Seed -> tokens to the target (NaN: not reached).
    """

    label: str
    d_sae: int
    sparsity_value: float
    target: float
    budget: float
    seeds: dict[int, float]

    @property
    def reached(self) -> list[float]:
        return [t for t in self.seeds.values() if math.isfinite(t)]

    def interval(self) -> Interval:
        """Geometric seed mean of the seeds that reached the target, with its t
        interval (NaN when none did)."""
        logs = t_interval(math.log(t) for t in self.reached)
        return Interval(
            math.exp(logs.mean) if logs.n else math.nan,
            math.exp(logs.low) if math.isfinite(logs.low) else math.nan,
            math.exp(logs.high) if math.isfinite(logs.high) else math.nan,
            logs.n,
        )

    @property
    def text(self) -> str:
        """`1.2M (0.9M-1.6M)`, with `, 2 of 3 seeds` when not every seed
        reached it, or `not reached`."""
        if not self.reached:
            return "not reached"
        i = self.interval()
        out = _tokens(i.mean)
        if math.isfinite(i.low):
            out += f" ({_tokens(i.low)}-{_tokens(i.high)})"
        if len(self.reached) < len(self.seeds):
            out += f", {len(self.reached)} of {len(self.seeds)} seeds"
        return out


def _tokens(n: float) -> str:
    return f"{n / 1e6:.2g}M" if n >= 1e5 else f"{n / 1e3:.3g}k"


def tokens_to_target(
    frame: pd.DataFrame, metric: str = TARGET_METRIC
) -> list[TokensToTarget]:
    """Every arm's tokens to the stock arm's final `metric`, per dictionary size
    and sparsity value that has a stock arm with a finite final score."""
    ok = frame[np.isfinite(frame[metric]) & (frame["tokens_seen"] > 0)]
    out = []
    for (d_sae, value), point in ok.groupby(["d_sae", "sparsity_value"]):
        stock = point[_stock_rows(point)]
        if stock.empty:
            continue
        finals = stock.loc[stock.groupby("seed")["tokens_seen"].idxmax()]
        target = float(finals[metric].mean())
        for label, runs in point.groupby("label"):
            seeds = {}
            for seed, curve in runs.groupby("seed"):
                curve = curve.sort_values("tokens_seen")
                seeds[int(seed)] = first_crossing(
                    curve["tokens_seen"].to_numpy(), curve[metric].to_numpy(), target
                )
            out.append(
                TokensToTarget(
                    str(label),
                    int(d_sae),
                    float(value),
                    target,
                    float(runs["tokens_seen"].max()),
                    seeds,
                )
            )
    return out
