"""Each base architecture's own verdicts, from the sweeps that calibrate every
base to the TopK points' L0 (issue #33's `cpu_matched` and `synthetic_matched`).

The README's table pools bases; a base whose points are too few to join the
pool, or whose aligned form helps where another's hurts, disappears into that
pool. This table gives every base its own row per claim metric, against the
stock base and the fair control, so "`tied` hurts gated" is read off directly.

Pure: claim rows (`verdicts.judge`) and run counts in, markdown out;
`published` reads the committed records.
"""

from collections.abc import Mapping, Sequence

import pandas as pd

from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow
from benchmarks.analysis.verdicts.rules import ROLES
from benchmarks.analysis.verdicts.summary import compact_markdown
from benchmarks.reports.results_brief import SHORT_ROLE, claim_name

BASE_ORDER = ("standard", "gated", "panneal", "jumprelu", "topk", "batchtopk")
"""The L1-family bases the matched sweeps exist for first, then the TopK family."""


def _base_key(base: str) -> tuple[int, str]:
    return (BASE_ORDER.index(base) if base in BASE_ORDER else len(BASE_ORDER), base)


def per_base_table(sweeps: Mapping[str, Sequence[ClaimRow]], form: str = "tied") -> str:
    """One row per base and claim metric of `form`, one column per sweep and
    reference; a cell is the verdict with every count ("worse at 7, tie at 2
    of 9"), "-" where the sweep has no such row."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for name, rows in sweeps.items():
        for row in rows:
            if row.alignment != form or row.base == POOLED:
                continue
            header = f"`{name}` vs {SHORT_ROLE.get(row.role, row.role)}"
            cells.setdefault((row.base, claim_name(row)), {})[header] = row.verdict.text
    if not cells:
        return "No records yet."
    headers = [
        f"`{name}` vs {SHORT_ROLE.get(role, role)}" for name in sweeps for role in ROLES
    ]
    out = []
    previous_base = None
    for base, claim in sorted(cells, key=lambda k: _base_key(k[0])):
        row = {"base": base if base != previous_base else "", "claim (metric)": claim}
        row.update({h: cells[base, claim].get(h, "-") for h in headers})
        out.append(row)
        previous_base = base
    return compact_markdown(pd.DataFrame(out))


def progress_line(main_runs: Mapping[str, int], planned: Mapping[str, int]) -> str:
    """How far each matched sweep has got: "`cpu_matched` not started;
    `synthetic_matched` 54 of 162 main runs"."""
    parts = []
    for name, planned_runs in planned.items():
        done = main_runs.get(name, 0)
        if done >= planned_runs:
            parts.append(f"`{name}` complete ({done} main runs)")
        elif done == 0:
            parts.append(f"`{name}` no main run recorded yet")
        else:
            parts.append(f"`{name}` {done} of {planned_runs} main runs")
    return "Progress: " + "; ".join(parts) + "."
