"""A sweep's report, rendered from its records alone.

    python -m benchmarks report DIR

reads `DIR/records/` (run and stability records, `benchmarks.records`) and writes
`DIR/report/`:

    report.md                     claim table (vs stock base | vs init control),
                                  degenerate points, learning-rate grid, Pareto
                                  plots, per-point tables, stability with its
                                  chance baseline, skipped evaluations
    pareto_<metric>_d<d_sae>.png  metric vs L0 (log), one line per label
    summary.json                  the claim rows, degenerate points and point
                                  summaries as JSON

When the folder holds `lr_choice.json` and `sweep.json` (a sweep with a
learning-rate grid), only the main runs are reported (`main_records`): each arm
at its chosen learning rate.

`report_markdown` and `main_records` are pure (records in, text out; the plots
are `benchmarks.figures.plot_pareto`); `render_report` does the I/O, every file
through a temporary sibling and os.replace, so rerunning it (for instance while
a sweep is still adding records) never leaves a half-written file.
"""

import argparse
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import display, figures, pareto, records
from benchmarks.pareto import (
    STABILITY,
    STABILITY_ALL,
    STABILITY_ENC_DEC,
    PointSummary,
)
from benchmarks.run_table import SweepRecords
from benchmarks.verdicts import summary as verdict_tables
from benchmarks.verdicts.degenerate import (
    DEGENERATE_FLOORS,
    DegeneratePoint,
    degenerate_points,
)
from benchmarks.verdicts.judge import ClaimRow, judge_sweep
from benchmarks.verdicts.lengths import length_comparisons, lengths_frame
from benchmarks.verdicts.rules import RULES_TEXT
from saelens_aligned.errors import InputError


class NoRunRecordsError(InputError, FileNotFoundError):
    """A folder with no run records to report: bad input to `report`."""


REPORT_DIRNAME = "report"
REPORT_FILENAME = "report.md"
SUMMARY_FILENAME = "summary.json"
PLOT_PREFIX = "pareto_"
# Metrics plotted against L0 and tabulated, in this order, where recorded.
REPORT_METRICS = (
    "ce_loss_score",
    "explained_variance",
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
# Metric names in table headers and image titles (`benchmarks.display`).
METRIC_TITLES = display.METRIC_NAMES
# The stability table's pseudo-metrics, in this order.
STABILITY_METRICS = (STABILITY, STABILITY_ALL, STABILITY_ENC_DEC)
_LINESTYLES = {None: "-", "tied": "--", "projected": ":"}


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


def is_main_run(info: dict[str, Any], chosen: dict[str, float] | None) -> bool:
    """Whether a run (or a stability record's point) belongs to the main runs.

    Args:
        info: `records.run_info`, or a stability record's `eval_config["point"]`.
        chosen: `lr_choice.json`'s `chosen` (label -> learning rate); None when
            the sweep has no learning-rate grid.

    A run is main when its label has no chosen rate, or its `lr` equals the
    chosen one (to float rounding); a run without `lr` is main only when its
    label has no choice.
    """
    if not chosen or info["label"] not in chosen:
        return True
    lr = info.get("lr")
    return lr is not None and math.isclose(
        float(lr), float(chosen[info["label"]]), rel_tol=1e-9
    )


def main_records(
    items: Sequence[dict[str, Any]], chosen: dict[str, float] | None
) -> list[dict[str, Any]]:
    """The run or stability records of the main runs (`is_main_run`).

    Args:
        items: Run records and/or stability records.
        chosen: See `is_main_run`.
    """
    return [r for r in items if is_main_run(_info(r), chosen)]


def _info(record: dict[str, Any]) -> dict[str, Any]:
    """Run info of a run record, point info of a stability record."""
    config = record["eval_config"]
    return config["point"] if "point" in config else config["run"]


def plot_filename(metric: str, d_sae: int) -> str:
    return f"{PLOT_PREFIX}{metric}_d{d_sae}.png"


def _label_order(p: PointSummary) -> tuple[str, int, str]:
    """Each base architecture, then its aligned forms (tied, projected)."""
    form = list(_LINESTYLES).index(p.alignment) if p.alignment in _LINESTYLES else 3
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


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def points_table(points: dict[str, list[PointSummary]], d_sae: int) -> str:
    """Markdown table of every point at one d_sae: label, sparsity, L0 (seed mean
    ± half its min-max range), each metric as seed mean ± half its 95% t
    interval, seeds."""
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
        l0 = _cell(first.l0_mean, first.l0_min, first.l0_max, digits=1)
        seeds = max(p.n_seeds for p in cells.values())
        lines.append(
            f"| {key[0]} | {key[1]}={_value(key[2])} | {l0} | "
            + " | ".join(_metric_cell(cells.get(m)) for m in metrics)
            + f" | {seeds} |"
        )
    return "\n".join(lines) + "\n"


def claims_table(rows: Sequence[ClaimRow]) -> str:
    """Markdown: the claim table (`verdicts.summary.claim_frame`), then every
    row per base with its evidence."""
    return (
        verdict_tables.markdown(verdict_tables.claim_frame(rows))
        + "\n\n### Every base, with its evidence\n\n"
        + verdict_tables.markdown(verdict_tables.per_base_frame(rows))
        + "\n"
    )


def degenerate_table(points: Sequence[DegeneratePoint]) -> str:
    """Markdown: every point with a collapsed seed, and whether it is left out."""
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
            f"| {p.label} | {p.sparsity_param}={_value(p.sparsity_value)} | "
            f"{p.d_sae} | {d.n_degenerate_seeds}/{d.n_seeds} | "
            f"{', '.join(d.reasons) or '-'} | {'yes' if d.excluded else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def lr_table(lr_choice: dict[str, Any]) -> str:
    """Markdown: the learning-rate grid of `lr_choice.json`, one row per arm, one
    column per rate, the chosen rate's value in bold."""
    grid: dict[str, dict[str, float]] = lr_choice.get("grid", {})
    chosen: dict[str, float] = lr_choice.get("chosen", {})
    rates = sorted({float(lr) for values in grid.values() for lr in values})
    lines = [
        "| arm | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |",
        "|---|" + "---|" * len(rates) + "---|",
    ]
    for label in sorted(grid):
        by_rate = {float(lr): v for lr, v in grid[label].items()}
        cells = []
        for lr in rates:
            value = by_rate.get(lr)
            text = "" if value is None or not math.isfinite(value) else f"{value:.4f}"
            pick = chosen.get(label)
            if text and pick is not None and math.isclose(lr, float(pick)):
                text = f"**{text}**"
            cells.append(text)
        pick = chosen.get(label)
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {'' if pick is None else f'{float(pick):g}'} |"
        )
    return "\n".join(lines) + "\n"


