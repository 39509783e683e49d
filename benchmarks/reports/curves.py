"""The learning-curve report of a checkpointed sweep: `render_curves` writes
`report/curves.md` (per-step seed means, paired gaps to each reference, final
stability) and its figure, from the numbers of `benchmarks.analysis.curves`.

    python -m benchmarks curves DIR
"""

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.analysis.curves import (
    Interval,
    curve_points,
    paired_gaps,
    reference_pairs,
)
from benchmarks.records import layout
from benchmarks.records.run_table import Arm, RunRecord
from benchmarks.reports import display, figures
from benchmarks.reports.figures import CaptionedFigure

CURVE_METRICS = (
    "explained_variance",
    "ce_loss_score",
    "dead_fraction_long",
    "dead_fraction",
    "alignment_mean",
    "mcc",
    "f1",
    "l0",
)
CURVES_FILENAME = "curves.md"
CURVES_PLOT = "curves.png"


def _fmt(interval: Interval) -> str:
    if not math.isfinite(interval.low):
        return f"{interval.mean:.4f}"
    return f"{interval.mean:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def curves_markdown(
    run_records: Sequence[dict[str, Any]], metrics: Sequence[str] = CURVE_METRICS
) -> str:
    """Per-step seed means with intervals for every label, then the paired gaps
    between each aligned arm and its references (`reference_pairs`)."""
    lines = ["# Learning curves", ""]
    present = [
        m
        for m in metrics
        if any(math.isfinite(layout.flat_metrics(r)[m]) for r in run_records)
    ]
    arms = {Arm.from_info(layout.run_info(r)) for r in run_records}
    labels = sorted(a.label for a in arms)
    for metric in present:
        curves = curve_points(run_records, metric)
        steps = sorted({s for points in curves.values() for s, _ in points})
        lines += [
            f"## {metric}",
            "",
            "| arm | " + " | ".join(f"step {s}" for s in steps) + " |",
            "|---|" + "---|" * len(steps),
        ]
        for label in labels:
            by_step = dict(curves.get(label, []))
            cells = [_fmt(by_step[s]) if s in by_step else "" for s in steps]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        for aligned, reference, kind in reference_pairs(arms):
            gaps = paired_gaps(run_records, metric, aligned, reference)
            if gaps:
                lines.append(
                    f"- Gap {aligned} - {reference} ({kind}; paired by seed, "
                    "95% t-interval): "
                    + "; ".join(f"step {s}: {_fmt(g)}" for s, g in gaps)
                )
        lines.append("")
    return "\n".join(lines)


def final_stability_markdown(stability_records: Sequence[dict[str, Any]]) -> str:
    """Cross-seed stability of each arm's final SAEs (the sweep's stability
    records): decoder directions matched 1:1, latents shared above the
    threshold, beside two untrained SAEs (chance)."""
    if not stability_records:
        return "## Stability at the last point\n\nNo stability records yet.\n"
    lines = [
        "## Stability at the last point",
        "",
        "Decoder directions of every pair of seeds matched 1:1; shared: matched "
        "cosine above the record's threshold, over latents alive in both SAEs and "
        "over all latents (min-max over pairs in brackets).",
        "",
        "| arm | pairs | shared (alive) | shared (all) | matched decoder cos | "
        "chance matched cos |",
        "|---|---|---|---|---|---|",
    ]

    def number(value: Any) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"

    rows = []
    for record in stability_records:
        point = record["eval_config"]["point"]
        m = record["eval_result_metrics"]["stability"]

        def spread(name: str, m: dict[str, Any] = m) -> str:
            return (
                f"{number(m.get(name + '_mean'))} "
                f"[{number(m.get(name + '_min'))}, {number(m.get(name + '_max'))}]"
            )

        rows.append(
            f"| {point.get('label', '?')} ({point.get('sparsity_param')}="
            f"{point.get('sparsity_value', math.nan):g}) | {m.get('n_pairs', '-')} "
            f"| {spread('shared_fraction_decoder_alive')} "
            f"| {spread('shared_fraction_decoder')} "
            f"| {number(m.get('mean_matched_decoder_cos'))} "
            f"| {number(m.get('chance_mean_matched_decoder_cos'))} |"
        )
    return "\n".join(lines + sorted(rows)) + "\n"


def plot_curves(
    run_records: Sequence[dict[str, Any]], metrics: Sequence[str]
) -> CaptionedFigure:
    """`figures.plot_curves` of `metrics`: every arm against the training tokens
    (samples on synthetic data) seen, the final learning-rate decay shaded."""
    sweep = RunRecord.from_json(run_records[0]).sweep
    steps = (sweep.training_tokens or 0) // (sweep.batch_tokens or 1)
    return figures.plot_curves(
        {metric: curve_points(run_records, metric) for metric in metrics},
        inputs_per_step=float(sweep.batch_tokens or 1),
        input_unit=display.INPUT_UNITS.get(sweep.kind or "lm", "token"),
        decay_from_step=steps - sweep.lr_decay_steps if sweep.lr_decay_steps else None,
    )


def all_step_records(out_dir: Path) -> list[dict[str, Any]]:
    """Checkpoint records and the final run records (step = run length)."""
    runs, _ = layout.load_records(out_dir)
    return layout.load_checkpoint_records(out_dir) + [
        r for r in runs if layout.run_info(r).get("step") is not None
    ]


def render_curves(out_dir: Path) -> Path:
    from saelens_aligned.io.files import save_figure_atomic, write_text_atomic

    out_dir = Path(out_dir)
    step_records = all_step_records(out_dir)
    _, stability_records = layout.load_records(out_dir)
    folder = out_dir / "report"
    shown = [
        m
        for m in ("explained_variance", "ce_loss_score", "mcc", "dead_fraction_long")
        if any(math.isfinite(layout.flat_metrics(r)[m]) for r in step_records)
    ]
    figure_text = ""
    if shown:
        figure = plot_curves(step_records, shown)
        save_figure_atomic(figure.figure, folder / CURVES_PLOT)
        figure_text = f"![learning curves]({CURVES_PLOT})\n\n*{figure.caption}*\n\n"
    write_text_atomic(
        folder / CURVES_FILENAME,
        curves_markdown(step_records)
        + "\n"
        + figure_text
        + final_stability_markdown(stability_records),
    )
    return folder / CURVES_FILENAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="a learning-curve sweep folder")


def main(args: argparse.Namespace) -> None:
    print(render_curves(Path(args.out)))
