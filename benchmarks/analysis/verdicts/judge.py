"""Verdicts on the paper's claims from a sweep's records (`benchmarks.records.run_table`).

`judge_sweep` compares every aligned arm with its stock base and its fair
control, point by point at matched L0 and paired by seed (`matching`), corrects
across each claim's comparisons (`statistics`), and gives one row per claim,
metric, form, reference and base, plus a pooled row per claim listing the bases
behind it. `rules` states the rules.
"""

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.analysis.verdicts.degenerate import DegeneratePoint, degenerate_points
from benchmarks.analysis.verdicts.matching import SeedPairing, pair_at_matched_l0
from benchmarks.analysis.verdicts.rules import (
    CENTRED_BASE,
    CLAIM_SPECS,
    DEAD_CLAIM,
    DEAD_ELIMINATED,
    FAIR_CONTROL,
    FAIR_CONTROL_START,
    MIN_POINTS,
    MIN_SEEDS,
    ROLES,
    STABILITY,
    STOCK_BASE,
    ClaimSpec,
)
from benchmarks.analysis.verdicts.statistics import (
    ALPHA,
    Difference,
    benjamini_hochberg,
    paired_difference,
)
from benchmarks.records.run_table import StabilityRecord, SweepRecords

BETTER, WORSE, TIE = "better", "worse", "tie"
POOLED = "pooled"
INSUFFICIENT, NO_DATA, NO_CONTROL, NO_OVERLAP = (
    "insufficient data",
    "no data",
    "no control",
    "no overlap",
)


@dataclass(frozen=True)
class PointComparison:
    """One aligned point against its reference at matched L0, paired by seed.

    Args:
        aligned: The aligned arm's label.
        reference: The reference arm's label.
        base: The base architecture both share.
        d_sae: Dictionary size.
        sparsity_value: The aligned point's sparsity value.
        l0: Its mean L0.
        aligned_mean: Aligned seed mean.
        reference_mean: Reference seed mean (each seed read at the aligned L0).
        difference: Aligned - reference over the paired seeds.
        p_adjusted: Benjamini-Hochberg corrected p-value.
        outcome: better / worse (for the aligned arm) / tie.
        aligned_max: Largest aligned seed value (dead features need it).
    """

    aligned: str
    reference: str
    base: str
    d_sae: int
    sparsity_value: float
    l0: float
    aligned_mean: float
    reference_mean: float
    difference: Difference
    p_adjusted: float
    outcome: str
    aligned_max: float


@dataclass(frozen=True)
class Verdict:
    """Counts of a set of comparisons and what they add up to.

    Args:
        better: Comparisons better for the aligned arm.
        worse: Comparisons worse.
        tie: Ties.
        status: Why there is no verdict (insufficient data, no data, no control,
            no overlap), or None.
    """

    better: int
    worse: int
    tie: int
    status: str | None = None

    @property
    def n(self) -> int:
        return self.better + self.worse + self.tie

    @property
    def net(self) -> int:
        """Points better minus points worse."""
        return self.better - self.worse

    @property
    def counts_text(self) -> str:
        """Every nonzero count with its direction, then the whole: "better at 6,
        worse at 4 of 10", "better at 1, tie at 5 of 6", "worse at 2 of 2".
        Ties are named whenever there are any, so a reader never has to
        subtract to learn that most points are no different."""
        parts = [
            f"{word} at {count}"
            for word, count in (
                (BETTER, self.better),
                (WORSE, self.worse),
                (TIE, self.tie),
            )
            if count
        ]
        return f"{', '.join(parts)} of {self.n}" if parts else "no points"

    @property
    def text(self) -> str:
        """The counts, after the reason there is no verdict when there is one:
        "insufficient data (worse at 1, tie at 1 of 2)"."""
        if self.status is None:
            return self.counts_text
        return self.status + (f" ({self.counts_text})" if self.n else "")

    @property
    def direction(self) -> str:
        """better / worse / mixed / tie, or the status."""
        if self.status is not None:
            return self.status
        if self.better and not self.worse:
            return BETTER
        if self.worse and not self.better:
            return WORSE
        return "mixed" if self.better else TIE


def verdict_of(comparisons: Sequence[PointComparison]) -> Verdict:
    count = {o: sum(c.outcome == o for c in comparisons) for o in (BETTER, WORSE, TIE)}
    return Verdict(count[BETTER], count[WORSE], count[TIE])


