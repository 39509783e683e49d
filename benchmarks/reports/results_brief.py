"""The README's "Results in brief": the pooled verdicts of both forms on text and
on synthetic data, the bases behind every column and what the seeds vary; and
docs/results.md's lines of `tied` TopK by training length.

Pure: claim rows (`verdicts.judge`), length comparisons (`verdicts.lengths`) and
run records in, markdown out. `published` reads the committed records and puts
the text between the README's markers; docs/results.md takes the full length
lines (`length_lines`) and the seeds line from here too.
"""

from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow
from benchmarks.analysis.verdicts.lengths import LengthComparison, comparison_text
from benchmarks.analysis.verdicts.rules import DEAD_CLAIM, ROLES, STOCK_BASE
from benchmarks.analysis.verdicts.summary import compact_markdown, tokens_text
from benchmarks.records.run_table import RunRecord
from benchmarks.reports.tables import seeds_vary

FORMS = ("tied", "projected")
"""Both forms, `tied` (the default) first: the table hides neither."""
LENGTH_ARM = "aligned_topk[tied]"
"""The arm the by-length lines follow: the default form on the base that every
learning-curve sweep trains."""
SHORT_ROLE = {STOCK_BASE: "stock"}
"""A reference's name in a column header, where the README counts characters."""


def claim_name(row: ClaimRow) -> str:
    """`reconstruction improved (CE-loss score)`; dead features under one name,
    whichever window the sweep measured them on."""
    if row.spec.claim == DEAD_CLAIM:
        return row.spec.claim
    return f"{row.spec.claim} ({row.spec.label})"


def _pooled(rows: Sequence[ClaimRow]) -> dict[tuple[str, str, str], ClaimRow]:
    """(claim name, form, reference) -> pooled row."""
    return {(claim_name(r), r.alignment, r.role): r for r in rows if r.base == POOLED}


def unjudged_claims(sweeps: Mapping[str, Sequence[ClaimRow]]) -> list[str]:
    """Claim metrics with no verdict in any sweep, form or reference (too few
    points at matched L0 everywhere): a row of the brief that would say nothing."""
    pooled = [r for rows in sweeps.values() for r in _pooled(rows).values()]
    claims = dict.fromkeys(claim_name(r) for r in pooled)
    judged = {claim_name(r) for r in pooled if r.verdict.status is None}
    return [c for c in claims if c not in judged]


def verdict_table(sweeps: Mapping[str, Sequence[ClaimRow]]) -> str:
    """One row per claim metric and form (`tied`, then `projected`), one column
    per sweep and reference; each cell every count with its direction. Claims
    with no verdict anywhere are left out (`unjudged_claims`)."""
    pooled = {name: _pooled(rows) for name, rows in sweeps.items()}
    claims = dict.fromkeys(c for rows in pooled.values() for c, _, _ in rows)
    unjudged = set(unjudged_claims(sweeps))
    out = []
    for claim in (c for c in claims if c not in unjudged):
        for form in FORMS:
            # The claim is named on its first row only: the rows below it are
            # the same claim for the other form.
            shown = claim if form == FORMS[0] else ""
            cells = {"claim (metric at matched L0)": shown, "form": f"`{form}`"}
            found = False
            for name, rows in pooled.items():
                tokens = next((r.training_tokens for r in rows.values()), None)
                for role in ROLES:
                    row = rows.get((claim, form, role))
                    found |= row is not None
                    header = f"`{name}` vs {SHORT_ROLE.get(role, role)}"
                    if role == ROLES[0]:
                        header = f"`{name}` ({tokens_text(tokens)}) vs stock"
                    cells[header] = row.verdict.text if row else "-"
            if found:
                out.append(cells)
    return compact_markdown(pd.DataFrame(out))


def unjudged_line(sweeps: Mapping[str, Sequence[ClaimRow]]) -> str:
    """The claims the table leaves out, named ("" when none)."""
    unjudged = unjudged_claims(sweeps)
    if not unjudged:
        return ""
    return f"No verdict yet (too few points at matched L0): {_and(unjudged)}."


