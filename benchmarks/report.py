"""A sweep's report, rendered from its records alone.

    python -m benchmarks report DIR

reads `DIR/records/` (run and stability records, `benchmarks.records`) and writes
`DIR/report/`:

    report.md                     claim table, Pareto plots, per-point tables,
                                  skipped evaluations
    pareto_<metric>_d<d_sae>.png  metric vs L0 (log), one line per label
    summary.json                  the claim rows and point summaries as JSON

`report_markdown` and `plot_pareto` are pure (records in, text or a figure out);
`render_report` does the I/O, every file through a temporary sibling and
os.replace, so rerunning it (for instance while a sweep is still adding records)
never leaves a half-written file.
"""

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import claims, pareto, records
from benchmarks.claims import ClaimRow
from benchmarks.pareto import STABILITY, PointSummary

REPORT_DIRNAME = "report"
REPORT_FILENAME = "report.md"
SUMMARY_FILENAME = "summary.json"
PLOT_PREFIX = "pareto_"
# Metrics plotted against L0 and tabulated, in this order, where recorded.
REPORT_METRICS = (
    "ce_loss_score",
    "explained_variance",
    "dead_fraction",
    STABILITY,
    "mcc",
    "alignment_mean",
)
METRIC_TITLES = {
    "ce_loss_score": "CE-loss score",
    "explained_variance": "explained variance",
    "dead_fraction": "dead fraction",
    STABILITY: "shared latents across seeds",
    "mcc": "MCC (ground truth)",
    "alignment_mean": "mean alignment score",
}
_LINESTYLES = {None: "-", "tied": "--", "projected": ":"}
_MARKERS = {None: "o", "tied": "s", "projected": "^"}


def report_points(
    run_records: Sequence[dict[str, Any]],
    stability_records: Sequence[dict[str, Any]],
) -> dict[str, list[PointSummary]]:
    """Point summaries of every REPORT_METRICS metric that has data."""
    points = {}
    for metric in REPORT_METRICS:
        summaries = pareto.aggregate(run_records, metric, stability_records)
        if summaries:
            points[metric] = summaries
    return points


def plot_filename(metric: str, d_sae: int) -> str:
    return f"{PLOT_PREFIX}{metric}_d{d_sae}.png"


def _label_order(p: PointSummary) -> tuple[str, int, str]:
    """Each base architecture, then its aligned forms (tied, projected)."""
    form = list(_LINESTYLES).index(p.alignment) if p.alignment in _LINESTYLES else 3
    return (p.base_architecture, form, p.label)


def _error_bars(
    points: Sequence[tuple[float, float, float]],
) -> list[list[float]]:
    """Matplotlib's [[below], [above]] from (mean, min, max); never negative
    (a mean can round past an equal min or max)."""
    return [
        [max(mean - lo, 0.0) for mean, lo, _ in points],
        [max(hi - mean, 0.0) for mean, _, hi in points],
    ]


