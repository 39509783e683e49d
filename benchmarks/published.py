"""The generated blocks of README.md and docs/results.md, from the committed records.

    python -m benchmarks results            # rewrite every block in place
    python -m benchmarks results --check    # exit 1 naming each stale block

A block sits between `<!-- generated: NAME begin -->` and `<!-- generated: NAME
end -->`; everything outside the markers is prose and stays as written. Every
table and number of the results sections lives inside a block, so a rerun of the
sweeps (or a change of the verdict rules) changes the documents only through
this command, and a test fails while the committed text differs.
"""

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from benchmarks import feature_quality
from benchmarks.run_table import SweepRecords
from benchmarks.verdicts.judge import POOLED, ClaimRow, Verdict, judge_sweep
from benchmarks.verdicts.lengths import length_comparisons, lengths_frame
from benchmarks.verdicts.rules import (
    DEAD_CLAIM,
    RECONSTRUCTION_CLAIM,
    ROLES,
    RULES_TEXT,
)
from benchmarks.verdicts.summary import claim_frame, markdown, tokens_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TEXT_SWEEP, SYNTHETIC_SWEEP = "cpu", "synthetic_cpu"
CLAIM_SWEEPS = ("cpu", "synthetic_cpu", "cpu_code")
CURVE_SWEEPS = ("curves_cpu", "curves_synthetic_cpu", "curves_gated_synthetic_cpu")


@cache
def _sweep(name: str) -> SweepRecords:
    return SweepRecords.read(RESULTS / name)


@cache
def _rows(name: str) -> tuple[ClaimRow, ...]:
    return tuple(judge_sweep(_sweep(name)))


def short(verdict: Verdict) -> str:
    """A verdict in a few characters: `better 6/6`, `mixed +2 -3 /6`."""
    if verdict.status is not None:
        return verdict.status
    n = verdict.n
    if verdict.better and verdict.worse:
        return f"mixed +{verdict.better} -{verdict.worse} /{n}"
    if verdict.better:
        return f"better {verdict.better}/{n}"
    if verdict.worse:
        return f"worse {verdict.worse}/{n}"
    return f"tie {n}/{n}"


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
            cells[column] = " / ".join(short(r.verdict) if r else "-" for r in pair)
        out.append(cells)
    return markdown(pd.DataFrame(out))


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
    ]
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


def sweep_claims(name: str) -> str:
    """docs/results.md: one sweep's claim table (pooled rows, then each base
    left out of them), both forms, and its grid-edge arms."""
    sweep = _sweep(name)
    parts = [markdown(claim_frame(_rows(name)))]
    if sweep.lr_choice is not None:
        edges = sweep.lr_choice.unexplained_edges()
        parts.append(
            f"\nLearning rates chosen on the `{sweep.lr_choice.split}` split by "
            f"{sweep.lr_choice.metric}; arms at an edge of their grid: "
            + (", ".join(f"{a} ({e})" for a, e in edges.items()) or "none")
            + "."
        )
    return "\n".join(parts)


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


@dataclass(frozen=True)
class Block:
    """A generated block: its marker name and what renders it."""

    name: str
    render: Callable[[], str]


README_BLOCKS = (Block("results", readme_results),)
RESULTS_BLOCKS = (
    Block("rules", lambda: RULES_TEXT),
    Block("learning-rate edges", learning_rate_edges),
    *(Block(f"claims {n}", lambda n=n: sweep_claims(n)) for n in CLAIM_SWEEPS),
    *(Block(f"lengths {n}", lambda n=n: curve_lengths(n)) for n in CURVE_SWEEPS),
    Block(
        "feature quality",
        lambda: feature_quality.render(RESULTS / "probing_cpu").strip(),
    ),
)
DOCUMENTS: dict[Path, tuple[Block, ...]] = {
    ROOT / "README.md": README_BLOCKS,
    ROOT / "docs" / "results.md": RESULTS_BLOCKS,
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} begin -->)(.*?)(<!-- generated: "
        rf"{re.escape(name)} end -->)",
        re.DOTALL,
    )


def fill(text: str, blocks: tuple[Block, ...], path: Path) -> str:
    """`text` with every block's content rendered anew; a missing marker is an
    error naming the block and the file."""
    for block in blocks:
        pattern = _pattern(block.name)
        if not pattern.search(text):
            raise ValueError(
                f"{path}: no '<!-- generated: {block.name} begin/end -->' markers; "
                "add them where the block belongs."
            )
        content = "\n" + block.render().strip("\n") + "\n"
        text = pattern.sub(lambda m: m[1] + content + m[3], text, count=1)
    return text


def stale_documents(
    documents: dict[Path, tuple[Block, ...]] = DOCUMENTS,
) -> list[Path]:
    """The documents whose committed text differs from the records' rendering."""
    return [
        path
        for path, blocks in documents.items()
        if fill(path.read_text(), blocks, path) != path.read_text()
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check: exit 1 when a document differs from its records",
    )


def main(args: argparse.Namespace) -> None:
    if args.check:
        stale = stale_documents(DOCUMENTS)
        for path in stale:
            print(f"{path}: stale; run `python -m benchmarks results`", file=sys.stderr)
        sys.exit(1 if stale else 0)
    for path, blocks in DOCUMENTS.items():
        path.write_text(fill(path.read_text(), blocks, path))
        print(f"Wrote {path}")
