"""The generated parts of the documents, from the committed records: the blocks
of README.md and docs/results.md, the claim table (and length table) of each
sweep's report page, the feature-quality page, and docs/figures/ (one figure
per claim).

    python -m benchmarks results            # rewrite every block in place
    python -m benchmarks results --check    # exit 1 naming each stale block

A block sits between `<!-- generated: NAME begin -->` and `<!-- generated: NAME
end -->`; everything outside the markers is prose and stays as written. Every
table and number of the results sections lives inside a block, so a rerun of the
sweeps (or a change of the verdict rules) changes the documents only through
this command, and a test fails while the committed text differs.
"""

import argparse
import sys
from functools import cache
from pathlib import Path

import pandas as pd

from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow, judge_sweep
from benchmarks.analysis.verdicts.lengths import length_comparisons, lengths_frame
from benchmarks.analysis.verdicts.rules import (
    DEAD_CLAIM,
    RECONSTRUCTION_CLAIM,
    ROLES,
    RULES_TEXT,
    STABILITY_CLAIM,
)
from benchmarks.analysis.verdicts.summary import (
    answer_frame,
    compact_markdown,
    markdown,
    tokens_text,
)
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import feature_quality
from benchmarks.reports.claim_figures import claim_caption, plot_claim
from benchmarks.reports.generated import Block, fill, stale_documents
from benchmarks.reports.tables import claims_section

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
TEXT_SWEEP, SYNTHETIC_SWEEP = "cpu", "synthetic_cpu"


@cache
def _sweep(name: str) -> SweepRecords:
    return SweepRecords.read(RESULTS / name)


@cache
def _rows(name: str) -> tuple[ClaimRow, ...]:
    return tuple(judge_sweep(_sweep(name)))


def _pooled(rows: tuple[ClaimRow, ...], form: str) -> dict[tuple[str, str], ClaimRow]:
    """(claim name, reference) -> pooled row; dead features under one name
    whichever window the sweep measured them on."""
    out = {}
    for r in rows:
        if r.alignment == form and r.base == POOLED:
            name = r.spec.claim
            if r.spec.claim != DEAD_CLAIM:
                name += f" ({r.spec.display})"
            out[(name, r.role)] = r
    return out


def readme_table(form: str = "tied") -> str:
    """The README's claim table: pooled verdicts of `form` on text and on
    synthetic data, against the stock base and the fair control."""
    sweeps = {
        name: _pooled(_rows(name), form) for name in (TEXT_SWEEP, SYNTHETIC_SWEEP)
    }
    claims = list(dict.fromkeys(c for rows in sweeps.values() for c, _ in rows))
    out = []
    for claim in claims:
        cells = {"claim (metric at matched L0)": claim}
        for name, rows in sweeps.items():
            tokens = next((r.training_tokens for r in rows.values()), None)
            column = f"{name} ({tokens_text(tokens)}): vs stock / vs fair control"
            pair = [rows.get((claim, role)) for role in ROLES]
            cells[column] = " / ".join(r.verdict.text if r else "-" for r in pair)
        out.append(cells)
    return compact_markdown(pd.DataFrame(out))


def _bases_line(name: str, form: str = "tied") -> str:
    """Which bases each pooled verdict of a sweep rests on, and which have too
    few points at matched L0 to join it."""
    rows = [
        r
        for r in _rows(name)
        if r.alignment == form
        and r.base == POOLED
        and (r.spec.claim, r.spec.metric)
        == (RECONSTRUCTION_CLAIM, "explained_variance")
    ]
    pooled = sorted({b for r in rows for b in r.bases})
    left = sorted({b for r in rows for b in r.left_out})
    text = f"`{name}` pools {', '.join(pooled) or 'no base'}"
    if left:
        text += f"; {', '.join(left)} have too few points at matched L0 (own rows)"
    return text


def readme_results() -> str:
    lines = [
        readme_table(),
        "",
        "Bases behind the cells (reconstruction rows; absorption runs at one "
        "sparsity): "
        + "; ".join(_bases_line(n) for n in (TEXT_SWEEP, SYNTHETIC_SWEEP))
        + ".",
        "",
        "By training length (`tied`, TopK, paired by seed; shortest → longest):",
        "",
        length_lines(),
    ]
    return "\n".join(lines)


def length_lines() -> str:
    """`tied` against each reference at the shortest and longest checkpoint of
    the TopK learning curves, one line each."""
    lines = []
    for name, metric in (
        ("curves_cpu", "CE-loss score"),
        ("curves_synthetic_cpu", "MCC"),
    ):
        table = lengths_frame(length_comparisons(_sweep(name)))
        mine = table[
            (table["aligned"] == "aligned_topk[tied]")
            & (table["metric (matched L0)"] == metric)
        ]
        for _, row in mine.iterrows():
            role = row["reference"].split(":")[0]
            lines.append(
                f"- `{name}`, {metric} vs {role}: {row['shortest']} → {row['longest']}"
            )
    return "\n".join(lines)