def plot_pareto(points: Sequence[PointSummary], metric: str, d_sae: int) -> Any:
    """Metric vs L0 (log x) at one d_sae: one line per label through the seed
    means, min-max error bars on both axes, the Pareto frontier (over every
    label) circled when the metric has a better direction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curves = pareto.curves(p for p in points if p.d_sae == d_sae)
    bases = sorted({c[0].base_architecture for c in curves.values()})
    colors = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(bases)}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for curve in sorted(curves.values(), key=lambda c: _label_order(c[0])):
        first = curve[0]
        x = [p.l0_mean for p in curve]
        y = [p.mean for p in curve]
        ax.errorbar(
            x,
            y,
            xerr=_error_bars([(p.l0_mean, p.l0_min, p.l0_max) for p in curve]),
            yerr=_error_bars([(p.mean, p.min, p.max) for p in curve]),
            color=colors[first.base_architecture],
            linestyle=_LINESTYLES.get(first.alignment, "-."),
            marker=_MARKERS.get(first.alignment, "D"),
            markersize=5,
            capsize=2,
            label=first.label,
        )
    higher = pareto.higher_is_better(metric)
    if higher is not None:
        frontier = pareto.pareto_frontier(
            [p for c in curves.values() for p in c], higher_is_better=higher
        )
        ax.plot(
            [p.l0_mean for p in frontier],
            [p.mean for p in frontier],
            color="0.5",
            linewidth=6,
            alpha=0.25,
            zorder=0,
            label="Pareto frontier",
        )
        ax.scatter(
            [p.l0_mean for p in frontier],
            [p.mean for p in frontier],
            s=140,
            facecolors="none",
            edgecolors="k",
            linewidths=1.0,
            zorder=3,
        )
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    l0s = [p.l0_mean for c in curves.values() for p in c]
    if l0s and max(l0s) < 10 * min(l0s):  # under a decade: label minor ticks too
        ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("L0 (seed mean; bars: min-max over seeds)")
    title = METRIC_TITLES.get(metric, metric)
    ax.set_ylabel(title)
    direction = {True: "higher is better", False: "lower is better", None: ""}[higher]
    ax.set_title(
        f"{title} vs L0, d_sae {d_sae}" + (f" ({direction})" if direction else "")
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _cell(mean: float, lo: float, hi: float, n: int, digits: int = 3) -> str:
    """`mean ± half the min-max range` (just the mean for one value)."""
    if not math.isfinite(mean):
        return ""
    if n > 1 and hi > lo:
        return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"
    return f"{mean:.{digits}f}"


def _metric_cell(p: PointSummary | None) -> str:
    return "" if p is None else _cell(p.mean, p.min, p.max, p.n)


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def points_table(points: dict[str, list[PointSummary]], d_sae: int) -> str:
    """Markdown table of every point at one d_sae: label, sparsity, L0, each
    metric as seed mean ± half its min-max range, seeds."""
    metrics = [m for m in REPORT_METRICS if m in points]
    rows: dict[tuple[str, str, float, int], dict[str, PointSummary]] = defaultdict(dict)
    for metric, summaries in points.items():
        for p in summaries:
            if p.d_sae == d_sae:
                rows[p.key][metric] = p
    lines = [
        "| label | sparsity | L0 | "
        + " | ".join(METRIC_TITLES.get(m, m) for m in metrics)
        + " | seeds |",
        "|---|---|---|" + "---|" * len(metrics) + "---|",
    ]

    def order(key: tuple[str, str, float, int]) -> tuple[str, int, str, float]:
        p = next(iter(rows[key].values()))
        l0 = p.l0_mean if math.isfinite(p.l0_mean) else math.inf
        return (*_label_order(p), l0)

    for key in sorted(rows, key=order):
        cells = rows[key]
        # L0 of the seeds behind the first run-record metric (stability: all)
        first = next(
            (p for m, p in cells.items() if m != STABILITY), next(iter(cells.values()))
        )
        l0 = _cell(first.l0_mean, first.l0_min, first.l0_max, first.n_seeds, digits=1)
        seeds = max(p.n_seeds for p in cells.values())
        lines.append(
            f"| {key[0]} | {key[1]}={_value(key[2])} | {l0} | "
            + " | ".join(_metric_cell(cells.get(m)) for m in metrics)
            + f" | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def claims_table(rows: Sequence[ClaimRow]) -> str:
    lines = ["| claim | alignment | verdict | evidence |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.claim} | {r.alignment} | **{r.verdict}** | {r.evidence} |")
    return "\n".join(lines) + "\n"


def skipped_evals(
    run_records: Sequence[dict[str, Any]],
) -> list[tuple[str, str, list[str]]]:
    """(eval, reason, run ids) for every eval some run skipped, from
    `eval_result_unstructured["skipped_evals"]`."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in run_records:
        skipped = (record.get("eval_result_unstructured") or {}).get(
            "skipped_evals"
        ) or {}
        for name, reason in skipped.items():
            grouped[(name, str(reason))].append(records.run_info(record)["run_id"])
    return [(name, reason, ids) for (name, reason), ids in sorted(grouped.items())]


def _sweep_line(run_records: Sequence[dict[str, Any]]) -> str:
    sweep = run_records[0]["eval_config"].get("sweep") or {}
    fields = [
        f"{name} {sweep[name]}"
        for name in ("kind", "model", "hook", "training_tokens", "lr", "seeds")
        if sweep.get(name) is not None
    ]
    return ("Sweep: " + ", ".join(fields) + ".\n\n") if fields else ""


