"""Verdicts on the paper's claims: pure functions over point summaries
(`benchmarks.pareto`) of evaluation records.

`claim_table` judges each of the paper's claims (docs/method.md) for each
alignment form twice: against the **stock base** (the base architecture as SAELens
starts it) and against the **init control** (the base architecture started from
the aligned form's initial weights and trained without the constraint). The first
asks whether aligned training beats SAELens; the second whether the constraint,
not its starting point, does it. `degenerate_points` lists the collapsed points
every verdict leaves out.

The rules, each stated once here and quoted by the report:

- A curve (one label at one d_sae) takes part only with >= MIN_SEEDS seeds at
  each point it contributes and >= MIN_POINTS such non-degenerate points;
  otherwise the comparison is "insufficient data".
- A point is degenerate when a seed mean crosses a floor of DEGENERATE_FLOORS
  (L2 ratio < 0.3, CE-loss score < 0, explained variance < 0); it is left out of
  both sides and named in the evidence.
- One comparison is better or worse only when the 95% Welch interval of the
  difference of seed means (`difference_interval`) excludes 0; otherwise a tie.
- A claim confirms when every comparison is better, refutes when none is and one
  is worse, is "no difference" when all are ties, mixed otherwise.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from benchmarks import records
from benchmarks.pareto import (
    CONFIDENCE,
    STABILITY,
    PointSummary,
    _on_curve,
    aggregate,
    has_data,
    higher_is_better,
    interpolate_at_l0,
)

ALIGNMENT_FORMS = ("tied", "projected")
MIN_SEEDS = 3
"""Seeds a point needs to take part in a verdict."""
MIN_POINTS = 3
"""Non-degenerate points (each with MIN_SEEDS seeds) a curve needs."""
DEGENERATE_FLOORS: dict[str, float] = {
    "l2_ratio": 0.3,
    "ce_loss_score": 0.0,
    "explained_variance": 0.0,
}
"""A point whose seed mean of one of these metrics is below its floor has
collapsed (e.g. standard ReLU+L1 at l1 128: CE-loss score -0.41, L2 ratio 0.065):
it anchors nothing."""
DEAD_ELIMINATED = 0.01
"""Dead fraction at or below which a seed counts as having no dead features."""
RECONSTRUCTION_METRICS = ("explained_variance", "ce_loss_score")
GROUND_TRUTH_METRICS = ("mcc", "f1")
PARETO_METRICS = RECONSTRUCTION_METRICS + GROUND_TRUTH_METRICS
"""The Pareto claim pools reconstruction with ground truth (synthetic sweeps), so
a synthetic verdict cannot confirm on reconstruction alone."""
DEAD_METRICS = ("dead_fraction_long", "dead_fraction")
"""The first with data judges dead features: the long window when measured."""

CONFIRMS, REFUTES, MIXED = "confirms", "refutes", "mixed"
NO_DIFFERENCE = "no difference"
INSUFFICIENT = "insufficient data"
NO_CONTROL = "no control"
NO_DATA = "no data"
BETTER, WORSE, TIE = "better", "worse", "tie"
STOCK_BASE, INIT_CONTROL = "stock base", "init control"
REFERENCES = (STOCK_BASE, INIT_CONTROL)
# Claim -> (aligned architecture, base architecture) it is restricted to.
COMPOSITIONS: dict[str, tuple[str, str]] = {
    "composes with TopK": ("aligned_topk", "topk"),
    "composes with BatchTopK": ("aligned_batchtopk", "batchtopk"),
    "composes with p-annealing": ("aligned_panneal", "panneal"),
}
ABSORPTION_METRICS = ("absorption_fraction", "absorption_full")
"""SAEBench's absorption eval, lower is better; sweeps run it at one sparsity (its
cost), so its row shows the numbers and stays "insufficient data" until it has
MIN_POINTS sparsities, like every other curve."""
ABSORPTION_CLAIM = "absorption reduced"
PROBING_METRICS = ("sparse_probing_top1", "sae_probes_top1")
"""SAEBench's sparse probing (local multi-class sets, sae-probes datasets): top-1
test accuracy, higher is better; like absorption, run at one sparsity."""
TPP_METRICS = ("tpp_total",)
PROBING_CLAIM, TPP_CLAIM = "sparse probing improved", "TPP improved"
SAME_SPARSITY_CLAIMS: dict[str, tuple[str, ...]] = {
    ABSORPTION_CLAIM: ABSORPTION_METRICS,
    PROBING_CLAIM: PROBING_METRICS,
    TPP_CLAIM: TPP_METRICS,
}
"""Claims on evals that sweeps run at chosen sparsities only (their cost): each
aligned point against its reference at the same sparsity."""
CLAIMS = (
    "dead features eliminated",
    "reconstruction improved",
    "ground truth improved",
    ABSORPTION_CLAIM,
    PROBING_CLAIM,
    TPP_CLAIM,
    "stability improved",
    "Pareto improvement",
    *COMPOSITIONS,
)
_LISTED = 3
"""Items named in an evidence list before `and N more`."""

PointKey = tuple[str, str, float, int]


# ---------------------------------------------------------------- degenerate points


@dataclass(frozen=True)
class DegeneratePoint:
    """A sweep point with at least one collapsed seed.

    Args:
        label: The arm.
        sparsity_param: `k`, `l1_coefficient`, ...
        sparsity_value: Its value.
        d_sae: Dictionary size.
        n_seeds: Seeds of the point.
        n_degenerate_seeds: Seeds below a floor of DEGENERATE_FLOORS.
        reasons: The floors the seed means cross, e.g. `l2_ratio 0.065 < 0.3`
            (empty when only some seeds cross).
        excluded: Whether the seed means cross a floor: then the point is left
            out of every verdict.
    """

    label: str
    sparsity_param: str
    sparsity_value: float
    d_sae: int
    n_seeds: int
    n_degenerate_seeds: int
    reasons: tuple[str, ...]
    excluded: bool

    @property
    def key(self) -> PointKey:
        return (self.label, self.sparsity_param, self.sparsity_value, self.d_sae)

    def describe(self) -> str:
        why = ", ".join(self.reasons) or (
            f"{self.n_degenerate_seeds}/{self.n_seeds} seeds collapsed"
        )
        return f"{self.label} {self.sparsity_param}={self.sparsity_value:g} ({why})"


def _below_floor(values: dict[str, float]) -> list[str]:
    return [
        f"{name} {values[name]:.3g} < {floor:g}"
        for name, floor in DEGENERATE_FLOORS.items()
        if math.isfinite(values[name]) and values[name] < floor
    ]


def degenerate_points(run_records: Sequence[dict[str, Any]]) -> list[DegeneratePoint]:
    """Every point with a seed below a floor of DEGENERATE_FLOORS, sorted.

    Args:
        run_records: Run records.

    A point is excluded when the seed mean of a floored metric is below the
    floor; a point where only some seeds collapse is listed but kept (its seed
    interval is wide). Metrics a record lacks are not checked.
    """
    by_point: dict[PointKey, list[dict[str, float]]] = defaultdict(list)
    for record in run_records:
        info = records.run_info(record)
        key = (
            info["label"],
            info["sparsity_param"],
            float(info["sparsity_value"]),
            int(info["d_sae"]),
        )
        by_point[key].append(records.flat_metrics(record))
    out = []
    for key, flats in sorted(by_point.items()):
        means = {
            name: _finite_mean([f[name] for f in flats]) for name in DEGENERATE_FLOORS
        }
        reasons = tuple(_below_floor(means))
        n_bad = sum(bool(_below_floor(f)) for f in flats)
        if n_bad or reasons:
            out.append(DegeneratePoint(*key, len(flats), n_bad, reasons, bool(reasons)))
    return out


def _finite_mean(values: Sequence[float]) -> float:
    x = [v for v in values if math.isfinite(v)]
    return float(np.mean(x)) if x else math.nan


# --------------------------------------------------------------------- comparisons


class Estimate(NamedTuple):
    """A seed mean with its standard error and the seeds behind it."""

    mean: float
    sem: float
    n: int


def difference_interval(a: Estimate, b: Estimate) -> tuple[float, float, float]:
    """(a - b, low, high): the CONFIDENCE (95%) Welch interval of a difference of
    means, with Welch-Satterthwaite degrees of freedom; NaN bounds when either
    standard error is unknown (fewer than two seeds)."""
    diff = a.mean - b.mean
    var_a, var_b = a.sem**2, b.sem**2
    if not (math.isfinite(var_a) and math.isfinite(var_b)) or min(a.n, b.n) < 2:
        return diff, math.nan, math.nan
    var = var_a + var_b
    if var == 0:
        return diff, diff, diff
    dof = var**2 / (var_a**2 / (a.n - 1) + var_b**2 / (b.n - 1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) * math.sqrt(var)
    return diff, diff - half, diff + half


@dataclass(frozen=True)
class Comparison:
    """An aligned value against its reference at one place.

    Args:
        metric: The metric compared.
        aligned: Seed mean of the aligned SAE.
        reference: Seed mean of the reference (stock base or init control).
        diff_low: Lower end of the 95% Welch interval of aligned - reference.
        diff_high: Upper end.
        outcome: `better` / `worse` for the aligned SAE when the interval
            excludes 0, else `tie`.
        n_seeds: Fewest seeds on either side.
        aligned_max: Largest aligned seed value, where the aligned side is a
            point (NaN when read off a curve); "dead features eliminated" needs
            it.
    """

    metric: str
    aligned: float
    reference: float
    diff_low: float
    diff_high: float
    outcome: str
    n_seeds: int
    aligned_max: float = math.nan


def compare(metric: str, aligned: Estimate, reference: Estimate) -> Comparison:
    """Aligned against reference by `difference_interval`."""
    _, low, high = difference_interval(aligned, reference)
    higher = higher_is_better(metric) is not False
    outcome = TIE
    if low > 0 or high < 0:  # NaN bounds compare False: a tie
        outcome = BETTER if (low > 0) == higher else WORSE
    n = min(aligned.n, reference.n)
    return Comparison(metric, aligned.mean, reference.mean, low, high, outcome, n)


def _seeds(p: PointSummary) -> int:
    """Seeds behind a point (for stability, n counts seed pairs)."""
    return p.n_seeds if p.metric == STABILITY else p.n


def _estimate(p: PointSummary) -> Estimate:
    return Estimate(p.mean, p.sem, _seeds(p))


def _estimate_at(curve: Sequence[PointSummary], l0: float) -> Estimate:
    """A curve read at `l0` (mean and standard error interpolated alike, NaN
    outside its L0 range), with the fewest seeds of its points."""
    n = min((_seeds(p) for p in curve), default=0)
    return Estimate(
        interpolate_at_l0(curve, l0, "mean"), interpolate_at_l0(curve, l0, "sem"), n
    )


def _count(comparisons: Sequence[Comparison], outcome: str) -> int:
    return sum(c.outcome == outcome for c in comparisons)


def _verdict(comparisons: Sequence[Comparison]) -> str:
    """The general rule: confirms when every comparison is better, refutes when
    none is and one is worse, no difference when all are ties, else mixed."""
    if not comparisons:
        return NO_DATA
    outcomes = {c.outcome for c in comparisons}
    if outcomes == {BETTER}:
        return CONFIRMS
    if BETTER not in outcomes and WORSE in outcomes:
        return REFUTES
    if outcomes == {TIE}:
        return NO_DIFFERENCE
    return MIXED


# -------------------------------------------------------------- curve selection


class _CurvePair(NamedTuple):
    """The usable points of one aligned curve and of one reference curve."""

    aligned: list[PointSummary]
    reference: list[PointSummary]


@dataclass
class _Selection:
    """The aligned curves of a claim, each with its reference, or why not.

    Args:
        pairs: Curves that take part.
        n_aligned: Aligned curves with data for the metric.
        no_reference: Aligned curves without a reference curve.
        insufficient: `curve: why` for pairs with too few seeds or points.
        excluded: Degenerate points left out of these curves.
    """

    pairs: list[_CurvePair] = field(default_factory=list)
    n_aligned: int = 0
    no_reference: list[str] = field(default_factory=list)
    insufficient: list[str] = field(default_factory=list)
    excluded: list[DegeneratePoint] = field(default_factory=list)


def _is_reference(p: PointSummary, aligned: PointSummary, reference: str) -> bool:
    """Whether p belongs to the stock base or init control of `aligned`."""
    if p.alignment is not None or p.architecture != aligned.base_architecture:
        return False
    if p.d_sae != aligned.d_sae:
        return False
    if reference == STOCK_BASE:
        return p.init_from is None
    return p.init_from == aligned.alignment


def _by_curve(
    points: Sequence[PointSummary],
) -> dict[tuple[str, int], list[PointSummary]]:
    out: dict[tuple[str, int], list[PointSummary]] = defaultdict(list)
    for p in points:
        out[(p.label, p.d_sae)].append(p)
    return dict(sorted(out.items()))


def _curve_name(p: PointSummary) -> str:
    return f"{p.label} d{p.d_sae}"


def _usable(
    curve: Sequence[PointSummary], name: str
) -> tuple[list[PointSummary], str | None]:
    """The points with MIN_SEEDS seeds and an L0, sorted by L0; and why the curve
    is insufficient (None when it has MIN_POINTS of them).

    Args:
        curve: The curve's non-degenerate points.
        name: The curve, for the reason.
    """
    kept = sorted(
        (p for p in curve if _seeds(p) >= MIN_SEEDS and _on_curve(p)),
        key=lambda p: p.l0_mean,
    )
    if len(kept) >= MIN_POINTS:
        return kept, None
    few = sorted({_seeds(p) for p in curve if _seeds(p) < MIN_SEEDS})
    seeds = f", points with {few} seeds" if few else ""
    return kept, (
        f"{name}: {len(kept)} usable points (>= {MIN_SEEDS} seeds, not "
        f"degenerate), needs {MIN_POINTS}{seeds}"
    )


class _Data:
    """Point summaries of every metric a claim reads, computed once, and the
    degenerate points they leave out."""

    def __init__(
        self,
        run_records: Sequence[dict[str, Any]],
        stability_records: Sequence[dict[str, Any]],
    ) -> None:
        self.degenerate = degenerate_points(run_records)
        self.gone = {d.key for d in self.degenerate if d.excluded}
        self.dead_metric = next(
            (m for m in DEAD_METRICS if has_data(run_records, m)), DEAD_METRICS[-1]
        )
        self.points: dict[str, list[PointSummary]] = {}
        for metric in (self.dead_metric, *PARETO_METRICS):
            if has_data(run_records, metric):
                self.points[metric] = aggregate(run_records, metric)
        for metric in (m for ms in SAME_SPARSITY_CLAIMS.values() for m in ms):
            if has_data(run_records, metric):
                self.points[metric] = aggregate(run_records, metric)
        stab = aggregate(run_records, STABILITY, stability_records)
        if stab:
            self.points[STABILITY] = stab
        self.chance = _chance_by_point(stability_records)

    def select(
        self, metric: str, form: str, architecture: str | None, reference: str
    ) -> _Selection:
        """The aligned curves of `form` (and `architecture`, if given) for `metric`,
        each paired with its reference curve(s) at the same d_sae; degenerate
        points left out of both sides."""
        sel = _Selection()
        points = self.points.get(metric, [])
        aligned = [
            p
            for p in points
            if p.alignment == form and architecture in (None, p.architecture)
        ]
        for curve in _by_curve(aligned).values():
            sel.n_aligned += 1
            refs = _by_curve(
                [p for p in points if _is_reference(p, curve[0], reference)]
            )
            if not refs:
                sel.no_reference.append(_curve_name(curve[0]))
                continue
            involved = {curve[0].label} | {label for label, _ in refs}
            sel.excluded += [
                d
                for d in self.degenerate
                if d.excluded and d.label in involved and d.d_sae == curve[0].d_sae
            ]
            for ref in refs.values():
                a, a_why = _usable(self._kept(curve), _curve_name(curve[0]))
                r, r_why = _usable(self._kept(ref), _curve_name(ref[0]))
                whys = [w for w in (a_why, r_why) if w]
                if whys:
                    sel.insufficient += whys
                else:
                    sel.pairs.append(_CurvePair(a, r))
        sel.excluded = sorted(set(sel.excluded), key=lambda d: d.key)
        sel.insufficient = sorted(set(sel.insufficient))
        return sel

    def _kept(self, curve: Sequence[PointSummary]) -> list[PointSummary]:
        return [p for p in curve if p.key not in self.gone]


def _chance_by_point(
    stability_records: Sequence[dict[str, Any]],
) -> dict[PointKey, float]:
    """Chance shared fraction (decoder criterion, untrained pair) per point."""
    out = {}
    for record in stability_records:
        value = record["eval_result_metrics"]["stability"].get(
            "chance_shared_fraction_decoder"
        )
        info = record["eval_config"]["point"]
        if value is not None:
            key = (
                info["label"],
                info["sparsity_param"],
                float(info["sparsity_value"]),
                int(info["d_sae"]),
            )
            out[key] = float(value)
    return out


# ------------------------------------------------------------------- the claims


class _MetricResult(NamedTuple):
    """One metric's comparisons for one claim, form and reference."""

    metric: str
    selection: _Selection
    comparisons: list[Comparison]
    outside: int
    """Points that fell outside the other curve's L0 range (not compared)."""
    few: list[str]
    """Curve pairs with fewer than MIN_POINTS comparable points (left out)."""


