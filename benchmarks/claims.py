"""Verdicts on the paper's claims: pure functions over point summaries
(`benchmarks.pareto`) of evaluation records.

`claim_table` gives a verdict on each of the paper's claims (docs/method.md) for
each alignment form, with the numbers behind it.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from benchmarks.pareto import (
    STABILITY,
    PointSummary,
    _on_curve,
    aggregate,
    curves,
    has_data,
    higher_is_better,
    interpolate_at_l0,
)

ALIGNMENT_FORMS = ("tied", "projected")
RECONSTRUCTION_METRICS = ("explained_variance", "ce_loss_score")
DEAD_ELIMINATED = 0.01
"""Dead fraction at or below which a point counts as having no dead features."""
CONFIRMS, REFUTES, MIXED, NO_DATA = "confirms", "refutes", "mixed", "no data"
BETTER, WORSE, TIE = "better", "worse", "tie"
# Claim -> (aligned architecture, base architecture) it is restricted to.
COMPOSITIONS: dict[str, tuple[str, str]] = {
    "composes with TopK": ("aligned_topk", "topk"),
    "composes with BatchTopK": ("aligned_batchtopk", "batchtopk"),
    "composes with p-annealing": ("aligned_panneal", "panneal"),
}
CLAIMS = (
    "dead features eliminated",
    "reconstruction improved",
    "stability improved",
    "Pareto improvement",
    *COMPOSITIONS,
)


@dataclass(frozen=True)
class Comparison:
    """An aligned value against its base at one place.

    Args:
        metric: The metric compared.
        aligned: Seed mean, min, max of the aligned SAE.
        base: Seed mean, min, max of the base architecture.
        outcome: `better` / `worse` for the aligned SAE when the seed ranges
            (min to max) do not overlap, else `tie`.
        n_seeds: Fewest seeds on either side.
    """

    metric: str
    aligned: tuple[float, float, float]
    base: tuple[float, float, float]
    outcome: str
    n_seeds: int


def _compare(
    metric: str,
    aligned: tuple[float, float, float],
    base: tuple[float, float, float],
    n_seeds: int,
) -> Comparison:
    (a, a_lo, a_hi), (b, b_lo, b_hi) = aligned, base
    higher = higher_is_better(metric) is not False
    if a_lo <= b_hi and b_lo <= a_hi:
        outcome = TIE
    else:
        outcome = BETTER if (a > b) == higher else WORSE
    return Comparison(metric, aligned, base, outcome, n_seeds)


def _seeds(p: PointSummary) -> int:
    """Seeds behind a point (for stability, n counts seed pairs)."""
    return p.n_seeds if p.metric == STABILITY else p.n


def _bounds(p: PointSummary) -> tuple[float, float, float]:
    return (p.mean, p.min, p.max)


def _curve_bounds(
    curve: Sequence[PointSummary], l0: float
) -> tuple[float, float, float]:
    return tuple(interpolate_at_l0(curve, l0, attr) for attr in ("mean", "min", "max"))  # type: ignore[return-value]


@dataclass(frozen=True)
class ClaimRow:
    """One claim's verdict for one alignment form.

    Args:
        claim: The claim (see CLAIMS).
        alignment: `tied` or `projected`.
        verdict: `confirms`, `refutes`, `mixed` or `no data`.
        evidence: The numbers behind the verdict.
        n_comparisons: Comparisons behind it (points, or points x metrics).
    """

    claim: str
    alignment: str
    verdict: str
    evidence: str
    n_comparisons: int


class _Claim(NamedTuple):
    verdict: str
    evidence: str
    comparisons: list[Comparison]

    @property
    def counts(self) -> str:
        n, better = len(self.comparisons), _count(self.comparisons, BETTER)
        return f"{better}/{n} better, {_count(self.comparisons, WORSE)} worse"


def _verdict(comparisons: Sequence[Comparison]) -> str:
    """The general rule: confirms when every comparison is better beyond seed
    spread, refutes when none is and at least one is worse, else mixed."""
    if not comparisons:
        return NO_DATA
    outcomes = [c.outcome for c in comparisons]
    if all(o == BETTER for o in outcomes):
        return CONFIRMS
    if BETTER not in outcomes and WORSE in outcomes:
        return REFUTES
    return MIXED


def _count(comparisons: Sequence[Comparison], outcome: str) -> int:
    return sum(c.outcome == outcome for c in comparisons)


def _seeds_text(comparisons: Sequence[Comparison]) -> str:
    seeds = sorted({c.n_seeds for c in comparisons})
    if not seeds:
        return ""
    span = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return f"{span} seed{'s' if seeds[-1] != 1 else ''}"


def _mean(values: Iterable[float]) -> float:
    return float(np.mean(list(values)))


def _words(higher: bool) -> str:
    return "higher" if higher else "lower"


class _Data:
    """Point summaries of every metric a claim reads, computed once."""

    def __init__(
        self,
        run_records: Sequence[dict[str, Any]],
        stability_records: Sequence[dict[str, Any]],
    ) -> None:
        self.points: dict[str, list[PointSummary]] = {}
        for metric in ("dead_fraction", *RECONSTRUCTION_METRICS):
            if has_data(run_records, metric):
                self.points[metric] = aggregate(run_records, metric)
        stab = aggregate(run_records, STABILITY, stability_records)
        if stab:
            self.points[STABILITY] = stab

    def aligned(
        self, metric: str, form: str, architecture: str | None
    ) -> list[PointSummary]:
        return [
            p
            for p in self.points.get(metric, [])
            if p.alignment == form and architecture in (None, p.architecture)
        ]

    def base_curve(self, metric: str, aligned: PointSummary) -> list[PointSummary]:
        return [
            p
            for p in self.points.get(metric, [])
            if p.alignment is None
            and p.architecture == aligned.base_architecture
            and p.d_sae == aligned.d_sae
        ]


def _dead_claim(data: _Data, form: str, architecture: str | None) -> "_Claim":
    """Dead features eliminated.

    Each aligned point is paired with its base architecture's point at the same
    sparsity value and d_sae. A pair is a tie when the seed ranges of dead
    fraction overlap or both seed means are at most DEAD_ELIMINATED (1%).
    Confirms: no pair worse, at least one better, and every aligned point at most
    1% dead. Refutes: no pair better, and either one worse or every aligned point
    above 1%. Mixed otherwise (e.g. fewer dead latents but not eliminated, or no
    dead latents in the base to eliminate).
    """
    metric = "dead_fraction"
    pairs = []
    for a in data.aligned(metric, form, architecture):
        base = [
            b
            for b in data.base_curve(metric, a)
            if (b.sparsity_param, b.sparsity_value)
            == (a.sparsity_param, a.sparsity_value)
        ]
        if base:
            b = base[0]
            c = _compare(metric, _bounds(a), _bounds(b), min(_seeds(a), _seeds(b)))
            if max(a.mean, b.mean) <= DEAD_ELIMINATED:
                c = Comparison(metric, c.aligned, c.base, TIE, c.n_seeds)
            pairs.append(c)
    if not pairs:
        return _Claim(NO_DATA, "no aligned point with a base at the same sparsity", [])
    better, worse = _count(pairs, BETTER), _count(pairs, WORSE)
    eliminated = sum(c.aligned[0] <= DEAD_ELIMINATED for c in pairs)
    if worse == 0 and better > 0 and eliminated == len(pairs):
        verdict = CONFIRMS
    elif better == 0 and (worse > 0 or eliminated == 0):
        verdict = REFUTES
    else:
        verdict = MIXED
    evidence = (
        f"dead {_mean(c.aligned[0] for c in pairs):.3f} vs "
        f"{_mean(c.base[0] for c in pairs):.3f} (base) at the same sparsity, "
        f"{better}/{len(pairs)} points lower beyond seed spread, {worse} higher; "
        f"<= {DEAD_ELIMINATED:.0%} dead at {eliminated}/{len(pairs)}; "
        f"{_seeds_text(pairs)}"
    )
    return _Claim(verdict, evidence, pairs)


def _matched_l0(
    data: _Data, metric: str, form: str, architecture: str | None
) -> tuple[list[Comparison], int]:
    """Each aligned point against its base curve read at the point's L0; also the
    number of aligned points outside the base curve's L0 range."""
    comparisons, outside = [], 0
    for a in data.aligned(metric, form, architecture):
        curve = data.base_curve(metric, a)
        base = _curve_bounds(curve, a.l0_mean)
        if not all(math.isfinite(v) for v in base):
            outside += 1
            continue
        n_base = min((_seeds(p) for p in curve), default=0)
        comparisons.append(_compare(metric, _bounds(a), base, min(_seeds(a), n_base)))
    return comparisons, outside


