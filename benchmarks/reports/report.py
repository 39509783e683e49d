"""A sweep's report, rendered from its records alone.

    python -m benchmarks report DIR

reads `DIR/records/` once (`run_table.SweepRecords`: run, stability and
checkpoint records, the learning-rate choice) and writes `DIR/report/`:

    report.md                     claim table (vs stock base | vs fair control),
                                  verdicts by training length, degenerate points,
                                  learning-rate grid, Pareto plots, per-point
                                  tables, stability with its chance baseline,
                                  skipped evaluations, run times
    pareto_<metric>_d<d_sae>.png  metric vs L0 (log), one line per arm
    summary.json                  the claim rows, degenerate points and point
                                  summaries as JSON

With `lr_choice.json` and `sweep.json` in the folder, only each arm's runs at its
chosen learning rate are reported. `report_markdown` is pure (typed records and
summaries in, text out; the tables are `benchmarks.reports.tables`, the plots
`benchmarks.reports.figures`); `render_report` does the I/O, every file through a
temporary sibling and os.replace, so rerunning it while a sweep is still adding
records never leaves a half-written file.
"""

import argparse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.analysis import pareto
from benchmarks.analysis.pareto import PointSummary
from benchmarks.analysis.verdicts import summary as verdict_tables
from benchmarks.analysis.verdicts.degenerate import DegeneratePoint, degenerate_points
from benchmarks.analysis.verdicts.judge import ClaimRow, judge_sweep
from benchmarks.analysis.verdicts.lengths import length_comparisons, lengths_frame
from benchmarks.records import layout
from benchmarks.records.calibration import ArmCalibration, read_calibration
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import display, figures
from benchmarks.reports.generated import marked
from benchmarks.reports.tables import (
    METRIC_TITLES,
    REPORT_METRICS,
    STABILITY_METRICS,
    calibration_table,
    claims_table,
    degenerate_table,
    eval_windows_line,
    lr_table,
    points_table,
    rules_text,
    run_times,
    run_times_table,
    skipped_text,
    stability_table,
    sweep_line,
)
from saelens_aligned.errors import InputError


class NoRunRecordsError(InputError, FileNotFoundError):
    """A folder with no run records to report: bad input to `report`."""


REPORT_DIRNAME = "report"
REPORT_FILENAME = "report.md"
SUMMARY_FILENAME = "summary.json"
PLOT_PREFIX = "pareto_"
_STABILITY_TEXT = """\
Latents of two seeds are matched 1:1 (Hungarian) on decoder directions; a latent
is shared when its partner's cosine exceeds the record's threshold. The decoder
criterion applies to every arm, over latents alive in both SAEs (the claims use
it) and over all latents (dead ones count as not shared); the encoder+decoder
criterion (both matchings agree) is shown for untied arms only, since for `tied`
the two matchings are one. Chance: the same numbers for two independently
initialised, untrained SAEs of the same architecture and shape.
"""
_LENGTHS_TEXT = (
    "Each aligned arm against its references at the sweep's shortest and longest "
    "checkpoint (matched L0, paired by seed, Benjamini-Hochberg over each "
    "metric's comparisons of one reference; `in lr decay`: the step lies inside "
    "the final learning-rate decay, where a change may be the schedule rather "
    "than learning).\n\n"
)


def report_points(sweep: SweepRecords) -> dict[str, list[PointSummary]]:
    """Point summaries of every REPORT_METRICS and stability metric with data,
    from one per-run table."""
    frame = sweep.frame()
    points = {}
    for metric in (*REPORT_METRICS, *STABILITY_METRICS):
        summaries = pareto.summaries_of(frame, sweep.stability, metric)
        if summaries:
            points[metric] = summaries
    return points


def plot_filename(metric: str, d_sae: int) -> str:
    return f"{PLOT_PREFIX}{metric}_d{d_sae}.png"


@dataclass(frozen=True)
class Plot:
    """A Pareto figure written beside report.md."""

    metric: str
    filename: str
    caption: str