class _Claim(NamedTuple):
    verdict: str
    evidence: str
    comparisons: list[Comparison]

    @property
    def counts(self) -> str:
        n, better = len(self.comparisons), _count(self.comparisons, BETTER)
        return f"{better}/{n} better, {_count(self.comparisons, WORSE)} worse"


# (curve pair, metric) -> (comparisons, points outside the other's L0 range)
_Comparer = Callable[[_CurvePair, str], tuple[list[Comparison], int]]


def _at_same_sparsity(pair: _CurvePair, metric: str) -> tuple[list[Comparison], int]:
    """Each aligned point against the reference point at the same sparsity value;
    a tie when both seed means are at most DEAD_ELIMINATED."""
    ref = {(p.sparsity_param, p.sparsity_value): p for p in pair.reference}
    out = []
    for a in pair.aligned:
        r = ref.get((a.sparsity_param, a.sparsity_value))
        if r is None:
            continue
        c = replace(compare(metric, _estimate(a), _estimate(r)), aligned_max=a.max)
        if max(a.mean, r.mean) <= DEAD_ELIMINATED:
            c = replace(c, outcome=TIE)
        out.append(c)
    return out, len(pair.aligned) - len(out)


def _at_aligned_l0(pair: _CurvePair, metric: str) -> tuple[list[Comparison], int]:
    """Each aligned point against the reference curve read at the point's L0."""
    out, outside = [], 0
    for a in pair.aligned:
        ref = _estimate_at(pair.reference, a.l0_mean)
        if math.isfinite(ref.mean) and math.isfinite(ref.sem):
            out.append(compare(metric, _estimate(a), ref))
        else:
            outside += 1
    return out, outside