@dataclass(frozen=True)
class ClaimRow:
    """One claim on one metric, for one form, reference and base (or pooled).

    Args:
        spec: The claim and metric.
        alignment: `tied` / `projected`.
        role: `stock base` / `fair control`.
        base: A base architecture, or `pooled`.
        verdict: The verdict.
        comparisons: The comparisons behind it.
        bases: Base -> compared points, for the bases behind the row.
        left_out: Base -> compared points, for bases the pooled row leaves out
            (fewer than MIN_POINTS; each has its own row).
        no_overlap: Aligned points outside the reference's L0 range.
        degenerate: Collapsed points left out of the row.
        edges: Arms of the row whose rate sits at an edge of its grid.
        training_tokens: Tokens (samples) each SAE behind the row trained on.
        no_reference: Bases of the form with no arm of this reference at all
            (p-annealing has no fair control): a column that pools fewer bases
            than its neighbour says why.
    """

    spec: ClaimSpec
    alignment: str
    role: str
    base: str
    verdict: Verdict
    comparisons: tuple[PointComparison, ...]
    bases: dict[str, int]
    left_out: dict[str, int]
    no_overlap: int
    degenerate: tuple[str, ...]
    edges: tuple[str, ...]
    training_tokens: int | None
    no_reference: tuple[str, ...] = ()

    @property
    def evidence(self) -> str:
        cs = self.comparisons
        parts = []
        if cs:
            a = np.mean([c.aligned_mean for c in cs])
            r = np.mean([c.reference_mean for c in cs])
            parts.append(f"{self.spec.display} {a:.3f} vs {r:.3f}")
            if self.spec.metric.startswith("dead_fraction"):
                gone = sum(c.aligned_max <= DEAD_ELIMINATED for c in cs)
                parts.append(f"every seed <= 1% dead at {gone} of {len(cs)}")
        if self.base == POOLED and self.bases:
            parts.append(
                "bases: " + ", ".join(f"{b} {n}" for b, n in sorted(self.bases.items()))
            )
        if self.left_out:
            parts.append(
                "own rows (too few points): "
                + ", ".join(f"{b} {n}" for b, n in sorted(self.left_out.items()))
            )
        if self.no_overlap:
            parts.append(f"{self.no_overlap} points no overlap")
        if self.degenerate:
            parts.append(f"{len(self.degenerate)} collapsed points left out")
        if self.edges:
            parts.append("rate at grid edge: " + ", ".join(self.edges))
        if self.no_reference:
            parts.append(f"no {self.role}: " + ", ".join(self.no_reference))
        return "; ".join(parts)


def reference_mask(frame: pd.DataFrame, base: str, form: str, role: str) -> pd.Series:
    """Rows of `frame` that are the `role` reference (stock base, fair control or
    mean-centred base) of an aligned `form` arm whose base architecture is
    `base`."""
    stock = frame["alignment"].isna() & (frame["architecture"] == base)
    # Records older than `b_dec_init` have no such column: every start is zero.
    b_dec = (
        frame["b_dec_init"] if "b_dec_init" in frame else pd.Series(None, frame.index)
    )
    if role == CENTRED_BASE:
        return stock & frame["init_from"].isna() & (b_dec == "mean")
    stock = stock & b_dec.isna()
    if role == STOCK_BASE:
        return stock & frame["init_from"].isna()
    return stock & (frame["init_from"] == FAIR_CONTROL_START[form])


def stability_frame(
    stability: Sequence[StabilityRecord], frame: pd.DataFrame
) -> pd.DataFrame:
    """The stability records as per-run-table rows: one per seed pair, `seed`
    the pair's index (a * 1000 + b), `l0` the pair's mean L0, metric
    `stability`."""
    # A mean: without a learning-rate choice a folder may hold one seed twice.
    l0 = frame.groupby(["label", "sparsity_value", "d_sae", "seed"])["l0"].mean()
    rows = []
    for record in stability:
        arm, point = record.arm, record.point
        for pair in record.pairs:
            if not math.isfinite(pair.shared_fraction):
                continue
            keys = [
                (point.label, point.sparsity_value, point.d_sae, s) for s in pair.seeds
            ]
            l0s = [float(l0.get(k, math.nan)) for k in keys]
            rows.append(
                {
                    "label": point.label,
                    "architecture": arm.architecture,
                    "alignment": arm.alignment,
                    "base_architecture": arm.base_architecture,
                    "init_from": arm.init_from,
                    "b_dec_init": arm.b_dec_init,
                    "sparsity_param": point.sparsity_param,
                    "sparsity_value": point.sparsity_value,
                    "d_sae": point.d_sae,
                    "seed": pair.seeds[0] * 1000 + pair.seeds[1],
                    "l0": float(np.mean(l0s)),
                    STABILITY: pair.shared_fraction,
                }
            )
    return pd.DataFrame(rows)