def _matched_text(metric: str, comparisons: Sequence[Comparison], outside: int) -> str:
    higher = higher_is_better(metric) is not False
    name = "shared fraction" if metric == STABILITY else metric
    text = f"{name}: no aligned point within the base L0 range"
    if comparisons:
        a = _mean(c.aligned[0] for c in comparisons)
        b = _mean(c.base[0] for c in comparisons)
        text = (
            f"{name} {a:.3f} vs {b:.3f} (base at matched L0), "
            f"{_count(comparisons, BETTER)}/{len(comparisons)} points "
            f"{_words(higher)} beyond seed spread, "
            f"{_count(comparisons, WORSE)} {_words(not higher)}"
        )
    if outside:
        text += f", {outside} outside the base L0 range"
    return text


def _matched_claim(
    data: _Data, metrics: Sequence[str], form: str, architecture: str | None
) -> "_Claim":
    """Reconstruction improved / stability improved.

    Each aligned point's seed mean and range are compared with its base
    architecture's curve (same d_sae) read at the aligned point's seed-mean L0
    (`interpolate_at_l0` of the base's seed means, mins and maxes); points outside
    the base's L0 range are counted, not compared. The comparisons of every metric
    (explained_variance and ce_loss_score where recorded; the shared fraction for
    stability) are pooled under the general rule: confirms when every comparison
    is better beyond seed spread, refutes when none is and one is worse, mixed
    otherwise.
    """
    pooled, texts = [], []
    for metric in metrics:
        if metric not in data.points:
            continue
        comparisons, outside = _matched_l0(data, metric, form, architecture)
        if comparisons or outside:
            texts.append(_matched_text(metric, comparisons, outside))
        pooled += comparisons
    if not texts:
        return _Claim(NO_DATA, "no aligned points with this metric", [])
    if pooled:
        texts.append(_seeds_text(pooled))
    return _Claim(_verdict(pooled), "; ".join(texts), pooled)