def _both_ways(pair: _CurvePair, metric: str) -> tuple[list[Comparison], int]:
    """`_at_aligned_l0`, plus each reference point against the aligned curve read
    at the reference point's L0."""
    out, outside = _at_aligned_l0(pair, metric)
    for r in pair.reference:
        aligned = _estimate_at(pair.aligned, r.l0_mean)
        if math.isfinite(aligned.mean) and math.isfinite(aligned.sem):
            out.append(compare(metric, aligned, _estimate(r)))
        else:
            outside += 1
    return out, outside


def _judge_metric(
    data: _Data,
    metric: str,
    form: str,
    architecture: str | None,
    reference: str,
    comparer: _Comparer,
) -> _MetricResult:
    """The comparisons of every curve pair with at least MIN_POINTS of them."""
    sel = data.select(metric, form, architecture, reference)
    comparisons, outside, few = [], 0, []
    for pair in sel.pairs:
        found, out = comparer(pair, metric)
        outside += out
        if len(found) < MIN_POINTS:
            few.append(
                f"{_curve_name(pair.aligned[0])} vs {_curve_name(pair.reference[0])}: "
                f"{len(found)} comparable points"
            )
        else:
            comparisons += found
    return _MetricResult(metric, sel, comparisons, outside, few)


def _status(results: Sequence[_MetricResult], reference: str) -> str:
    """The verdict when nothing could be compared."""
    if not any(r.selection.n_aligned for r in results):
        return NO_DATA
    if any(r.selection.insufficient or r.few for r in results):
        return INSUFFICIENT
    if reference == INIT_CONTROL and any(r.selection.no_reference for r in results):
        return NO_CONTROL
    return NO_DATA


