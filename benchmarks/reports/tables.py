"""The markdown tables of a sweep's report, from typed records and point
summaries. Pure: nothing here reads files or plots."""

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.analysis.pareto import PointSummary
from benchmarks.analysis.verdicts import summary as verdict_tables
from benchmarks.analysis.verdicts.degenerate import DEGENERATE_FLOORS, DegeneratePoint
from benchmarks.analysis.verdicts.judge import ClaimRow
from benchmarks.analysis.verdicts.rules import RULES_TEXT
from benchmarks.records.calibration import ArmCalibration
from benchmarks.records.run_table import (
    STABILITY,
    STABILITY_ALL,
    STABILITY_ENC_DEC,
    LearningRateChoice,
    RunRecord,
    StabilityRecord,
)
from benchmarks.reports import display
from benchmarks.reports.generated import marked

REPORT_METRICS = (
    "ce_loss_score",
    "explained_variance",
    "explained_variance_legacy",
    "dead_fraction",
    "dead_fraction_long",
    STABILITY,
    "mcc",
    "f1",
    "alignment_mean",
    "absorption_fraction",
    "absorption_full",
    "sparse_probing_top1",
    "sae_probes_top1",
    "tpp_total",
)
"""Metrics plotted against L0 and tabulated, in this order, where recorded."""
METRIC_TITLES = display.METRIC_NAMES
"""Metric names in table headers and image titles (`benchmarks.reports.display`)."""
STABILITY_METRICS = (STABILITY, STABILITY_ALL, STABILITY_ENC_DEC)
"""The stability table's pseudo-metrics, in this order."""
FORM_ORDER = (None, "tied", "projected")


def label_order(p: PointSummary) -> tuple[str, int, str]:
    """Each base architecture, then its aligned forms (tied, projected)."""
    form = FORM_ORDER.index(p.alignment) if p.alignment in FORM_ORDER else 3
    return (p.base_architecture, form, p.label)


