"""The README's "By dictionary size": at each size with records, the better
aligned recipe's verdicts on the two claims a user sizing a dictionary asks
about first, dead latents and the CE-loss score, against the stock base, the
fair control and the mean-centred base. docs/scale.md has every claim, both
recipes and the tokens each arm needs (`benchmarks.reports.scale`).
"""

from pathlib import Path

from benchmarks.analysis.tokens_to_target import TARGET_METRIC
from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow
from benchmarks.analysis.verdicts.rules import (
    CENTRED_BASE,
    DEAD_CLAIM,
    FAIR_CONTROL,
    STOCK_BASE,
)
from benchmarks.analysis.verdicts.summary import tokens_text
from benchmarks.reports import display
from benchmarks.reports.scale import (
    SCALE_ROLES,
    SIZES,
    RecipeVerdicts,
    aligned_recipes,
    is_complete,
    judged_recipes,
    planned_topk_runs,
    size_records,
    training_tokens,
)

NO_REFERENCE = "-"
"""A cell whose reference the size's sweep does not train (2× has no
mean-centred arm)."""
ROLE_HEADER = {
    STOCK_BASE: "vs stock",
    FAIR_CONTROL: "vs fair control",
    CENTRED_BASE: "vs mean-centred",
}


def brief_rows(recipe: RecipeVerdicts) -> list[ClaimRow]:
    """The recipe's pooled dead-latent and CE-loss rows, dead first."""
    rows = [r for r in recipe.rows if r.base == POOLED]
    dead = [r for r in rows if r.spec.claim == DEAD_CLAIM]
    score = [r for r in rows if r.spec.metric == TARGET_METRIC]
    return dead + score


def cell(row: ClaimRow | None) -> str:
    if row is None or row.verdict.status == "no data":
        return NO_REFERENCE
    return row.verdict.text


def size_lines(name: str, recipe: RecipeVerdicts) -> list[str]:
    """The table lines of one size: one per metric, the size named on the first."""
    lines = []
    recipe_name = display.arm_name(recipe.label)
    rows = brief_rows(recipe)
    for spec in dict.fromkeys(r.spec for r in rows):
        by_role = {r.role: r for r in rows if r.spec == spec}
        first = not lines
        cells = [
            name if first else "",
            recipe_name if first else "",
            spec.display,
            *(cell(by_role.get(role)) for role in SCALE_ROLES),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines or [f"| {name} | {recipe_name} | no verdicts yet | | | |"]


def render(results: Path) -> str:
    """The table, one block of lines per size with main runs; a size still
    running says how far it is."""
    header = "| size | recipe | metric (matched L0) | " + " | ".join(
        ROLE_HEADER[r] for r in SCALE_ROLES
    )
    lines = [header + " |", "|---" * (3 + len(SCALE_ROLES)) + "|"]
    missing = []
    for size in SIZES:
        found = size_records(results, size)
        if found is None:
            missing.append(size.name)
            continue
        folder, sweep = found
        if not aligned_recipes(sweep):
            missing.append(size.name)
            continue
        name = f"{size.name} (`{folder}`, {tokens_text(training_tokens(sweep))})"
        if not is_complete(folder, sweep, size.d_sae):
            # Partial verdicts move as runs land: docs/scale.md shows them, the
            # README only how far the sweep has got.
            runs = len({r.run_id for r in sweep.runs})
            planned = planned_topk_runs(folder, size.d_sae)
            lines.append(
                f"| {name} | running: {runs} of {planned} runs | "
                + " | " * len(SCALE_ROLES)
                + " |"
            )
            continue
        lines += size_lines(name, judged_recipes(sweep)[0])
    if missing:
        lines.append(
            f"\nNo main runs yet at {', '.join(missing)}: see [docs/scale.md]"
            "(docs/scale.md)."
        )
    return "\n".join(lines)