def _listing(items: Sequence[str]) -> str:
    shown = "; ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _notes(results: Sequence[_MetricResult], reference: str) -> list[str]:
    """What was not compared, and why."""
    no_ref = sorted({c for r in results for c in r.selection.no_reference})
    short = sorted({w for r in results for w in r.selection.insufficient + r.few})
    gone = sorted(
        {d for r in results for d in r.selection.excluded}, key=lambda d: d.key
    )
    notes = []
    if no_ref:
        notes.append(f"no {reference} for {_listing(no_ref)}")
    if short:
        notes.append(f"insufficient data: {_listing(short)}")
    if gone:
        notes.append(
            f"{len(gone)} degenerate point{'s' if len(gone) != 1 else ''} left out: "
            + _listing([d.describe() for d in gone])
        )
    return notes


def _seeds_text(comparisons: Sequence[Comparison]) -> str:
    seeds = sorted({c.n_seeds for c in comparisons})
    span = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return f"{span} seeds"


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _words(metric: str) -> tuple[str, str]:
    """(better, worse) in words for a metric."""
    higher = higher_is_better(metric) is not False
    return ("higher", "lower") if higher else ("lower", "higher")


def _name(metric: str) -> str:
    return "shared fraction" if metric == STABILITY else metric


def _matched_text(result: _MetricResult, reference: str) -> str:
    cs = result.comparisons
    good, bad = _words(result.metric)
    text = (
        f"{_name(result.metric)} {_mean([c.aligned for c in cs]):.3f} vs "
        f"{_mean([c.reference for c in cs]):.3f} ({reference} at matched L0), "
        f"{_count(cs, BETTER)}/{len(cs)} points {good}, {_count(cs, WORSE)} {bad}"
    )
    if result.outside:
        text += f", {result.outside} outside the {reference} L0 range"
    return text