def eval_windows_line(run_records: Sequence[dict[str, Any]]) -> str:
    """The evaluation windows (token or sample counts) of the runs, each stated
    once; a window whose size differs between runs lists each size with its
    number of runs."""
    sizes: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for record in run_records:
        windows = record.get("eval_result_metrics", {}).get("eval_windows") or {}
        for name, value in windows.items():
            sizes[name][value] += 1
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
                + " / ".join(f"{v} ({n} runs)" for v, n in sorted(values.items()))
            )
    return "Evaluation windows: " + "; ".join(parts) + ".\n\n"


def stability_table(
    points: dict[str, list[PointSummary]],
    stability_records: Sequence[dict[str, Any]],
    d_sae: int,
) -> str:
    """Markdown: every stability point at one d_sae, each criterion as seed-pair
    mean ± half its 95% t interval, and the chance baseline (two independently
    initialised, untrained SAEs of the same architecture and shape)."""
    chance = {
        _stability_key(r): r["eval_result_metrics"]["stability"]
        for r in stability_records
    }
    rows: dict[tuple[str, str, float, int], dict[str, PointSummary]] = defaultdict(dict)
    for metric in STABILITY_METRICS:
        for p in points.get(metric, []):
            if p.d_sae == d_sae:
                rows[p.key][metric] = p
    if not rows:
        return "No stability records at this d_sae.\n"
    lines = [
        "| label | sparsity | L0 | "
        + " | ".join(METRIC_TITLES[m] for m in STABILITY_METRICS)
        + " | chance (decoder) | chance (enc+dec) | seeds |",
        "|---|---|---|" + "---|" * len(STABILITY_METRICS) + "---|---|---|",
    ]
    for key in sorted(rows, key=lambda k: _label_order(next(iter(rows[k].values())))):
        cells = rows[key]
        first = next(iter(cells.values()))
        c = chance.get(key, {})
        lines.append(
            f"| {key[0]} | {key[1]}={_value(key[2])} | "
            f"{_cell(first.l0_mean, first.l0_min, first.l0_max, digits=1)} | "
            + " | ".join(_metric_cell(cells.get(m)) for m in STABILITY_METRICS)
            + f" | {_maybe(c.get('chance_shared_fraction_decoder'))}"
            + f" | {_maybe(c.get('chance_shared_fraction_enc_dec'))}"
            + f" | {first.n_seeds} |"
        )
    return "\n".join(lines) + "\n"


def _stability_key(record: dict[str, Any]) -> tuple[str, str, float, int]:
    info = record["eval_config"]["point"]
    return (
        info["label"],
        info["sparsity_param"],
        float(info["sparsity_value"]),
        int(info["d_sae"]),
    )