def _n_seeds(pairing: SeedPairing, metric: str) -> int:
    """Independent seeds behind a pairing (seed pairs share seeds)."""
    if metric != STABILITY:
        return len(pairing.aligned)
    return len(
        {s // 1000 for s in pairing.aligned} | {s % 1000 for s in pairing.aligned}
    )


@dataclass(frozen=True)
class _Raw:
    """A comparison before the correction."""

    aligned: str
    reference: str
    base: str
    d_sae: int
    pairing: SeedPairing
    difference: Difference


def _raw_comparisons(
    frame: pd.DataFrame, spec: ClaimSpec, form: str, role: str, gone: set[tuple]
) -> tuple[list[_Raw], int, set[str], set[str]]:
    """(comparisons, points without overlap, arms involved, bases whose aligned
    arm has no reference arm) for one claim metric, form and reference."""
    key = ["label", "sparsity_value", "d_sae"]
    kept = frame[[tuple(k) not in gone for k in frame[key].itertuples(index=False)]]
    has_metric = kept[np.isfinite(kept[spec.metric])]
    aligned = has_metric[has_metric["alignment"] == form]
    out, no_overlap, arms, unreferenced = [], 0, set(), set()
    for (label, d_sae), runs in aligned.groupby(["label", "d_sae"]):
        base = str(runs["base_architecture"].iloc[0])
        mask = reference_mask(has_metric, base, form, role)
        reference = has_metric[mask & (has_metric["d_sae"] == d_sae)]
        if reference.empty:
            unreferenced.add(base)
            continue
        arms |= {str(label), str(reference["label"].iloc[0])}
        for pairing in pair_at_matched_l0(runs, reference, spec.metric):
            n = _n_seeds(pairing, spec.metric)
            if n < MIN_SEEDS:
                no_overlap += 1
                continue
            out.append(
                _Raw(
                    str(label),
                    str(reference["label"].iloc[0]),
                    base,
                    int(d_sae),
                    pairing,
                    paired_difference(pairing.diffs, n),
                )
            )
    return out, no_overlap, arms, unreferenced


def _outcome(spec: ClaimSpec, raw: _Raw, p_adjusted: float) -> str:
    a = np.mean(list(raw.pairing.aligned.values()))
    r = np.mean(list(raw.pairing.reference.values()))
    if spec.metric.startswith("dead_fraction") and max(a, r) <= DEAD_ELIMINATED:
        return TIE
    if not (p_adjusted < ALPHA):  # NaN: a tie
        return TIE
    higher = raw.difference.mean > 0
    return BETTER if higher == spec.higher_is_better else WORSE


def _corrected(spec: ClaimSpec, raws: Sequence[_Raw]) -> list[PointComparison]:
    adjusted = benjamini_hochberg([r.difference.p_value for r in raws])
    out = []
    for raw, q in zip(raws, adjusted):
        values = list(raw.pairing.aligned.values())
        out.append(
            PointComparison(
                aligned=raw.aligned,
                reference=raw.reference,
                base=raw.base,
                d_sae=raw.d_sae,
                sparsity_value=raw.pairing.sparsity_value,
                l0=raw.pairing.l0,
                aligned_mean=float(np.mean(values)),
                reference_mean=float(np.mean(list(raw.pairing.reference.values()))),
                difference=raw.difference,
                p_adjusted=q,
                outcome=_outcome(spec, raw, q),
                aligned_max=float(np.max(values)),
            )
        )
    return out


def _dead_spec(frame: pd.DataFrame) -> ClaimSpec:
    """The long-window dead fraction where recorded, else SAEBench's window."""
    dead = [s for s in CLAIM_SPECS if s.claim == DEAD_CLAIM]
    return next((s for s in dead if np.isfinite(frame[s.metric]).any()), dead[-1])


def judged_specs(frame: pd.DataFrame, stability: pd.DataFrame) -> list[ClaimSpec]:
    """The claim metrics this sweep has data for."""
    dead = _dead_spec(frame)
    out = []
    for spec in CLAIM_SPECS:
        if spec.claim == DEAD_CLAIM and spec != dead:
            continue
        source = stability if spec.metric == STABILITY else frame
        if spec.metric in source and np.isfinite(source[spec.metric]).any():
            out.append(spec)
    return out


def judge_sweep(sweep: SweepRecords, roles: Sequence[str] = ROLES) -> list[ClaimRow]:
    """Every claim row of a sweep: per base, then pooled, for each judged claim
    metric, alignment form and reference (`roles`: ROLES, or with CENTRED_BASE
    where the sweep has that arm). None for a sweep with no main run yet."""
    if not sweep.runs:
        return []
    frame = sweep.frame()
    stab = stability_frame(sweep.stability, frame)
    degenerate = degenerate_points(frame)
    gone = {
        (d.point.label, d.point.sparsity_value, d.point.d_sae)
        for d in degenerate
        if d.excluded
    }
    edges = sweep.lr_choice.unexplained_edges() if sweep.lr_choice else {}
    tokens = frame["training_tokens"].dropna()
    training_tokens = int(tokens.max()) if len(tokens) else None
    forms = sorted(
        frame["alignment"].dropna().unique(), key=["tied", "projected"].index
    )
    rows = []
    for spec in judged_specs(frame, stab):
        source = stab if spec.metric == STABILITY else frame
        for form in forms:
            for role in roles:
                raws, no_overlap, arms, unreferenced = _raw_comparisons(
                    source, spec, form, role, gone
                )
                comparisons = _corrected(spec, raws)
                rows += _rows_for(
                    spec,
                    form,
                    role,
                    comparisons,
                    no_overlap,
                    bool(arms),
                    unreferenced,
                    [d for d in degenerate if d.excluded and d.point.label in arms],
                    {a: e for a, e in edges.items() if a in arms},
                    training_tokens,
                )
    return rows


def _rows_for(
    spec: ClaimSpec,
    form: str,
    role: str,
    comparisons: list[PointComparison],
    no_overlap: int,
    has_reference: bool,
    unreferenced: set[str],
    degenerate: list[DegeneratePoint],
    edges: dict[str, str],
    training_tokens: int | None,
) -> list[ClaimRow]:
    by_base: dict[str, list[PointComparison]] = defaultdict(list)
    for c in comparisons:
        by_base[c.base].append(c)
    collapsed = tuple(d.describe() for d in degenerate)

    def row(base: str, cs: list[PointComparison], verdict: Verdict, **kw) -> ClaimRow:
        labels = {c.aligned for c in cs} | {c.reference for c in cs}
        at_edge = sorted(f"{a} ({e})" for a, e in edges.items() if a in labels)
        return ClaimRow(
            spec,
            form,
            role,
            base,
            verdict,
            tuple(cs),
            kw.get("bases", {base: len(cs)}),
            kw.get("left_out", {}),
            kw.get("no_overlap", 0),
            collapsed if base == POOLED else (),
            tuple(at_edge),
            training_tokens,
            kw.get("no_reference", ()),
        )

    rows = []
    enough, few = {}, {}
    for base, cs in sorted(by_base.items()):
        v = verdict_of(cs)
        if len(cs) < MIN_POINTS:
            few[base] = len(cs)
            v = Verdict(v.better, v.worse, v.tie, INSUFFICIENT)
        else:
            enough[base] = len(cs)
        rows.append(row(base, cs, v))
    pooled = [c for c in comparisons if c.base in enough]
    if pooled:
        verdict = verdict_of(pooled)
    elif not has_reference:
        verdict = Verdict(0, 0, 0, NO_CONTROL if role == FAIR_CONTROL else NO_DATA)
    elif not comparisons and no_overlap:
        verdict = Verdict(0, 0, 0, NO_OVERLAP)
    else:
        counts = verdict_of(comparisons)
        verdict = Verdict(counts.better, counts.worse, counts.tie, INSUFFICIENT)
    rows.append(
        row(
            POOLED,
            pooled,
            verdict,
            bases=enough,
            left_out=few,
            no_overlap=no_overlap,
            no_reference=tuple(sorted(unreferenced - set(by_base))),
        )
    )
    return rows