def _pareto_claim(data: _Data, form: str, architecture: str | None) -> "_Claim":
    """Pareto improvement.

    For each metric of RECONSTRUCTION_METRICS with data, each aligned curve
    (label, d_sae) is compared with its base curve in both directions: every
    aligned point against the base curve at its L0, and every base point against
    the aligned curve at its L0 (both read with `interpolate_at_l0`, seed ranges
    included). The evidence states the fraction of aligned points whose seed mean
    lies above the base curve's seed mean, and of base points above the aligned
    curve. Verdict by the general rule over all comparisons: an improvement must
    hold beyond seed spread wherever the curves overlap in L0.
    """
    pooled, texts = [], []
    for metric in RECONSTRUCTION_METRICS:
        if metric not in data.points:
            continue
        comparisons = []
        a_above = a_total = b_above = b_total = 0
        aligned = data.aligned(metric, form, architecture)
        for a_curve in curves(aligned).values():
            b_curve = [p for p in data.base_curve(metric, a_curve[0]) if _on_curve(p)]
            for a in a_curve:
                base = _curve_bounds(b_curve, a.l0_mean)
                if math.isfinite(base[0]):
                    n = min([_seeds(a)] + [_seeds(p) for p in b_curve])
                    comparisons.append(_compare(metric, _bounds(a), base, n))
                    a_total += 1
                    a_above += a.mean > base[0]
            for b in b_curve:
                other = _curve_bounds(a_curve, b.l0_mean)
                if math.isfinite(other[0]):
                    n = min([_seeds(b)] + [_seeds(p) for p in a_curve])
                    comparisons.append(_compare(metric, other, _bounds(b), n))
                    b_total += 1
                    b_above += b.mean > other[0]
        if a_total or b_total:
            texts.append(
                f"{metric}: {a_above}/{a_total} aligned points above the base curve, "
                f"{b_above}/{b_total} base points above the aligned curve; "
                f"{_count(comparisons, BETTER)}/{len(comparisons)} comparisons "
                f"favour aligned beyond seed spread, "
                f"{_count(comparisons, WORSE)} favour base"
            )
        pooled += comparisons
    if not texts:
        return _Claim(NO_DATA, "no aligned and base curves overlapping in L0", [])
    texts.append(_seeds_text(pooled))
    return _Claim(_verdict(pooled), "; ".join(texts), pooled)


