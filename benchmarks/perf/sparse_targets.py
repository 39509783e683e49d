"""The sparse step's targets, each figure read off `sparse-perf` records, before
and after a change, as one table (docs/performance.md):

    python -m benchmarks sparse-perf --render-targets BEFORE.jsonl AFTER.jsonl

A figure a records file does not hold (a measurement added later) reads "n/a".
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.perf.sparse_tables import github_table, latest

Records = dict[tuple[str, str | None, int], dict[str, Any]]


@dataclass(frozen=True)
class Target:
    """One figure and the bound it should meet.

    Args:
        figure: What is measured, as the table says it.
        goal: The bound, as the table says it.
        value: The figure from `latest` records by (measurement, family, d_sae);
            None where they do not hold it.
    """

    figure: str
    goal: str
    value: Callable[[Records], float | None]


def _step_ratio(family: str, d_sae: int, arm: str, reference: str) -> Callable:
    def value(records: Records) -> float | None:
        r = records.get(("sparse_step", family, d_sae))
        if r is None or arm not in r["median_step_s"]:
            return None
        return r["median_step_s"][arm] / r["median_step_s"][reference]

    return value


def _gemm_share(d_sae: int, arm: str) -> Callable:
    def value(records: Records) -> float | None:
        r = records.get(("sparse_scaling", None, d_sae))
        return None if r is None else r["encoder_gemm_share"][arm]

    return value


def _worst_aligned_over_stock(records: Records) -> float | None:
    pairs = [
        ("aligned_tied", "sparse_stock"),
        ("aligned_projected", "sparse_stock"),
        ("aligned_tied_autocast", "sparse_stock_autocast"),
    ]
    ratios = [
        r["median_step_s"][arm] / r["median_step_s"][stock]
        for (measurement, _, _), r in records.items()
        if measurement == "sparse_step"
        for arm, stock in pairs
        if arm in r["median_step_s"]
    ]
    return max(ratios) if ratios else None


def _loop_memory_ratio(d_sae: int, arm: str) -> Callable:
    def value(records: Records) -> float | None:
        r = records.get(("sparse_loop_memory", "topk", d_sae))
        if r is None:
            return None
        peaks = r["peak_memory_bytes"]
        return peaks[arm] / peaks["saelens_dense"]

    return value


# (figure, goal, value) of each target.
TARGETS = tuple(
    Target(*row)
    for row in (
        *(
            (
                f"BatchTopK `tied` / SAELens `batchtopk`, d_sae {d_sae}",
                goal,
                _step_ratio("batchtopk", d_sae, "aligned_tied", "saelens_dense"),
            )
            for d_sae, goal in ((18432, "<= 0.16"), (4608, "<= 0.20"))
        ),
        *(
            (
                f"TopK {name} autocast / {name} fp32 sparse, d_sae 18432",
                "<= 0.65",
                _step_ratio("topk", 18432, f"{arm}_autocast", arm),
            )
            for name, arm in (("`tied`", "aligned_tied"), ("stock", "sparse_stock"))
        ),
        *(
            (
                f"TopK `tied` {what} / SAELens dense fp32 `topk`, d_sae 18432",
                goal,
                _step_ratio("topk", 18432, arm, "saelens_dense"),
            )
            for what, goal, arm in (
                ("autocast", "<= 0.10", "aligned_tied_autocast"),
                ("fp32 sparse", "(reference)", "aligned_tied"),
            )
        ),
        *(
            (
                f"encoder GEMM share of the fp32 TopK step ({name}), d_sae 18432",
                ">= 0.75",
                _gemm_share(18432, arm),
            )
            for name, arm in (("stock", "sparse_stock"), ("`tied`", "aligned_tied"))
        ),
        ("worst aligned / stock, every step row", "<= 1.02", _worst_aligned_over_stock),
        (
            "training-loop peak memory, `tied` / SAELens dense, d_sae 18432",
            "(lower)",
            _loop_memory_ratio(18432, "aligned_tied"),
        ),
    )
)


def _keyed(records: list[dict[str, Any]]) -> Records:
    return {(r["measurement"], r.get("family"), r["d_sae"]): r for r in latest(records)}


def render_targets(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> list[list[str]]:
    """Rows: figure, goal, before, after."""
    keyed = (_keyed(before), _keyed(after))
    rows = []
    for target in TARGETS:
        values = [target.value(records) for records in keyed]
        rows.append(
            [
                target.figure,
                target.goal,
                *("n/a" if v is None else f"{v:.3f}" for v in values),
            ]
        )
    return rows


def targets_table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """The targets of docs/performance.md, before and after."""
    return github_table(
        ["figure", "goal", "before", "after"], render_targets(before, after)
    )