def _maybe(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


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


def rules_text() -> str:
    """How to read the claim table: the rules of `benchmarks.verdicts.rules`."""
    floors = ", ".join(
        f"{name} < {floor:g}" for name, floor in DEGENERATE_FLOORS.items()
    )
    return (
        RULES_TEXT + f"- Collapse floors (seed means): {floors}. Intervals shown are "
        "uncorrected 95% t intervals; outcomes are after the correction.\n"
    )


def report_markdown(
    run_records: Sequence[dict[str, Any]],
    stability_records: Sequence[dict[str, Any]],
    points: dict[str, list[PointSummary]],
    claims: Sequence[ClaimRow],
    plots: dict[int, list[tuple[str, str, str]]],
    lr_choice: dict[str, Any] | None = None,
    run_log: Sequence[dict[str, Any]] = (),
    degenerate: Sequence[DegeneratePoint] = (),
    lengths: str = "",
) -> str:
    """The report's markdown.

    Args:
        run_records: The reported (main) run records.
        stability_records: Their stability records.
        points: `report_points` of them.
        claims: `verdicts.judge.judge_sweep` of the sweep.
        plots: d_sae -> (metric, file name, caption) triples.
        lr_choice: `lr_choice.json` when the sweep ran a learning-rate grid.
        run_log: The sweep's run log (`records.read_run_log`), for run times.
        degenerate: The sweep's collapsed points (`verdicts.degenerate`).
        lengths: The verdicts-by-training-length table (markdown), if any.
    """
    sweep = run_records[0]["eval_config"].get("sweep") or {}
    labels = sorted({records.run_info(r)["label"] for r in run_records})
    d_saes = sorted({int(records.run_info(r)["d_sae"]) for r in run_records})
    parts = [
        f"# Sweep report: {sweep.get('name', 'sweep')}\n\n",
        f"{len(run_records)} run records and {len(stability_records)} stability "
        f"records from `records/`; labels: {', '.join(f'`{x}`' for x in labels)}; "
        f"d_sae {', '.join(map(str, d_saes))}.\n\n",
        _sweep_line(run_records),
        eval_windows_line(run_records),
        "## Claims\n\n",
        claims_table(claims),
        "\n" + rules_text(),
        "\n## Degenerate points\n\n",
        degenerate_table(degenerate),
    ]
    if lengths:
        parts += [
            "\n## Verdicts by training length\n\n",
            "Each aligned arm against its references at the sweep's shortest and "
            "longest checkpoint (matched L0, paired by seed, Benjamini-Hochberg "
            "over each metric's comparisons of one reference; `in lr decay`: the "
            "step lies inside the final learning-rate decay, where a change may "
            "be the schedule rather than learning).\n\n",
            lengths,
            "\n",
        ]
    if lr_choice is not None:
        parts += [
            "\n## Learning rates\n\n",
            f"Each arm's {lr_choice.get('metric', 'metric')} over the grid "
            "(chosen rate in bold); the sections above use only the chosen "
            "rate's runs.\n\n",
            lr_table(lr_choice),
        ]
    parts += [
        "\n## Pareto plots\n\n",
        "Lines join seed means; vertical bars are the 95% t interval of the seed "
        "mean, horizontal bars the lowest to highest seed L0; circled points are "
        "on the Pareto frontier over every label.\n",
    ]
    for d_sae in d_saes:
        parts.append(f"\n### d_sae {d_sae}\n\n")
        for metric, filename, caption in plots.get(d_sae, []):
            parts.append(
                f"![{METRIC_TITLES.get(metric, metric)}]({filename})\n\n*{caption}*\n\n"
            )
    parts.append("\n## Points\n")
    for d_sae in d_saes:
        parts.append(f"\n### d_sae {d_sae}\n\n")
        parts.append(points_table(points, d_sae))
    parts.append(_stability_section(run_records, stability_records, d_saes))
    parts.append("\n## Skipped evaluations\n\n")
    skipped = skipped_evals(run_records)
    if not skipped:
        parts.append("None: every run ran every evaluation.\n")
    for name, reason, ids in skipped:
        shown = ", ".join(f"`{i}`" for i in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        parts.append(f"- `{name}` ({len(ids)} runs: {shown}{more}): {reason}\n")
    parts += ["\n## Run times\n\n", run_times_table(run_times(run_records, run_log))]
    return "".join(parts)


def run_times(
    run_records: Sequence[dict[str, Any]], run_log: Sequence[dict[str, Any]]
) -> list[tuple[str, float, float]]:
    """(run id, training seconds, seconds from start to record) per run, sorted
    by run id: training from the record, the whole run from the sweep's run log
    (the last `finished` event of that run; NaN if the log does not have it)."""
    finished = {
        e["run_id"]: float(e["seconds"])
        for e in run_log
        if e.get("event") == "finished" and "seconds" in e
    }
    rows = []
    for record in run_records:
        run_id = records.run_info(record)["run_id"]
        training = record["eval_result_metrics"].get("training", {})
        rows.append(
            (
                run_id,
                float(training.get("seconds", math.nan)),
                finished.get(run_id, math.nan),
            )
        )
    return sorted(rows)


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


_STABILITY_TEXT = """\
Latents of two seeds are matched 1:1 (Hungarian) on decoder directions; a latent
is shared when its partner's cosine exceeds the record's threshold. The decoder
criterion applies to every arm, over latents alive in both SAEs (the claims use
it) and over all latents (dead ones count as not shared); the encoder+decoder
criterion (both matchings agree) is shown for untied arms only, since for `tied`
the two matchings are one. Chance: the same numbers for two independently
initialised, untrained SAEs of the same architecture and shape.
"""


def _stability_section(
    run_records: Sequence[dict[str, Any]],
    stability_records: Sequence[dict[str, Any]],
    d_saes: Sequence[int],
) -> str:
    if not stability_records:
        return "\n## Stability\n\nNo stability records.\n"
    stab_points = {
        m: pareto.aggregate(run_records, m, stability_records)
        for m in STABILITY_METRICS
    }
    parts = ["\n## Stability\n\n", _STABILITY_TEXT]
    for d_sae in d_saes:
        parts.append(f"\n### d_sae {d_sae}\n\n")
        parts.append(stability_table(stab_points, stability_records, d_sae))
    return "".join(parts)


def render_report(out_dir: Path) -> Path:
    """Write `out_dir/report/` from `out_dir/records/`; returns report.md's path.

    With `lr_choice.json` and `sweep.json` in `out_dir`, only the main runs (and
    their stability records) are reported (`main_records`). Plots whose metric or
    d_sae no longer has data are removed, so the folder always matches the
    records.
    """
    from saelens_aligned.io import save_figure_atomic, write_text_atomic

    out_dir = Path(out_dir)
    run_records, stability_records = records.load_records(out_dir)
    lr_choice = records.read_lr_choice(out_dir)
    chosen = None if lr_choice is None else lr_choice.get("chosen")
    run_records = main_records(run_records, chosen)
    stability_records = main_records(stability_records, chosen)
    if not run_records:
        raise NoRunRecordsError(
            f"{out_dir / records.RECORDS_DIRNAME}: no run records; run "
            "`python -m benchmarks sweep` into this folder first."
        )
    report_dir = out_dir / REPORT_DIRNAME
    report_dir.mkdir(parents=True, exist_ok=True)
    points = report_points(run_records, stability_records)
    sweep = SweepRecords.read(out_dir)
    claim_rows = judge_sweep(sweep)
    degenerate = degenerate_points(sweep.frame())
    comparisons = length_comparisons(sweep) if sweep.checkpoints else []
    lengths = verdict_tables.markdown(lengths_frame(comparisons)) if comparisons else ""
    kind = sweep.runs[0].sweep.kind if sweep.runs else None
    plots: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for metric, summaries in points.items():
        for d_sae in sorted({d_sae for _, d_sae in pareto.curves(summaries)}):
            filename = plot_filename(metric, d_sae)
            figure = figures.plot_pareto(
                summaries, metric, d_sae, display.INPUT_UNITS.get(kind or "lm", "token")
            )
            save_figure_atomic(figure.figure, report_dir / filename)
            plots[d_sae].append((metric, filename, figure.caption))
    written = {name for entries in plots.values() for _, name, _ in entries}
    for stale in report_dir.glob(f"{PLOT_PREFIX}*.png"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    records.write_json_atomic(
        report_dir / SUMMARY_FILENAME,
        {
            "claims": verdict_tables.per_base_frame(claim_rows).to_dict("records"),
            "degenerate_points": [asdict(d) for d in degenerate],
            "points": {m: [asdict(p) for p in ps] for m, ps in points.items()},
        },
    )
    path = report_dir / REPORT_FILENAME
    write_text_atomic(
        path,
        report_markdown(
            run_records,
            stability_records,
            points,
            claim_rows,
            plots,
            lr_choice,
            records.read_run_log(out_dir),
            degenerate,
            lengths,
        ),
    )
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir", type=Path, help="sweep folder (the one holding records/)"
    )


def main(args: argparse.Namespace) -> None:
    path = render_report(args.out_dir)
    print(f"Report: {path}")
