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

from benchmarks.analysis.verdicts.judge import ClaimRow, judge_sweep
from benchmarks.analysis.verdicts.lengths import (
    LengthComparison,
    length_comparisons,
    lengths_frame,
)
from benchmarks.analysis.verdicts.rules import (
    DEAD_CLAIM,
    RECONSTRUCTION_CLAIM,
    RULES_TEXT,
    STABILITY_CLAIM,
)
from benchmarks.analysis.verdicts.summary import (
    answer_frame,
    markdown,
)
from benchmarks.perf import scale_estimate
from benchmarks.records.run_table import SweepRecords
from benchmarks.release import build as release_build
from benchmarks.release import precision as release_precision
from benchmarks.reports import (
    feature_quality,
    per_base,
    results_brief,
    scale,
    scale_brief,
)
from benchmarks.reports.claim_figures import claim_caption, plot_claim
from benchmarks.reports.generated import Block, fill, stale_documents
from benchmarks.reports.tables import claims_section
from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.runs import planned_main_run_count

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
TEXT_SWEEP, SYNTHETIC_SWEEP = "cpu_matched", "synthetic_matched"


@cache
def _sweep(name: str) -> SweepRecords:
    return SweepRecords.read(RESULTS / name)


@cache
def _rows(name: str) -> tuple[ClaimRow, ...]:
    return tuple(judge_sweep(_sweep(name)))


CURVE_SWEEPS = ("curves_cpu", "curves_synthetic_cpu")
"""The TopK learning-curve sweeps whose lengths the results pages follow."""
BRIEF_SWEEPS = (TEXT_SWEEP, SYNTHETIC_SWEEP)
MATCHED_SWEEPS = ("cpu_matched", "synthetic_matched")
"""The sweeps that calibrate every base to the TopK points' L0 (issue #33);
their presets have the same names."""


def _curves() -> dict[str, list[LengthComparison]]:
    return {name: length_comparisons(_sweep(name)) for name in CURVE_SWEEPS}


def readme_results() -> str:
    """The README's block: both forms' pooled verdicts, the bases behind each
    column and what the seeds vary (by training length: docs/results.md)."""
    # A metric that fails the reliability study's tests (TPP) stays in
    # docs/results.md, where its caveat has room; the README shows the rest.
    sweeps = {
        name: tuple(r for r in _rows(name) if not r.spec.caveat)
        for name in BRIEF_SWEEPS
    }
    return "\n".join(
        [
            results_brief.verdict_table(sweeps),
            "",
            " ".join(
                part
                for part in (
                    results_brief.unjudged_line(sweeps),
                    results_brief.bases_line(sweeps),
                    results_brief.seeds_line({n: _sweep(n).runs for n in BRIEF_SWEEPS}),
                )
                if part
            ),
        ]
    )


def per_base_verdicts() -> str:
    """docs/results.md's per-base table from the matched sweeps, with how far
    each has got (a sweep runs over several sessions)."""
    # A sweep with no main run yet gets no column: only its progress (its
    # grid records may be on disk and not yet committed).
    present = [
        n
        for n in MATCHED_SWEEPS
        if (RESULTS / n / "records").is_dir() and _sweep(n).runs
    ]
    planned = {n: planned_main_run_count(load_sweep_config(n)) for n in MATCHED_SWEEPS}
    done = {n: len(_sweep(n).runs) for n in present}
    table = per_base.per_base_table({n: _rows(n) for n in present})
    return per_base.progress_line(done, planned) + "\n\n" + table


def length_lines() -> str:
    """docs/results.md's length lines: every metric, each reference, intervals."""
    return results_brief.length_lines(_curves())


def seeds_lines() -> str:
    """docs/results.md's line on what every committed sweep's seeds vary."""
    names = sorted(p.name for p in RESULTS.iterdir() if (p / "records").is_dir())
    return results_brief.seeds_line({n: _sweep(n).runs for n in names})


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


def answer(form: str = "tied") -> str:
    """docs/results.md's lead: every claim's pooled verdict of `form`, how much
    and against which reference, on text and on synthetic data."""
    return markdown(
        answer_frame(
            {name: _rows(name) for name in (TEXT_SWEEP, SYNTHETIC_SWEEP)}, form
        )
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


SCALE_FIGURE = FIGURES_DIR / "scale-dead-and-ce.png"


def draw_scale_figure() -> None:
    """docs/scale.md's figure, once two dictionary sizes have records."""
    from saelens_aligned.io import save_figure_atomic

    figure = scale.scale_figure(RESULTS)
    if figure is not None:
        save_figure_atomic(figure.figure, SCALE_FIGURE)


SCALE_BLOCKS = (
    Block(
        "scale figure",
        lambda: scale.figure_block(
            RESULTS, str(SCALE_FIGURE.relative_to(ROOT / "docs"))
        ),
    ),
    Block("scale tokens", lambda: scale.tokens_block(RESULTS)),
    Block("scale claims", lambda: scale.claims_block(RESULTS)),
)


def report_pages() -> dict[Path, tuple[Block, ...]]:
    """Each committed sweep's report page, whose claim table (and, for a
    learning-curve sweep, length table) is a generated block."""
    pages: dict[Path, tuple[Block, ...]] = {}
    for name in sorted(p.name for p in RESULTS.iterdir() if p.is_dir()):
        page = RESULTS / name / "report" / "report.md"
        if not page.exists():
            continue
        blocks = [
            Block("claims", lambda n=name: claims_section(_rows(n), _sweep(n).runs))
        ]
        if _sweep(name).checkpoints:
            blocks.append(Block("lengths", lambda n=name: curve_lengths(n)))
        pages[page] = tuple(blocks)
    return pages


RELEASE_BLOCKS = (
    Block("release table", lambda: release_build.render()),
    Block("release precision", lambda: release_precision.render()),
)
"""docs/pretrained.md: the shipped files' evaluation beside the stock SAEs, and
what 16-bit storage of the encoder changes."""

FEATURE_QUALITY_PAGE = RESULTS / "probing_cpu" / "report" / "feature_quality.md"
README_BLOCKS = (
    Block("results", readme_results),
    Block("scale", lambda: scale_brief.render(RESULTS)),
)
RESULTS_BLOCKS = (
    Block("answer", answer),
    Block("answer projected", lambda: answer("projected")),
    Block("per base", per_base_verdicts),
    Block("lengths", length_lines),
    Block("seeds", seeds_lines),
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
    ROOT / "docs" / "scale.md": SCALE_BLOCKS,
    ROOT / "docs" / "pretrained.md": RELEASE_BLOCKS,
    RESULTS / "README.md": (Block("scale estimate", scale_estimate.render),),
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
        figures = [claim_figure_path(c) for c, _ in CLAIM_FIGURES]
        if scale.sizes_drawn(RESULTS) >= 2:
            figures.append(SCALE_FIGURE)
        stale = stale_documents(DOCUMENTS) + [p for p in figures if not p.exists()]
        for path in stale:
            print(f"{path}: stale; run `python -m benchmarks results`", file=sys.stderr)
        sys.exit(1 if stale else 0)
    draw_claim_figures()
    draw_scale_figure()
    for path, blocks in DOCUMENTS.items():
        path.write_text(fill(path.read_text(), blocks, path))
        print(f"Wrote {path}")