def column_bases(rows: Sequence[ClaimRow], form: str, role: str) -> str:
    """The bases behind one column (a form against one reference): the set most
    of its cells pool, each cell that pools another set named with it, and a
    base the other reference's column pools that has no arm of this reference
    at all (why this column pools fewer)."""
    mine = [r for r in rows if (r.alignment, r.base) == (form, POOLED)]
    pooled = [r for r in mine if r.role == role and r.bases]
    if not pooled:
        return "no pooled cell"
    sets = Counter(tuple(sorted(r.bases)) for r in pooled)
    usual = sets.most_common(1)[0][0]
    text = ", ".join(usual)
    # Cells that pool the same other set are named together (probing runs at
    # the TopK points only, so its cells share one set).
    others: dict[str, list[str]] = {}
    for r in pooled:
        if tuple(sorted(r.bases)) != usual:
            difference = _difference(set(usual), set(r.bases))
            others.setdefault(difference, []).append(r.spec.display)
    if others:
        text += (
            " ("
            + "; ".join(f"{' / '.join(cells)}: {d}" for d, cells in others.items())
            + ")"
        )
    elsewhere = {b for r in mine if r.role != role for b in r.bases}
    missing = sorted(
        {b for r in mine if r.role == role for b in r.no_reference} & elsewhere
    )
    if missing:
        text += f" ({', '.join(missing)}: no {role})"
    return text


def _difference(usual: set[str], bases: set[str]) -> str:
    """`+ standard`, `- panneal`: a cell's bases against its column's usual set;
    `topk only` where naming the few it keeps is shorter."""
    if bases < usual and len(bases) < len(usual - bases):
        return ", ".join(sorted(bases)) + " only"
    return ", ".join(
        [f"+ {b}" for b in sorted(bases - usual)]
        + [f"- {b}" for b in sorted(usual - bases)]
    )


def _sweep_bases(name: str, rows: Sequence[ClaimRow]) -> str:
    """A sweep's bases per form and reference, each distinct text once."""
    by_form = {
        form: {role: column_bases(rows, form, role) for role in ROLES}
        for form in FORMS
        if any(r.alignment == form for r in rows)
    }
    texts = {t for roles in by_form.values() for t in roles.values()}
    if len(texts) == 1:
        return f"`{name}` {texts.pop()} in every column"
    parts = []
    for form, roles in by_form.items():
        if len(set(roles.values())) == 1:
            parts.append(f"`{form}` {roles[STOCK_BASE]}")
        else:
            parts.append(
                f"`{form}` "
                + ", ".join(f"vs {SHORT_ROLE.get(r, r)} {t}" for r, t in roles.items())
            )
    return f"`{name}`: " + "; ".join(parts)


def _too_few(rows: Sequence[ClaimRow]) -> list[str]:
    """Bases that join no pooled cell of a sweep: too few points at matched L0."""
    pooled = {b for r in rows if r.base == POOLED for b in r.bases}
    left = {b for r in rows if r.base == POOLED for b in r.left_out}
    return sorted(left - pooled)


def bases_line(sweeps: Mapping[str, Sequence[ClaimRow]]) -> str:
    """Which bases every column pools, per sweep, form and reference, and which
    bases have too few points at matched L0 to join any (own rows)."""
    parts = []
    for name, rows in sweeps.items():
        text = _sweep_bases(name, rows)
        few = _too_few(rows)
        if few:
            text += f" (too few points: {', '.join(few)})"
        parts.append(text)
    return "Bases pooled: " + ". ".join(parts) + "."


def _and(names: Sequence[str]) -> str:
    """`a`, `a` and `b`, `a`, `b` and `c`."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def seeds_line(runs: Mapping[str, Sequence[RunRecord]]) -> str:
    """What each sweep's seeds vary, sweeps that agree named together."""
    groups: dict[str, list[str]] = {}
    for name, records in runs.items():
        if not records:  # a sweep just started: no main run to say it of yet
            continue
        groups.setdefault(seeds_vary(records), []).append(f"`{name}`")
    parts = [f"in {_and(names)} the seeds {text}" for text, names in groups.items()]
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."


def _ends(
    comparisons: Sequence[LengthComparison],
) -> dict[tuple[str, str], tuple[LengthComparison, LengthComparison | None]]:
    """(metric display, reference) -> (shortest, longest) of LENGTH_ARM."""
    out: dict[tuple[str, str], list[LengthComparison]] = {}
    for c in sorted(comparisons, key=lambda c: c.step):
        if c.aligned == LENGTH_ARM:
            out.setdefault((c.spec.display, c.role), []).append(c)
    return {k: (cs[0], cs[-1] if len(cs) > 1 else None) for k, cs in out.items()}


def length_lines(curves: Mapping[str, Sequence[LengthComparison]]) -> str:
    """`tied` TopK against each reference at the shortest and the longest
    checkpoint, every metric the curves record, one line each."""
    lines = []
    for name, comparisons in curves.items():
        for (metric, role), (first, last) in _ends(comparisons).items():
            lines.append(
                f"- `{name}`, {metric} vs {role}: {comparison_text(first)} → "
                f"{comparison_text(last)}"
            )
    return "\n".join(lines)
