"""Which sparsity coefficient gives a target L0: the search rule, as pure functions.

An L1-family arm (standard, gated, p-annealing, JumpReLU and their aligned forms)
sets its sparsity with a coefficient whose effect on L0 differs by architecture,
alignment form, initialisation and learning rate. Curves are compared at matched
L0, so each arm's coefficient is searched for separately, per target L0, from
one-seed trial runs scored on the validation split
(`benchmarks.sweeps.calibration` runs them).

**The search.** L0 falls as the coefficient grows, roughly as a power of it, so
the search works on log coefficient against log L0:
- a trial within `tolerance` of the target (relative, |L0/target - 1|) ends it;
- trials on both sides bracket it: the next coefficient is the log-log secant
  between the nearest trial on each side, kept off the bracket's ends
  (`BRACKET_MARGIN`), so a curved response cannot stall the search at one end;
- trials on one side only: a step along the slope of the two trials nearest the
  target (`DEFAULT_SLOPE` from one trial), at most a factor `MAX_STEP`.
A collapsed trial (L0 near 0) counts as `L0_FLOOR`, so it still brackets.

**A rate's score at matched L0.** The metric interpolated at the target L0,
linearly in log L0, between the nearest trials on each side; with trials on one
side only, the trial within tolerance (`score_at_l0`).
"""

import math
from dataclasses import dataclass

DEFAULT_SLOPE = -1.3
"""d log L0 / d log coefficient before two trials measure it: the calibrations of
benchmarks/configs/synthetic_cpu.yaml give -0.75 to -1.7 for every L1 base."""

MAX_STEP = 8.0
"""The largest factor one extrapolated step moves the coefficient."""

BRACKET_MARGIN = 0.1
"""A bracketed step stays this fraction of the bracket's log width off its ends."""

L0_FLOOR = 0.1
"""The L0 a collapsed trial counts as (its log must be finite)."""

SIGNIFICANT_DIGITS = 3
"""Coefficients are rounded to this many digits: they name runs (`RunSpec.run_id`)."""


@dataclass(frozen=True)
class Trial:
    """One trial run of an arm at one learning rate.

    Args:
        coefficient: Its sparsity coefficient.
        l0: The L0 it reached on the validation split.
        score: Its rate-choosing metric (`SweepConfig.lr_metric`) there.
    """

    coefficient: float
    l0: float
    score: float = math.nan

    @property
    def log_l0(self) -> float:
        return math.log(max(self.l0, L0_FLOOR))


@dataclass(frozen=True)
class SearchState:
    """Where one (arm, rate, target L0) search stands.

    Args:
        done: A trial within tolerance exists (`found` is it), or the search
            cannot go on (`why` says so).
        next_coefficient: The coefficient to try next; None when done.
        found: The trial nearest the target within tolerance, if any.
        why: Why a search ended without reaching the target, else "".
    """

    done: bool
    next_coefficient: float | None = None
    found: Trial | None = None
    why: str = ""


def round_coefficient(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def within(l0: float, target: float, tolerance: float) -> bool:
    return abs(l0 / target - 1) <= tolerance


def nearest(trials: list[Trial], target: float) -> Trial:
    """The trial whose L0 is nearest `target` in log."""
    return min(trials, key=lambda t: abs(t.log_l0 - math.log(target)))


def search_step(
    trials: list[Trial],
    target: float,
    tolerance: float,
    start: float,
    max_trials: int,
) -> SearchState:
    """The next step of the search for `target` given the arm's `trials` at one
    rate (module docstring); `start` is the first coefficient to try."""
    hits = [t for t in trials if within(t.l0, target, tolerance)]
    if hits:
        return SearchState(done=True, found=nearest(hits, target))
    if not trials:
        return SearchState(done=False, next_coefficient=round_coefficient(start))
    if len(trials) >= max_trials:
        closest = nearest(trials, target)
        return SearchState(
            done=True,
            why=f"{len(trials)} trials reached L0 {closest.l0:.3g} at best "
            f"(coefficient {closest.coefficient:g}), not within {tolerance:.0%}",
        )
    goal = math.log(target)
    dense = [t for t in trials if t.log_l0 > goal]
    sparse = [t for t in trials if t.log_l0 < goal]
    if dense and sparse:
        low = max(dense, key=lambda t: t.coefficient)
        high = min(sparse, key=lambda t: t.coefficient)
        guess = _bracketed(low, high, goal)
    else:
        guess = _extrapolated(trials, goal)
    coefficient = round_coefficient(math.exp(guess))
    if any(math.isclose(coefficient, t.coefficient) for t in trials):
        closest = nearest(trials, target)
        return SearchState(
            done=True,
            why=f"L0 jumps past {target:g} between coefficients "
            f"{SIGNIFICANT_DIGITS} digits apart (nearest L0 {closest.l0:.3g} at "
            f"{closest.coefficient:g})",
        )
    return SearchState(done=False, next_coefficient=coefficient)


def _bracketed(low: Trial, high: Trial, goal: float) -> float:
    """Log coefficient of the log-log secant between the densest-side trial `low`
    and the sparsest-side trial `high`, kept off the bracket's ends."""
    a, b = math.log(low.coefficient), math.log(high.coefficient)
    if a >= b:  # L0 not monotone in the coefficient here: split the difference
        return (a + b) / 2
    fraction = (low.log_l0 - goal) / (low.log_l0 - high.log_l0)
    fraction = min(max(fraction, BRACKET_MARGIN), 1 - BRACKET_MARGIN)
    return a + fraction * (b - a)


def _extrapolated(trials: list[Trial], goal: float) -> float:
    """Log coefficient one slope step from the trial nearest the goal."""
    # Nearest first; among equals (collapsed trials all count as L0_FLOOR) the
    # one furthest toward the goal, so the search keeps moving.
    toward = 1.0 if goal > trials[0].log_l0 else -1.0
    ordered = sorted(
        trials, key=lambda t: (abs(t.log_l0 - goal), toward * t.coefficient)
    )
    first = ordered[0]
    slope = DEFAULT_SLOPE
    measured = [t for t in ordered[1:] if t.l0 > L0_FLOOR]
    for other in measured if first.l0 > L0_FLOOR else []:
        run = math.log(other.coefficient) - math.log(first.coefficient)
        if abs(run) > 1e-9 and abs(other.log_l0 - first.log_l0) > 1e-9:
            # A flat or rising measured slope would send the step anywhere.
            slope = min(max((other.log_l0 - first.log_l0) / run, -4.0), -0.3)
            break
    step = (goal - first.log_l0) / slope
    limit = math.log(MAX_STEP)
    return math.log(first.coefficient) + min(max(step, -limit), limit)


def score_at_l0(trials: list[Trial], target: float, tolerance: float) -> float:
    """The arm's score at `target` L0 (module docstring); NaN when no trial
    brackets the target or lies within tolerance."""
    goal = math.log(target)
    scored = [t for t in trials if math.isfinite(t.score)]
    dense = [t for t in scored if t.log_l0 >= goal]
    sparse = [t for t in scored if t.log_l0 < goal]
    if dense and sparse:
        a = min(dense, key=lambda t: t.log_l0)
        b = max(sparse, key=lambda t: t.log_l0)
        if math.isclose(a.log_l0, b.log_l0):
            return a.score
        fraction = (a.log_l0 - goal) / (a.log_l0 - b.log_l0)
        return a.score + fraction * (b.score - a.score)
    hits = [t for t in scored if within(t.l0, target, tolerance)]
    return nearest(hits, target).score if hits else math.nan