def report_markdown(
    sweep: SweepRecords,
    points: dict[str, list[PointSummary]],
    claims: Sequence[ClaimRow],
    plots: dict[int, list[Plot]],
    run_log: Sequence[dict[str, Any]] = (),
    degenerate: Sequence[DegeneratePoint] = (),
    lengths: str = "",
    calibration: Mapping[str, ArmCalibration] | None = None,
) -> str:
    """The report's markdown.

    Args:
        sweep: The reported records (main runs only).
        points: `report_points` of them.
        claims: `verdicts.judge.judge_sweep` of them.
        plots: d_sae -> the Pareto figures written.
        run_log: The sweep's run log (`layout.read_run_log`), for run times.
        degenerate: The sweep's collapsed points (`verdicts.degenerate`).
        lengths: The verdicts-by-training-length table (markdown), if any.
        calibration: The calibrated arms (`calibration.json`), if any.
    """
    runs = sweep.runs
    labels = sorted({r.arm.label for r in runs})
    d_saes = sorted({r.point.d_sae for r in runs})
    parts = [
        f"# Sweep report: {runs[0].sweep.name or 'sweep'}\n\n",
        f"{len(runs)} run records and {len(sweep.stability)} stability "
        f"records from `records/`; labels: {', '.join(f'`{x}`' for x in labels)}; "
        f"d_sae {', '.join(map(str, d_saes))}.\n\n",
        sweep_line(runs),
        eval_windows_line(runs),
        claims_table(claims, runs),
        "\n" + rules_text(),
        "\n## Degenerate points\n\n",
        degenerate_table(degenerate),
    ]
    if lengths:
        parts += [
            "\n## Verdicts by training length\n\n",
            _LENGTHS_TEXT,
            marked("lengths", lengths),
            "\n",
        ]
    if sweep.lr_choice is not None:
        parts += [
            "\n## Learning rates\n\n",
            f"Each arm's {sweep.lr_choice.metric} over the grid on the "
            f"`{sweep.lr_choice.split}` split (chosen rate in bold); the sections "
            "above use only the chosen rate's runs.\n\n",
            lr_table(sweep.lr_choice),
        ]
    if calibration:
        parts += [
            "\n## Calibration to target L0\n\n",
            "Each arm whose L0 is set by a penalty was calibrated separately: its "
            "rate is the grid's best by the rate metric interpolated at the middle "
            "target L0 (the grid's scores above are those), then its coefficient "
            "was searched for each target on the validation split "
            "(`benchmarks/sweeps/calibration.py`). Cells: the coefficient (the L0 "
            "its seed-0 trial reached there).\n\n",
            calibration_table(calibration),
        ]
    parts += [
        "\n## Pareto plots\n\n",
        "Lines join seed means; vertical bars are the 95% t interval of the seed "
        "mean, horizontal bars the lowest to highest seed L0; circled points are "
        "on the Pareto frontier over every arm.\n",
    ]
    for d_sae in d_saes:
        parts.append(f"\n### d_sae {d_sae}\n\n")
        for plot in plots.get(d_sae, []):
            title = METRIC_TITLES.get(plot.metric, plot.metric)
            parts.append(f"![{title}]({plot.filename})\n\n*{plot.caption}*\n\n")
    parts.append("\n## Points\n")
    for d_sae in d_saes:
        parts += [f"\n### d_sae {d_sae}\n\n", points_table(points, d_sae)]
    if sweep.stability:
        parts += ["\n## Stability\n\n", _STABILITY_TEXT]
        for d_sae in d_saes:
            parts.append(f"\n### d_sae {d_sae}\n\n")
            parts.append(stability_table(points, sweep.stability, d_sae))
    else:
        parts.append("\n## Stability\n\nNo stability records.\n")
    parts += ["\n## Skipped evaluations\n\n", skipped_text(runs)]
    parts += ["\n## Run times\n\n", run_times_table(run_times(runs, run_log))]
    return "".join(parts)


def _write_plots(
    sweep: SweepRecords, points: dict[str, list[PointSummary]], report_dir: Path
) -> dict[int, list[Plot]]:
    """Every Pareto figure of the report; figures whose metric or d_sae no longer
    has data are removed, so the folder always matches the records."""
    from saelens_aligned.io import save_figure_atomic

    unit = display.INPUT_UNITS.get(sweep.runs[0].sweep.kind or "lm", "token")
    plots: dict[int, list[Plot]] = defaultdict(list)
    for metric in (m for m in REPORT_METRICS if m in points):
        summaries = points[metric]
        for d_sae in sorted({d_sae for _, d_sae in pareto.curves(summaries)}):
            filename = plot_filename(metric, d_sae)
            figure = figures.plot_pareto(summaries, metric, d_sae, unit)
            save_figure_atomic(figure.figure, report_dir / filename)
            plots[d_sae].append(Plot(metric, filename, figure.caption))
    written = {plot.filename for entries in plots.values() for plot in entries}
    for stale in report_dir.glob(f"{PLOT_PREFIX}*.png"):
        if stale.name not in written:
            stale.unlink(missing_ok=True)
    return plots


def render_report(out_dir: Path) -> Path:
    """Write `out_dir/report/` from `out_dir/records/`; returns report.md's path."""
    from saelens_aligned.io import write_text_atomic

    out_dir = Path(out_dir)
    sweep = SweepRecords.read(out_dir)
    if not sweep.runs:
        raise NoRunRecordsError(
            f"{out_dir / layout.RECORDS_DIRNAME}: no run records; run "
            "`python -m benchmarks sweep` into this folder first."
        )
    report_dir = out_dir / REPORT_DIRNAME
    report_dir.mkdir(parents=True, exist_ok=True)
    points = report_points(sweep)
    claim_rows = judge_sweep(sweep)
    degenerate = degenerate_points(sweep.frame())
    comparisons = length_comparisons(sweep) if sweep.checkpoints else []
    lengths = verdict_tables.markdown(lengths_frame(comparisons)) if comparisons else ""
    plots = _write_plots(sweep, points, report_dir)
    layout.write_json_atomic(
        report_dir / SUMMARY_FILENAME,
        {
            "claims": verdict_tables.per_base_frame(claim_rows).to_dict("records"),
            "degenerate_points": [asdict(d) for d in degenerate],
            "points": {m: [asdict(p) for p in ps] for m, ps in points.items()},
        },
    )
    path = report_dir / REPORT_FILENAME
    text = report_markdown(
        sweep,
        points,
        claim_rows,
        plots,
        layout.read_run_log(out_dir),
        degenerate,
        lengths,
        read_calibration(out_dir),
    )
    write_text_atomic(path, text)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir", type=Path, help="sweep folder (the one holding records/)"
    )


def main(args: argparse.Namespace) -> None:
    path = render_report(args.out_dir)
    print(f"Report: {path}")
