"""The benchmark's figures read as a person sees them: every axis labelled, no
two tick labels drawn over each other, every text inside the image, display
names (not metric keys or arm labels) in titles and legends, a one-line caption.

The checks render each figure (`fig.canvas.draw()`) and compare the drawn
bounding boxes, so they fail on what a reader would see, not on settings.
"""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from benchmarks.analysis.curves import Interval  # noqa: E402
from benchmarks.analysis.pareto import PointSummary  # noqa: E402
from benchmarks.reports import (
    curves,
    display,
    figures,  # noqa: E402
)

REPO = Path(__file__).resolve().parents[1]
LABELS = (
    "topk",
    "topk[init=projected]",
    "topk[init=tied,lr=0.003]",
    "aligned_topk[tied]",
    "aligned_topk[projected]",
    "gated",
    "aligned_gated[tied]",
)


def _point(label: str, l0: float, value: float, metric: str) -> PointSummary:
    parts = display.arm_parts(label)
    return PointSummary(
        label=label,
        architecture=label.partition("[")[0],
        alignment=parts.form,
        base_architecture=parts.base,
        init_from=parts.init_from,
        sparsity_param="k",
        sparsity_value=l0,
        d_sae=64,
        metric=metric,
        mean=value,
        min=value - 0.02,
        max=value + 0.02,
        sem=0.01,
        ci_low=value - 0.03,
        ci_high=value + 0.03,
        n=3,
        l0_mean=l0,
        l0_min=l0 * 0.95,
        l0_max=l0 * 1.05,
        l0_sem=0.1,
        n_seeds=3,
    )


def _pareto_points(l0s: list[float], metric: str) -> list[PointSummary]:
    return [
        _point(label, l0, 0.5 + 0.05 * i + 0.1 * math.log10(l0), metric)
        for i, label in enumerate(LABELS)
        for l0 in l0s
    ]


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


def _drawn_tick_labels(axis) -> list:
    """Tick labels with text at a position inside the axis' view (matplotlib
    keeps, but does not draw, the locator's ticks outside it)."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-6 * (high - low)
    at = 0 if axis.axis_name == "x" else 1
    return [
        t
        for t in axis.get_ticklabels(which="both")
        if t.get_text() and low - slack <= t.get_position()[at] <= high + slack
    ]


def _check_readable(fig, raw_keys: list[str]) -> None:
    """Every axis labelled, tick labels apart, texts inside the image, no raw
    key in any title, label or legend."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    image = fig.bbox
    undrawn = set()
    for ax in fig.axes:
        assert ax.get_xlabel().strip(), "an x axis without a label"
        assert ax.get_ylabel().strip(), "a y axis without a label"
        for axis in (ax.xaxis, ax.yaxis):
            labels = _drawn_tick_labels(axis)
            undrawn |= {id(t) for t in axis.get_ticklabels(which="both")} - {
                id(t) for t in labels
            }
            assert len(labels) >= 2, f"fewer than two tick labels: {labels}"
            names = [t.get_text() for t in labels]
            assert len(set(names)) == len(names), f"ticks read alike: {names}"
            boxes = [t.get_window_extent(renderer) for t in labels]
            clashes = _overlaps(boxes)
            assert not clashes, [
                (labels[i].get_text(), labels[j].get_text()) for i, j in clashes
            ]
    texts = [
        t
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_text().strip() and id(t) not in undrawn
    ]
    for text in texts:
        box = text.get_window_extent(renderer)
        assert (
            box.x0 >= image.x0 - 1
            and box.x1 <= image.x1 + 1
            and box.y0 >= image.y0 - 1
            and box.y1 <= image.y1 + 1
        ), f"{text.get_text()!r} runs off the image"
        # Only keys no display name contains (`gated` is in "gated (stock)").
        for key in (k for k in raw_keys if "[" in k or "_" in k):
            assert key not in text.get_text(), f"raw key {key!r} in {text.get_text()!r}"


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_display_names_of_the_arms_the_reports_name():
    assert display.arm_name("aligned_topk[tied]") == "aligned TopK (tied)"
    assert display.arm_name("topk[init=projected]") == (
        "TopK from balanced init (fair control)"
    )
    assert display.arm_name("topk[init=tied]") == "TopK from tied init (diagnostic)"
    assert display.arm_name("topk[init=tied,lr=0.003]") == (
        "TopK from tied init (diagnostic, lr 0.003)"
    )
    assert display.arm_name("aligned[projected]") == "aligned standard L1 (projected)"
    assert display.arm_name("topk") == "TopK (stock)"
    assert display.metric_axis("ce_loss_score") == (
        "CE-loss score (SAEBench, 1 = no loss)"
    )