def _dead_text(result: _MetricResult, reference: str) -> str:
    cs = result.comparisons
    eliminated = sum(c.aligned_max <= DEAD_ELIMINATED for c in cs)
    return (
        f"{result.metric} {_mean([c.aligned for c in cs]):.3f} vs "
        f"{_mean([c.reference for c in cs]):.3f} ({reference}) at the same "
        f"sparsity, {_count(cs, BETTER)}/{len(cs)} points lower, "
        f"{_count(cs, WORSE)} higher; every seed <= {DEAD_ELIMINATED:.0%} dead at "
        f"{eliminated}/{len(cs)}"
    )


def _pareto_text(result: _MetricResult, reference: str) -> str:
    cs = result.comparisons
    return (
        f"{result.metric}: {_count(cs, BETTER)}/{len(cs)} comparisons (aligned "
        f"points on the {reference} curve and back) favour aligned, "
        f"{_count(cs, WORSE)} favour the {reference}"
    )


def _dead_verdict(comparisons: Sequence[Comparison]) -> str:
    """Confirms: none worse, one better, every seed of every aligned point at most
    DEAD_ELIMINATED dead. Refutes: none better, and one worse or no aligned point
    eliminated. No difference: all ties with every aligned point eliminated
    (nothing to eliminate). Mixed otherwise."""
    better, worse = _count(comparisons, BETTER), _count(comparisons, WORSE)
    eliminated = sum(c.aligned_max <= DEAD_ELIMINATED for c in comparisons)
    if worse == 0 and better > 0 and eliminated == len(comparisons):
        return CONFIRMS
    if better == 0 and (worse > 0 or eliminated == 0):
        return REFUTES
    if better == worse == 0:
        return NO_DIFFERENCE
    return MIXED