def _cell(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """`mean ± half the width of [lo, hi]` (just the mean without bounds)."""
    if not math.isfinite(mean):
        return ""
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"
    return f"{mean:.{digits}f}"


def _metric_cell(p: PointSummary | None) -> str:
    """Seed mean ± half its 95% t interval."""
    return "" if p is None else _cell(p.mean, p.ci_low, p.ci_high)


def value_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _rows_at(
    points: dict[str, list[PointSummary]], metrics: Sequence[str], d_sae: int
) -> dict[tuple, dict[str, PointSummary]]:
    rows: dict[tuple, dict[str, PointSummary]] = defaultdict(dict)
    for metric in metrics:
        for p in points.get(metric, []):
            if p.d_sae == d_sae:
                rows[p.key][metric] = p
    return rows


def _row_order(cells: dict[str, PointSummary]) -> tuple[str, int, str, float]:
    p = next(iter(cells.values()))
    l0 = p.l0_mean if math.isfinite(p.l0_mean) else math.inf
    return (*label_order(p), l0)


def points_table(points: dict[str, list[PointSummary]], d_sae: int) -> str:
    """Every point at one d_sae: label, sparsity, L0 (seed mean ± half its
    min-max range), each metric as seed mean ± half its 95% t interval, seeds."""
    metrics = [m for m in REPORT_METRICS if m in points]
    rows = _rows_at(points, metrics, d_sae)
    lines = [
        "| label | sparsity | L0 | "
        + " | ".join(METRIC_TITLES.get(m, m) for m in metrics)
        + " | seeds |",
        "|---|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for key in sorted(rows, key=lambda k: _row_order(rows[k])):
        cells = rows[key]
        # L0 of the seeds behind the first run-record metric (stability: all)
        first = next(
            (p for m, p in cells.items() if m != STABILITY), next(iter(cells.values()))
        )
        l0 = _cell(first.l0_mean, first.l0_min, first.l0_max, digits=1)
        seeds = max(p.n_seeds for p in cells.values())
        lines.append(
            f"| {key[0]} | {key[1]}={value_text(key[2])} | {l0} | "
            + " | ".join(_metric_cell(cells.get(m)) for m in metrics)
            + f" | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def stability_table(
    points: dict[str, list[PointSummary]],
    stability: Sequence[StabilityRecord],
    d_sae: int,
) -> str:
    """Every stability point at one d_sae, each criterion as seed-pair mean ±
    half its 95% t interval, and the chance baseline (two independently
    initialised, untrained SAEs of the same architecture and shape)."""
    chance = {tuple(s.point): s for s in stability}
    rows = _rows_at(points, STABILITY_METRICS, d_sae)
    if not rows:
        return "No stability records at this d_sae.\n"
    lines = [
        "| label | sparsity | L0 | "
        + " | ".join(METRIC_TITLES[m] for m in STABILITY_METRICS)
        + " | chance (decoder) | chance (enc+dec) | seeds |",
        "|---|---|---|" + "---|" * len(STABILITY_METRICS) + "---|---|---|",
    ]
    for key in sorted(rows, key=lambda k: label_order(next(iter(rows[k].values())))):
        cells = rows[key]
        first = next(iter(cells.values()))
        record = chance.get(tuple(key))
        lines.append(
            f"| {key[0]} | {key[1]}={value_text(key[2])} | "
            f"{_cell(first.l0_mean, first.l0_min, first.l0_max, digits=1)} | "
            + " | ".join(_metric_cell(cells.get(m)) for m in STABILITY_METRICS)
            + f" | {_maybe(record.chance if record else math.nan)}"
            + f" | {_maybe(record.chance_enc_dec if record else math.nan)}"
            + f" | {first.n_seeds} |"
        )
    return "\n".join(lines) + "\n"


def _maybe(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.3f}"


def claims_section(rows: Sequence[ClaimRow], runs: Sequence[RunRecord] = ()) -> str:
    """The report's Claims heading, what the seeds behind every interval vary
    (`seeds_vary`, from `runs`; left out without them), and the claim table
    (`verdicts.summary.claim_frame`): the generated block `python -m
    benchmarks results --check` holds to the records."""
    seeds = f"In this sweep the seeds {seeds_vary(runs)}.\n\n" if runs else ""
    return (
        "## Claims\n\n"
        + seeds
        + verdict_tables.markdown(verdict_tables.claim_frame(rows))
    )


def claims_table(rows: Sequence[ClaimRow], runs: Sequence[RunRecord] = ()) -> str:
    """The Claims section (`claims_section`, between its markers), then every row
    per base with its evidence."""
    return (
        marked("claims", claims_section(rows, runs))
        + "\n\n### Every base, with its evidence\n\n"
        + verdict_tables.markdown(verdict_tables.per_base_frame(rows))
        + "\n"
    )


def rules_text() -> str:
    """How to read the claim table: the rules of `benchmarks.analysis.verdicts.rules`."""
    floors = ", ".join(
        f"{name} < {floor:g}" for name, floor in DEGENERATE_FLOORS.items()
    )
    return (
        RULES_TEXT + f"- Collapse floors (seed means): {floors}. Intervals shown are "
        "uncorrected 95% t intervals; outcomes are after the correction.\n"
    )


def degenerate_table(points: Sequence[DegeneratePoint]) -> str:
    """Every point with a collapsed seed, and whether it is left out."""
    if not points:
        return "None: no seed crosses a degeneracy floor.\n"
    lines = [
        "| label | sparsity | d_sae | collapsed seeds | seed means below floor "
        "| left out |",
        "|---|---|---|---|---|---|",
    ]
    for d in points:
        p = d.point
        lines.append(
            f"| {p.label} | {p.sparsity_param}={value_text(p.sparsity_value)} | "
            f"{p.d_sae} | {d.n_degenerate_seeds}/{d.n_seeds} | "
            f"{', '.join(d.reasons) or '-'} | {'yes' if d.excluded else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def lr_table(choice: LearningRateChoice) -> str:
    """The learning-rate grid, one row per arm, one column per rate, the chosen
    rate's score in bold, and whether the choice sits at an edge."""
    rates = sorted({lr for values in choice.grid.values() for lr in values})
    lines = [
        "| arm | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen | edge |",
        "|---|" + "---|" * len(rates) + "---|---|",
    ]
    for label in sorted(choice.grid):
        pick = choice.chosen.get(label)
        cells = []
        for lr in rates:
            value = choice.grid[label].get(lr)
            text = "" if value is None or not math.isfinite(value) else f"{value:.4f}"
            if text and pick is not None and math.isclose(lr, pick):
                text = f"**{text}**"
            cells.append(text)
        edge = choice.edge(label) or ""
        if edge and choice.bound_edges.get(label) == edge:
            edge += " (stated bound)"
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {'' if pick is None else f'{pick:g}'} | {edge} |"
        )
    return "\n".join(lines) + "\n"


def calibration_table(calibration: Mapping[str, ArmCalibration]) -> str:
    """Each calibrated arm (`benchmarks.records.calibration`): its chosen rate,
    and per target L0 the coefficient found with the L0 its trial reached on the
    validation split, or the nearest L0 and why the target was not reached."""
    targets = sorted({p.target_l0 for arm in calibration.values() for p in arm.points})
    lines = [
        "| arm | lr | " + " | ".join(f"L0 {t:g}" for t in targets) + " |",
        "|---|---|" + "---|" * len(targets),
    ]
    for label in sorted(calibration):
        arm = calibration[label]
        by_target = {p.target_l0: p for p in arm.points}
        cells = []
        for target in targets:
            point = by_target.get(target)
            if point is None:
                cells.append("")
            elif point.coefficient is None:
                cells.append(f"not reached: {point.why}")
            else:
                cells.append(f"{point.coefficient:g} (L0 {point.l0:.1f})")
        lines.append(f"| {label} | {arm.lr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def eval_windows_line(runs: Sequence[RunRecord]) -> str:
    """The evaluation windows (token or sample counts) of the runs, each stated
    once; a window whose size differs between runs lists each size with its
    number of runs."""
    sizes: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for run in runs:
        for name, value in run.eval_windows.items():
            sizes[name][value_text(value)] += 1
    if not sizes:
        return ""
    parts = []
    for name in sorted(sizes):
        values = sizes[name]
        if len(values) == 1:
            parts.append(f"{name} {next(iter(values))}")
        else:
            parts.append(
                f"{name} "
                + " / ".join(
                    f"{v} ({n} runs)"
                    for v, n in sorted(values.items(), key=lambda x: float(x[0]))
                )
            )
    return "Evaluation windows: " + "; ".join(parts) + ".\n\n"


def sweep_line(runs: Sequence[RunRecord]) -> str:
    sweep = runs[0].sweep
    fields = [
        f"{name} {value}"
        for name, value in (
            ("kind", sweep.kind),
            ("model", sweep.model),
            ("hook", sweep.hook),
            ("training_tokens", sweep.training_tokens),
            ("lr", sweep.lr),
            ("seeds", list(sweep.seeds) or None),
        )
        if value is not None
    ]
    return ("Sweep: " + ", ".join(fields) + ".\n\n") if fields else ""


SEEDS_VARY: dict[bool | None, str] = {
    False: "vary the initialisation only (every run sees the same batches in the "
    "same order)",
    True: "vary the initialisation and the data order",
    None: "vary the initialisation; whether they vary the data order is not recorded",
}
"""What a sweep's seeds vary, by `SweepConfig.seed_varies_data`: the intervals
and tests cover that noise and no other, so every page says which."""


def seeds_vary(runs: Sequence[RunRecord]) -> str:
    """What the seeds of `runs` vary, from the sweep settings each record
    carries; runs that disagree are named as such."""
    varies = {run.sweep.seed_varies_data for run in runs}
    if len(varies) == 1:
        return SEEDS_VARY[varies.pop()]
    mixed = sorted({SEEDS_VARY[run.sweep.seed_varies_data] for run in runs}, key=len)
    return "differ between runs: some " + ", others ".join(mixed)


def skipped_evals(runs: Sequence[RunRecord]) -> list[tuple[str, str, list[str]]]:
    """(eval, reason, run ids) for every eval some run skipped."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for run in runs:
        for name, reason in run.skipped_evals.items():
            grouped[(name, reason)].append(run.run_id)
    return [(name, reason, ids) for (name, reason), ids in sorted(grouped.items())]


def skipped_text(runs: Sequence[RunRecord]) -> str:
    skipped = skipped_evals(runs)
    if not skipped:
        return "None: every run ran every evaluation.\n"
    lines = []
    for name, reason, ids in skipped:
        shown = ", ".join(f"`{i}`" for i in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        lines.append(f"- `{name}` ({len(ids)} runs: {shown}{more}): {reason}\n")
    return "".join(lines)


def run_times(
    runs: Sequence[RunRecord], run_log: Sequence[dict[str, Any]]
) -> list[tuple[str, float, float]]:
    """(run id, training seconds, seconds from start to record) per run, sorted
    by run id: training from the record, the whole run from the sweep's run log
    (the last `finished` event of that run; NaN if the log does not have it)."""
    finished = {
        e["run_id"]: float(e["seconds"])
        for e in run_log
        if e.get("event") == "finished" and "seconds" in e
    }
    return sorted(
        (run.run_id, run.metrics["train_seconds"], finished.get(run.run_id, math.nan))
        for run in runs
    )


def run_times_table(rows: Sequence[tuple[str, float, float]]) -> str:
    def seconds(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.0f}"

    totals = [t for _, _, t in rows if not math.isnan(t)]
    # Where a sweep's time goes decides how to shrink it: training is the part
    # that fewer tokens per SAE would cut.
    training = [t for _, t, w in rows if not (math.isnan(t) or math.isnan(w))]
    share = (
        f"; training {sum(training) / 60:.1f} min of it "
        f"({sum(training) / sum(totals):.0%}), evaluation the rest"
        if totals and sum(totals) > 0
        else ""
    )
    lines = [
        f"{len(rows)} runs; whole runs (training and every evaluation) took "
        f"{sum(totals) / 60:.1f} min of worker time in all"
        + (f", median {statistics.median(totals):.0f} s" if totals else "")
        + share
        + ". Wall time on the machine that ran them, with the sweep's other "
        "workers beside them.\n\n",
        "| run | training s | whole run s |\n|---|---|---|\n",
    ]
    lines += [f"| `{r}` | {seconds(t)} | {seconds(w)} |\n" for r, t, w in rows]
    return "".join(lines)