def _claims_for(
    data: _Data, form: str, architecture: str | None
) -> dict[str, "_Claim"]:
    return {
        "dead features eliminated": _dead_claim(data, form, architecture),
        "reconstruction improved": _matched_claim(
            data, RECONSTRUCTION_METRICS, form, architecture
        ),
        "stability improved": _matched_claim(data, (STABILITY,), form, architecture),
        "Pareto improvement": _pareto_claim(data, form, architecture),
    }


def _compose_verdict(verdicts: Sequence[str]) -> str:
    """Composes-with rows: confirms when at least one sub-claim confirms and none
    refutes, refutes when at least one refutes and none confirms, no data when no
    sub-claim has data, mixed otherwise."""
    if all(v == NO_DATA for v in verdicts):
        return NO_DATA
    if CONFIRMS in verdicts and REFUTES not in verdicts:
        return CONFIRMS
    if REFUTES in verdicts and CONFIRMS not in verdicts:
        return REFUTES
    return MIXED


def claim_table(
    run_records: Sequence[dict[str, Any]],
    stability_records: Sequence[dict[str, Any]] = (),
) -> list[ClaimRow]:
    """A verdict on each of the paper's claims, for each alignment form.

    Base pairs come from `run_info["base_architecture"]`: an aligned point is
    compared with the non-aligned runs of that architecture at the same d_sae.
    Every comparison uses seed means and counts as better or worse only when the
    seed ranges (min-max) do not overlap; otherwise it is a tie, which never
    confirms a claim. Rules:

    - dead features eliminated: same sparsity value; see `_dead_claim`.
    - reconstruction improved: explained_variance and ce_loss_score (those
      recorded) at the aligned point's L0; see `_matched_claim`.
    - stability improved: shared fraction at matched L0, as above.
    - Pareto improvement: aligned and base curves compared in both directions;
      see `_pareto_claim`.
    - composes with TopK / BatchTopK / p-annealing: the four claims restricted to
      aligned_topk vs topk, aligned_batchtopk vs batchtopk and aligned_panneal vs
      panneal; see `_compose_verdict`.

    The first four pool every aligned architecture. Metrics NaN in every record
    (ce_loss_score in synthetic sweeps) are skipped.
    """
    data = _Data(list(run_records), list(stability_records))
    rows = []
    for form in ALIGNMENT_FORMS:
        for claim, result in _claims_for(data, form, None).items():
            n = len(result.comparisons)
            rows.append(ClaimRow(claim, form, result.verdict, result.evidence, n))
        for claim, (aligned_arch, base_arch) in COMPOSITIONS.items():
            sub = _claims_for(data, form, aligned_arch)
            verdict = _compose_verdict([c.verdict for c in sub.values()])
            evidence = f"no {aligned_arch} runs with a {base_arch} baseline"
            if verdict != NO_DATA:
                evidence = f"{aligned_arch} vs {base_arch}: " + "; ".join(
                    f"{name} {c.verdict} ({c.counts})"
                    for name, c in sub.items()
                    if c.verdict != NO_DATA
                )
            n = sum(len(c.comparisons) for c in sub.values())
            rows.append(ClaimRow(claim, form, verdict, evidence, n))
    return rows