def _claim(
    data: _Data,
    metrics: Sequence[str],
    form: str,
    architecture: str | None,
    reference: str,
    comparer: _Comparer,
    text: Callable[[_MetricResult, str], str],
    verdict: Callable[[Sequence[Comparison]], str] = _verdict,
) -> _Claim:
    """One claim against one reference: the comparisons of every metric pooled,
    judged by `verdict`; the evidence states each metric's numbers, the seeds,
    and what was left out."""
    results = [
        _judge_metric(data, m, form, architecture, reference, comparer)
        for m in metrics
        if m in data.points
    ]
    pooled = [c for r in results for c in r.comparisons]
    notes = _notes(results, reference)
    if not pooled:
        status = _status(results, reference)
        head = "no aligned points" if status == NO_DATA else "nothing compared"
        if not results:
            head = f"no data for {', '.join(metrics)}"
        return _Claim(status, "; ".join([head, *notes]), [])
    texts = [text(r, reference) for r in results if r.comparisons]
    return _Claim(
        verdict(pooled), "; ".join([*texts, _seeds_text(pooled), *notes]), pooled
    )


def _stability_text(data: _Data) -> Callable[[_MetricResult, str], str]:
    """`_matched_text` plus the chance baseline of the compared points."""

    def text(result: _MetricResult, reference: str) -> str:
        base = _matched_text(result, reference)
        keys = {
            p.key
            for pair in result.selection.pairs
            for p in pair.aligned + pair.reference
        }
        chance = [data.chance[k] for k in keys if k in data.chance]
        if chance:
            base += f" (chance, untrained pair, all latents: {_mean(chance):.3f})"
        return base

    return text