def test_log_ticks_are_round_and_few_at_any_span():
    assert figures.log_ticks(128_000, 2_048_000) == [2e5, 5e5, 1e6, 2e6]
    assert figures.log_ticks(9, 450) == [10, 20, 50, 100, 200]
    # Under a decade: evenly stepped round numbers over the whole range.
    assert figures.log_ticks(6.5, 17) == [8, 10, 12, 14, 16]
    assert figures.log_ticks(29.5, 46) == [30, 35, 40, 45]
    assert figures.log_ticks(1, 1e6) == [1, 10, 100, 1e3, 1e4, 1e5, 1e6]
    assert [figures.compact_number(v) for v in (2e5, 1e6, 2.5e6, 12)] == [
        "200k",
        "1M",
        "2.5M",
        "12",
    ]


@pytest.mark.parametrize(
    "l0s",
    [
        [10, 20, 40, 80, 160, 320],
        [7.2, 8.5, 9.6, 12.1],
        [30.5, 31.5, 44],
        [31.5, 34, 37],
        [31.98, 31.99, 32.0],  # a few percent: linear, ticks apart
        [1.1, 30, 900],
    ],
)
@pytest.mark.parametrize("metric", ["ce_loss_score", "dead_fraction_long"])
def test_pareto_figure_is_readable(l0s, metric):
    drawn = figures.plot_pareto(_pareto_points(l0s, metric), metric, 64)
    try:
        _check_readable(drawn.figure, [metric, *LABELS])
        legend = _legend_texts(drawn.figure)
        assert set(legend) == {display.arm_name(x) for x in LABELS} | {
            "Pareto frontier"
        }
        title = drawn.figure.axes[0].get_title()
        assert title.startswith(display.metric_name(metric))
        assert "\n" not in drawn.caption
        assert drawn.caption.startswith(display.metric_name(metric))
    finally:
        plt.close(drawn.figure)


def _synthetic_curves() -> dict[str, dict[str, list[tuple[int, Interval]]]]:
    steps = [125, 250, 500, 1000, 2000]
    return {
        metric: {
            label: [
                (s, Interval(0.5 + 0.02 * i + 0.05 * math.log10(s), 0.48, 0.7, 3))
                for s in steps
            ]
            for i, label in enumerate(LABELS)
        }
        for metric in ("explained_variance", "ce_loss_score", "dead_fraction_long")
    }


def test_learning_curve_figure_is_readable():
    data = _synthetic_curves()
    drawn = figures.plot_curves(data, 1024, "token", decay_from_step=1600)
    try:
        _check_readable(drawn.figure, [*data, *LABELS])
        ax = drawn.figure.axes[0]
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert ticks == ["200k", "500k", "1M", "2M"]
        assert ax.get_xlabel() == "training tokens (log scale)"
        assert [a.get_title() for a in drawn.figure.axes] == [
            display.metric_name(m) for m in data
        ]
        assert sorted(_legend_texts(drawn.figure)) == sorted(
            display.arm_name(x) for x in LABELS
        )
        assert "learning-rate decay" in drawn.caption and "\n" not in drawn.caption
    finally:
        plt.close(drawn.figure)


def test_committed_learning_curves_render_readably():
    """The README's figure, from the committed curves_cpu records."""
    step_records = curves.all_step_records(REPO / "benchmarks/results/curves_cpu")
    metrics = ["explained_variance", "ce_loss_score", "dead_fraction_long"]
    drawn = curves.plot_curves(step_records, metrics)
    try:
        labels = sorted({r["eval_config"]["run"]["label"] for r in step_records})
        _check_readable(drawn.figure, [*metrics, *labels])
        assert sorted(_legend_texts(drawn.figure)) == sorted(
            display.arm_name(x) for x in labels
        )
    finally:
        plt.close(drawn.figure)
