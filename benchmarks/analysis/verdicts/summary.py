"""What a reader sees of the verdicts: the claim table, the Pareto and
composition rows built from it, and the full per-base table.

Pure: claim rows (`judge.judge_sweep`) in, pandas tables or markdown out.
"""

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmarks.analysis.verdicts.judge import (
    BETTER,
    POOLED,
    TIE,
    WORSE,
    ClaimRow,
    Verdict,
)
from benchmarks.analysis.verdicts.rules import (
    CENTRED_BASE,
    COMPOSITIONS,
    PARETO_METRICS,
    RECONSTRUCTION_CLAIM,
    ROLES,
)

PARETO_CLAIM = "Pareto improvement"


def tokens_text(tokens: int | None) -> str:
    """205k, 2.0M: a training length in a table cell."""
    if tokens is None:
        return "?"
    if tokens >= 1_000_000:
        return f"{tokens / 1e6:.1f}M"
    return f"{tokens / 1e3:.0f}k"


def _cell(row: ClaimRow | None) -> str:
    if row is None:
        return "no data"
    text = f"**{row.verdict.text}**"
    if row.base == POOLED and row.bases:
        text += " (" + ", ".join(f"{b} {n}" for b, n in sorted(row.bases.items())) + ")"
    if row.edges:
        text += "; rate at grid edge: " + ", ".join(row.edges)
    return text


def _index(rows: Sequence[ClaimRow]) -> dict[tuple, ClaimRow]:
    return {(r.spec, r.alignment, r.role, r.base): r for r in rows}


def roles_of(rows: Sequence[ClaimRow]) -> list[str]:
    """The references the table has columns for: ROLES, and the mean-centred
    base where the rows were judged against it (`judge_sweep(roles=...)`)."""
    judged = {r.role for r in rows}
    return [*ROLES, *([CENTRED_BASE] if CENTRED_BASE in judged else [])]


def claim_frame(
    rows: Sequence[ClaimRow], forms: Sequence[str] | None = None
) -> pd.DataFrame:
    """The claim table: per claim metric and form, the pooled row, then a row for
    every base the pooled row leaves out (too few points) under either
    reference; verdicts against the stock base and the fair control side by
    side; then the Pareto and composition rows."""
    index = _index(rows)
    out = []
    specs = list(dict.fromkeys(r.spec for r in rows))
    forms = forms or list(dict.fromkeys(r.alignment for r in rows))
    roles = roles_of(rows)
    tokens = next((r.training_tokens for r in rows), None)
    for spec in specs:
        for form in forms:
            pooled = [index.get((spec, form, role, POOLED)) for role in roles]
            if all(p is None for p in pooled):
                continue
            left_out = sorted({b for p in pooled if p for b in p.left_out})
            for scope in ["all bases", *left_out]:
                base = POOLED if scope == "all bases" else scope
                out.append(
                    {
                        "claim": spec.claim,
                        "metric (matched L0)": spec.label,
                        "form": form,
                        "bases": scope,
                        **{
                            f"vs {role}": _cell(index.get((spec, form, role, base)))
                            for role in roles
                        },
                        "trained on": tokens_text(tokens),
                    }
                )
    for derived in (pareto_rows(rows), composition_rows(rows)):
        for (claim, form), cells in derived.items():
            if forms and form not in forms:
                continue
            out.append(
                {
                    "claim": claim,
                    "metric (matched L0)": cells["metric"],
                    "form": form,
                    "bases": cells["bases"],
                    **{f"vs {role}": cells[role] for role in roles},
                    "trained on": tokens_text(tokens),
                }
            )
    return pd.DataFrame(out)


def _direction_word(verdicts: Sequence[Verdict]) -> str:
    judged = [v for v in verdicts if v.status is None]
    if not judged:
        return "no verdict"
    better = any(v.better for v in judged)
    worse = any(v.worse for v in judged)
    if better and not worse:
        return "better"
    if worse and not better:
        return "worse"
    return "mixed" if better else "tie"