def _claims_for(
    data: _Data, form: str, architecture: str | None, reference: str
) -> dict[str, _Claim]:
    args = (form, architecture, reference)
    return {
        "dead features eliminated": _claim(
            data,
            (data.dead_metric,),
            *args,
            _at_same_sparsity,
            _dead_text,
            _dead_verdict,
        ),
        "reconstruction improved": _claim(
            data, RECONSTRUCTION_METRICS, *args, _at_aligned_l0, _matched_text
        ),
        "ground truth improved": _claim(
            data, GROUND_TRUTH_METRICS, *args, _at_aligned_l0, _matched_text
        ),
        "stability improved": _claim(
            data, (STABILITY,), *args, _at_aligned_l0, _stability_text(data)
        ),
        "Pareto improvement": _claim(
            data, PARETO_METRICS, *args, _both_ways, _pareto_text
        ),
    }


def _same_sparsity_claim(
    data: _Data, form: str, reference: str, metrics: Sequence[str], what: str
) -> _Claim:
    """Each aligned point with `metrics` measured against its reference at the
    same sparsity; judged like every claim once MIN_POINTS sparsities per pair
    exist, else "insufficient data" with the numbers."""
    texts, comparisons, sparsities = [], [], set()
    for metric in metrics:
        points = data.points.get(metric, [])
        for a in points:
            if a.alignment != form or _seeds(a) < MIN_SEEDS:
                continue
            for r in points:
                same = (r.sparsity_param, r.sparsity_value) == (
                    a.sparsity_param,
                    a.sparsity_value,
                )
                if not (same and _is_reference(r, a, reference)):
                    continue
                if _seeds(r) < MIN_SEEDS:
                    continue
                c = compare(metric, _estimate(a), _estimate(r))
                comparisons.append(c)
                sparsities.add((a.label, r.label, a.sparsity_value))
                texts.append(
                    f"{metric} {c.aligned:.3f} vs {c.reference:.3f} ({a.label} vs "
                    f"{r.label}, {a.sparsity_param}={a.sparsity_value:g}; 95% "
                    f"interval of the difference [{c.diff_low:+.3f}, "
                    f"{c.diff_high:+.3f}], {c.outcome})"
                )
    if not comparisons:
        has_aligned = any(
            p.alignment == form for m in metrics for p in data.points.get(m, [])
        )
        status = NO_CONTROL if has_aligned and reference == INIT_CONTROL else NO_DATA
        return _Claim(status, f"no {what} records for {reference} pairs", [])
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for aligned_label, reference_label, _ in sparsities:
        per_pair[(aligned_label, reference_label)] += 1
    enough = min(per_pair.values()) >= MIN_POINTS
    texts.append(_seeds_text(comparisons))
    if not enough:
        texts.append(
            f"insufficient data: {min(per_pair.values())} sparsity point(s) per "
            f"pair, the verdict needs {MIN_POINTS}"
        )
        return _Claim(INSUFFICIENT, "; ".join(texts), [])
    return _Claim(_verdict(comparisons), "; ".join(texts), comparisons)


def compose_verdict(verdicts: Sequence[str]) -> str:
    """A "composes with X" row from its sub-claims' verdicts: confirms when at
    least one confirms and none refutes; refutes when at least one refutes and
    none confirms; mixed when both, or when every judged one is mixed or no
    difference (no difference when all judged ones are); without judged
    sub-claims, insufficient data / no control / no data, in that order."""
    judged = [v for v in verdicts if v in (CONFIRMS, REFUTES, MIXED, NO_DIFFERENCE)]
    if CONFIRMS in judged and REFUTES not in judged:
        return CONFIRMS
    if REFUTES in judged and CONFIRMS not in judged:
        return REFUTES
    if judged:
        return NO_DIFFERENCE if set(judged) == {NO_DIFFERENCE} else MIXED
    for status in (INSUFFICIENT, NO_CONTROL):
        if status in verdicts:
            return status
    return NO_DATA