_RULES = """\
How to read it: every number is a seed mean; `±` is half the range between the
lowest and highest seed (for stability, between seed pairs). An aligned point is
compared with its base architecture (`base_architecture` in its record) at the
same d_sae: at the same sparsity value for dead features, at the aligned point's
L0 otherwise (the base curve read linearly in log L0). A comparison counts as
better or worse only when the seed ranges do not overlap. A claim is confirmed
when every comparison is better, refuted when none is and one is worse, and
mixed otherwise; "dead features eliminated" also needs every aligned point at
or below 1% dead. A "composes with" row confirms when one of the four claims
confirms on that architecture pair and none refutes. The full rules are in
`benchmarks/claims.py` (`claim_table`).
"""


def report_markdown(
    run_records: Sequence[dict[str, Any]],
    stability_records: Sequence[dict[str, Any]],
    points: dict[str, list[PointSummary]],
    claims: Sequence[ClaimRow],
    plots: dict[int, list[tuple[str, str]]],
) -> str:
    """The report's markdown. `plots` maps d_sae to (metric, file name) pairs."""
    sweep = run_records[0]["eval_config"].get("sweep") or {}
    labels = sorted({records.run_info(r)["label"] for r in run_records})
    d_saes = sorted({int(records.run_info(r)["d_sae"]) for r in run_records})
    parts = [
        f"# Sweep report: {sweep.get('name', 'sweep')}\n\n",
        f"{len(run_records)} run records and {len(stability_records)} stability "
        f"records from `records/`; labels: {', '.join(f'`{x}`' for x in labels)}; "
        f"d_sae {', '.join(map(str, d_saes))}.\n\n",
        _sweep_line(run_records),
        "## Claims\n\n",
        claims_table(claims),
        "\n" + _RULES,
        "\n## Pareto plots\n\n",
        "Lines join seed means; bars span the lowest to highest seed on both axes; "
        "circled points are on the Pareto frontier over every label.\n",
    ]
    for d_sae in d_saes:
        parts.append(f"\n### d_sae {d_sae}\n\n")
        for metric, filename in plots.get(d_sae, []):
            parts.append(f"![{METRIC_TITLES.get(metric, metric)}]({filename})\n")
    parts.append("\n## Points\n")
    for d_sae in d_saes:
        parts.append(f"\n### d_sae {d_sae}\n\n")
        parts.append(points_table(points, d_sae))
    parts.append("\n## Skipped evaluations\n\n")
    skipped = skipped_evals(run_records)
    if not skipped:
        parts.append("None: every run ran every evaluation.\n")
    for name, reason, ids in skipped:
        shown = ", ".join(f"`{i}`" for i in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        parts.append(f"- `{name}` ({len(ids)} runs: {shown}{more}): {reason}\n")
    return "".join(parts)


def render_report(out_dir: Path) -> Path:
    """Write `out_dir/report/` from `out_dir/records/`; returns report.md's path.

    Plots whose metric or d_sae no longer has data are removed, so the folder
    always matches the records.
    """
    from saelens_aligned.io import save_figure_atomic, write_text_atomic

    out_dir = Path(out_dir)
    run_records, stability_records = records.load_records(out_dir)
    if not run_records:
        raise FileNotFoundError(
            f"{out_dir / records.RECORDS_DIRNAME}: no run records; run "
            "`python -m benchmarks sweep` into this folder first."
        )
    report_dir = out_dir / REPORT_DIRNAME
    report_dir.mkdir(parents=True, exist_ok=True)
    points = report_points(run_records, stability_records)
    claim_rows = claims.claim_table(run_records, stability_records)
    plots: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for metric, summaries in points.items():
        for d_sae in sorted({d_sae for _, d_sae in pareto.curves(summaries)}):
            filename = plot_filename(metric, d_sae)
            save_figure_atomic(
                plot_pareto(summaries, metric, d_sae), report_dir / filename
            )
            plots[d_sae].append((metric, filename))
    written = {name for pairs in plots.values() for _, name in pairs}
    for stale in report_dir.glob(f"{PLOT_PREFIX}*.png"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    records.write_json_atomic(
        report_dir / SUMMARY_FILENAME,
        {
            "claims": [asdict(r) for r in claim_rows],
            "points": {m: [asdict(p) for p in ps] for m, ps in points.items()},
        },
    )
    path = report_dir / REPORT_FILENAME
    write_text_atomic(
        path, report_markdown(run_records, stability_records, points, claim_rows, plots)
    )
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir", type=Path, help="sweep folder (the one holding records/)"
    )


def main(args: argparse.Namespace) -> None:
    path = render_report(args.out_dir)
    print(f"Report: {path}")