def pareto_rows(rows: Sequence[ClaimRow]) -> dict[tuple[str, str], dict[str, str]]:
    """(Pareto claim, form) -> cells: each reconstruction metric's pooled verdict,
    counted once per metric and one way (aligned points on the reference's
    curve), and the word they add up to."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    by_key: dict[tuple[str, str], list[ClaimRow]] = defaultdict(list)
    for r in rows:
        if (
            r.spec.claim == RECONSTRUCTION_CLAIM
            and r.spec.metric in PARETO_METRICS
            and r.base == POOLED
        ):
            by_key[(r.alignment, r.role)].append(r)
    for form in dict.fromkeys(a for a, _ in by_key):
        cells = {"metric": " + ".join(m for m in PARETO_METRICS), "bases": "all bases"}
        metrics_seen = []
        for role in roles_of(rows):
            rs = by_key.get((form, role), [])
            metrics_seen += [r.spec.display for r in rs]
            parts = [f"{r.spec.display}: {r.verdict.text}" for r in rs]
            word = _direction_word([r.verdict for r in rs])
            cells[role] = f"**{word}** ({'; '.join(parts)})" if parts else "no data"
        cells["metric"] = ", ".join(dict.fromkeys(metrics_seen)) + " (each once)"
        out[(PARETO_CLAIM, form)] = cells
    return out


def composition_rows(rows: Sequence[ClaimRow]) -> dict[tuple[str, str], dict[str, str]]:
    """(composes-with claim, form) -> cells: how many of the claims judged on
    that base's own rows go each way."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for claim, base in COMPOSITIONS.items():
        for form in dict.fromkeys(r.alignment for r in rows):
            cells = {"metric": "every claim above", "bases": base}
            found = False
            for role in roles_of(rows):
                mine = [
                    r
                    for r in rows
                    if r.base == base and r.alignment == form and r.role == role
                ]
                found |= bool(mine)
                counts: dict[str, list[str]] = defaultdict(list)
                for r in mine:
                    word = r.verdict.direction
                    known = word in (BETTER, WORSE, TIE, "mixed")
                    counts[word if known else "no verdict"].append(r.spec.label)
                judged = len(mine) - len(counts["no verdict"])
                order = (BETTER, WORSE, "mixed", TIE, "no verdict")
                parts = [
                    f"{word} on {', '.join(counts[word])}"
                    for word in order
                    if counts[word]
                ]
                cells[role] = (
                    f"**{judged} of {len(mine)} judged**: " + "; ".join(parts)
                    if mine
                    else "no data"
                )
            if found:
                out[(claim, form)] = cells
    return out


def per_base_frame(rows: Sequence[ClaimRow]) -> pd.DataFrame:
    """Every row of the verdicts, per base and pooled, with its evidence."""
    return pd.DataFrame(
        [
            {
                "claim": r.spec.claim,
                "metric": r.spec.label,
                "form": r.alignment,
                "reference": r.role,
                "base": r.base,
                "verdict": r.verdict.text,
                "evidence": r.evidence,
            }
            for r in rows
        ]
    )


def markdown(frame: pd.DataFrame) -> str:
    """A table as GitHub markdown (pandas' to_markdown, through tabulate)."""
    if frame.empty:
        return "(none)"
    return frame.to_markdown(index=False)


def compact_markdown(frame: pd.DataFrame) -> str:
    """A table as GitHub markdown without column padding: the README counts its
    characters, and padding a wide column to its longest cell costs hundreds."""
    if frame.empty:
        return "(none)"
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    lines += [
        "| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def _size(row: ClaimRow) -> str:
    """The mean paired difference over a row's points, with the range of the
    points' own means: how much, not only which way."""
    means = [c.difference.mean for c in row.comparisons]
    if not means:
        return ""
    mean = float(np.mean(means))
    if len(means) == 1:
        return f"; {mean:+.3f}"
    return f"; {mean:+.3f} ({min(means):+.3f} to {max(means):+.3f})"


def answer_frame(
    sweeps: dict[str, Sequence[ClaimRow]], form: str = "tied"
) -> pd.DataFrame:
    """The answer for users: per claim metric and sweep, the pooled verdict of
    `form` against the stock base and the fair control, each with the bases
    behind it and how much (the mean paired difference, aligned - reference, over
    the compared points, and the range of the points' means), and how long each
    SAE trained."""
    out = []
    for name, rows in sweeps.items():
        index = _index(rows)
        pooled = [r for r in rows if r.alignment == form and r.base == POOLED]
        for spec in dict.fromkeys(r.spec for r in pooled):
            cells = {"claim": spec.claim, "metric (matched L0)": spec.label}
            cells["sweep (trained on)"] = (
                f"`{name}` ({tokens_text(pooled[0].training_tokens)})"
            )
            for role in ROLES:
                row = index.get((spec, form, role, POOLED))
                cells[f"vs {role}"] = _cell(row) + (_size(row) if row else "")
            out.append(cells)
    return pd.DataFrame(out)