@dataclass(frozen=True)
class ClaimRow:
    """One claim for one alignment form, judged against both references.

    Args:
        claim: The claim (see CLAIMS).
        alignment: `tied` or `projected`.
        verdict_base: Against the stock base: `confirms`, `refutes`, `mixed`,
            `no difference`, `insufficient data` or `no data`.
        evidence_base: The numbers behind it.
        verdict_control: Against the init control; the same verdicts, or
            `no control` when the sweep has no init control for the arm.
        evidence_control: The numbers behind it.
        n_comparisons_base: Comparisons behind verdict_base.
        n_comparisons_control: Comparisons behind verdict_control.
    """

    claim: str
    alignment: str
    verdict_base: str
    evidence_base: str
    verdict_control: str
    evidence_control: str
    n_comparisons_base: int
    n_comparisons_control: int


def _composition(
    data: _Data, form: str, aligned_arch: str, base_arch: str, reference: str
) -> _Claim:
    sub = _claims_for(data, form, aligned_arch, reference)
    verdict = compose_verdict([c.verdict for c in sub.values()])
    judged = [
        f"{name} {c.verdict} ({c.counts})" for name, c in sub.items() if c.comparisons
    ]
    evidence = f"{aligned_arch} vs {base_arch} ({reference}): " + (
        "; ".join(judged) if judged else next(iter(sub.values())).evidence
    )
    comparisons = [c for claim in sub.values() for c in claim.comparisons]
    return _Claim(verdict, evidence, comparisons)


def claim_table(
    run_records: Sequence[dict[str, Any]],
    stability_records: Sequence[dict[str, Any]] = (),
) -> list[ClaimRow]:
    """A verdict on each of the paper's claims, for each alignment form, against
    the stock base and against the init control.

    Args:
        run_records: The main runs (each arm at its chosen learning rate).
        stability_records: Their stability records.

    An aligned arm (alignment f, architecture A) is compared with runs of
    `base_architecture(A)` at the same d_sae: the stock base (alignment and
    init_from None) and the init control (init_from f). The module docstring
    gives the shared rules (seeds, points, degenerate points, intervals). Claims:

    - dead features eliminated: `dead_fraction_long` where recorded, else
      `dead_fraction`, at the same sparsity value; see `_dead_verdict`.
    - reconstruction improved: explained_variance and ce_loss_score (those
      recorded), the reference curve read at each aligned point's L0.
    - ground truth improved: MCC and F1 (synthetic sweeps), likewise.
    - absorption reduced: SAEBench's mean absorption fraction and full-absorption
      score at the same sparsity (see `_same_sparsity_claim`).
    - sparse probing improved: top-1 test accuracy of SAEBench's sparse probing
      (local sets) and of sae-probes, at the same sparsity.
    - TPP improved: SAEBench's TPP score (local sets), at the same sparsity.
    - stability improved: shared fraction (decoder criterion, alive latents) at
      matched L0; the evidence adds the chance baseline.
    - Pareto improvement: explained_variance, ce_loss_score, MCC and F1 pooled,
      curves compared both ways (aligned points on the reference curve and
      reference points on the aligned curve).
    - composes with TopK / BatchTopK / p-annealing: the five claims restricted to
      that architecture pair; see `compose_verdict`.

    A curve pair with fewer than MIN_POINTS comparable points is left out; a
    claim with no pair left is "insufficient data". The first five pool every
    aligned architecture.
    """
    data = _Data(list(run_records), list(stability_records))
    rows = []
    for form in ALIGNMENT_FORMS:
        by_ref = {ref: _claims_for(data, form, None, ref) for ref in REFERENCES}
        for ref in REFERENCES:
            for claim, metrics in SAME_SPARSITY_CLAIMS.items():
                what = claim.removesuffix(" reduced").removesuffix(" improved")
                by_ref[ref][claim] = _same_sparsity_claim(
                    data, form, ref, metrics, what
                )
        for claim in CLAIMS:
            if claim in by_ref[STOCK_BASE]:
                rows.append(_row(claim, form, *(by_ref[r][claim] for r in REFERENCES)))
        for claim, (aligned_arch, base_arch) in COMPOSITIONS.items():
            base, control = (
                _composition(data, form, aligned_arch, base_arch, ref)
                for ref in REFERENCES
            )
            rows.append(_row(claim, form, base, control))
    return rows


def _row(claim: str, form: str, base: _Claim, control: _Claim) -> ClaimRow:
    return ClaimRow(
        claim=claim,
        alignment=form,
        verdict_base=base.verdict,
        evidence_base=base.evidence,
        verdict_control=control.verdict,
        evidence_control=control.evidence,
        n_comparisons_base=len(base.comparisons),
        n_comparisons_control=len(control.comparisons),
    )