def learning_rate_edges() -> str:
    """Every arm of the committed sweeps whose chosen rate is the lowest or
    highest of its grid, and whether a stated bound explains it."""
    out = []
    for name in sorted(p.name for p in RESULTS.iterdir() if p.is_dir()):
        choice = (
            _sweep(name).lr_choice if (RESULTS / name / "records").is_dir() else None
        )
        if choice is None:
            continue
        for label in sorted(choice.chosen):
            edge = choice.edge(label)
            if edge is None:
                continue
            rates = sorted(choice.grid[label])
            out.append(
                {
                    "sweep": name,
                    "arm": label,
                    "grid": f"{rates[0]:g} .. {rates[-1]:g} ({len(rates)} rates)",
                    "chosen": f"{choice.chosen[label]:g}",
                    "edge": edge,
                    "explained by a bound": choice.bound_edges.get(label) == edge,
                    "chosen on": choice.splits.get(label, "eval"),
                }
            )
    if not out:
        return "None: every arm's chosen rate is interior to its grid."
    return markdown(pd.DataFrame(out))


def curve_lengths(name: str) -> str:
    return markdown(lengths_frame(length_comparisons(_sweep(name))))


def answer() -> str:
    """docs/results.md's lead: every claim's pooled `tied` verdict, how much and
    against which reference, on text and on synthetic data."""
    return markdown(
        answer_frame({name: _rows(name) for name in (TEXT_SWEEP, SYNTHETIC_SWEEP)})
    )


# (claim, the sweep whose rows its figure draws): text where the claim is
# measured on text, the synthetic sweep for ground truth.
CLAIM_FIGURES = (
    (DEAD_CLAIM, TEXT_SWEEP),
    (RECONSTRUCTION_CLAIM, TEXT_SWEEP),
    (STABILITY_CLAIM, TEXT_SWEEP),
    ("ground truth improved", SYNTHETIC_SWEEP),
)
FIGURES_DIR = ROOT / "docs" / "figures"


def claim_figure_path(claim: str) -> Path:
    return FIGURES_DIR / f"claim-{claim.replace(' ', '-')}.png"


def draw_claim_figures() -> None:
    """Draw one figure per claim into docs/figures/ (`python -m benchmarks
    results`; `--check` only checks they exist)."""
    from saelens_aligned.io import save_figure_atomic

    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    for claim, sweep in CLAIM_FIGURES:
        figure = plot_claim(_rows(sweep), claim, sweep)
        save_figure_atomic(figure.figure, claim_figure_path(claim))


def claim_figures() -> str:
    """The markdown of one figure per claim: image and caption."""
    parts = []
    for claim, sweep in CLAIM_FIGURES:
        relative = claim_figure_path(claim).relative_to(ROOT / "docs")
        caption = claim_caption(_rows(sweep), sweep)
        parts.append(f"**{claim}**\n\n![{claim}]({relative})\n\n*{caption}*")
    return "\n\n".join(parts)


def report_pages() -> dict[Path, tuple[Block, ...]]:
    """Each committed sweep's report page, whose claim table (and, for a
    learning-curve sweep, length table) is a generated block."""
    pages: dict[Path, tuple[Block, ...]] = {}
    for name in sorted(p.name for p in RESULTS.iterdir() if p.is_dir()):
        page = RESULTS / name / "report" / "report.md"
        if not page.exists():
            continue
        blocks = [Block("claims", lambda n=name: claims_section(_rows(n)))]
        if _sweep(name).checkpoints:
            blocks.append(Block("lengths", lambda n=name: curve_lengths(n)))
        pages[page] = tuple(blocks)
    return pages


FEATURE_QUALITY_PAGE = RESULTS / "probing_cpu" / "report" / "feature_quality.md"
README_BLOCKS = (Block("results", readme_results),)
RESULTS_BLOCKS = (
    Block("answer", answer),
    Block("lengths", length_lines),
    Block("claim figures", claim_figures),
    Block("rules", lambda: RULES_TEXT),
    Block("learning-rate edges", learning_rate_edges),
)
DOCUMENTS: dict[Path, tuple[Block, ...]] = {
    ROOT / "README.md": README_BLOCKS,
    ROOT / "docs" / "results.md": RESULTS_BLOCKS,
    FEATURE_QUALITY_PAGE: (
        Block(
            "feature quality",
            lambda: feature_quality.render(RESULTS / "probing_cpu").strip(),
        ),
    ),
    **report_pages(),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check: exit 1 when a document differs from its records",
    )


def main(args: argparse.Namespace) -> None:
    if args.check:
        stale = stale_documents(DOCUMENTS) + [
            path
            for path in map(claim_figure_path, (c for c, _ in CLAIM_FIGURES))
            if not path.exists()
        ]
        for path in stale:
            print(f"{path}: stale; run `python -m benchmarks results`", file=sys.stderr)
        sys.exit(1 if stale else 0)
    draw_claim_figures()
    for path, blocks in DOCUMENTS.items():
        path.write_text(fill(path.read_text(), blocks, path))
        print(f"Wrote {path}")
