"""The benchmark's figures, drawn from numbers already computed.

    plot_pareto(points, metric, d_sae)   a metric against L0 at one d_sae
    plot_curves(curves, ...)             metrics against training length

Both return a `CaptionedFigure`: the matplotlib figure and the one-line caption
the report writes under it. Nothing here reads records (`benchmarks.reports.report` and
`benchmarks.reports.curves` do); names come from `benchmarks.reports.display`.

Every axis is labelled with its unit. Log axes get a few round ticks only (1, 2,
5 times a power of ten; evenly stepped round numbers where the data span less
than a decade; a linear axis where they span under 20%) and no minor labels,
so tick labels never run into each other.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from benchmarks.analysis import pareto
from benchmarks.analysis.pareto import PointSummary
from benchmarks.analysis.verdicts.summary import tokens_text
from benchmarks.reports import display

# Line style and marker of each role an arm plays; colour is its base.
_ROLE_STYLES: dict[str, dict[str, Any]] = {
    "stock": {"linestyle": "-", "marker": "o"},
    "fair control": {"linestyle": "-.", "marker": "D"},
    "diagnostic": {"linestyle": (0, (1, 1)), "marker": "v", "alpha": 0.55},
    "tied": {"linestyle": "--", "marker": "s"},
    "projected": {"linestyle": ":", "marker": "^"},
    "centred": {"linestyle": (0, (5, 1)), "marker": "P"},
    "tied, no AuxK": {"linestyle": (0, (3, 1, 1, 1)), "marker": "X"},
}
_ROLE_ORDER = list(_ROLE_STYLES)
_ROLE_COLORS = {
    "stock": "black",
    "fair control": "tab:green",
    "diagnostic": "tab:gray",
    "tied": "tab:blue",
    "projected": "tab:orange",
    "centred": "tab:red",
    "tied, no AuxK": "tab:cyan",
}
# One colour family per base, the same in every figure.
_BASE_FAMILIES = {
    "topk": "Blues",
    "batchtopk": "Purples",
    "gated": "Oranges",
    "jumprelu": "Greens",
    "standard": "Reds",
    "panneal": "Greys",
}
_ROLE_SHADES = {
    "stock": 0.95,
    "fair control": 0.65,
    "diagnostic": 0.45,
    "tied": 0.8,
    "projected": 0.55,
    "centred": 0.35,
    "tied, no AuxK": 0.7,
}
# Tick mantissas tried from sparse to dense on a log axis spanning a decade or more.
_LOG_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 5))
_MOST_LOG_TICKS = 7


@dataclass
class CaptionedFigure:
    """A figure and the one line written under it.

    Args:
        figure: The matplotlib figure (closed by `save_figure_atomic`).
        caption: One sentence saying what is drawn and how to read it.
    """

    figure: Any
    caption: str


class IntervalLike(Protocol):
    """A seed mean with its interval (`benchmarks.analysis.curves.Interval`)."""

    mean: float
    low: float
    high: float


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def arm_role(label: str) -> str:
    """`stock`, `fair control`, `diagnostic`, `tied` or `projected`; `centred`
    (decoder bias from the activations' mean) and `tied, no AuxK` where a sweep
    has those arms."""
    parts = display.arm_parts(label)
    settings = {display.SETTING_NAMES.get(extra) for extra in parts.extras}
    if parts.aligned:
        form = parts.form or "tied"
        return f"{form}, no AuxK" if "no AuxK" in settings and form == "tied" else form
    if parts.init_from == "projected":
        return "fair control"
    if parts.init_from is not None:
        return "diagnostic"
    return "centred" if "b_dec from the activations' mean" in settings else "stock"


def arm_order(label: str) -> tuple[str, int, str]:
    """Each base, then stock, fair control, diagnostic, tied, projected."""
    role = arm_role(label)
    return (display.arm_parts(label).base, _ROLE_ORDER.index(role), label)


def _arm_styles(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Label -> plot keyword arguments: line and marker by role; colour by role
    when every arm shares one base, else a colour family per base with one
    shade per role (stock darkest)."""
    plt = pyplot()
    bases = sorted({display.arm_parts(label).base for label in labels})

    def color(label: str) -> Any:
        role = arm_role(label)
        if len(bases) == 1:
            return _ROLE_COLORS[role]
        base = display.arm_parts(label).base
        others = list(_BASE_FAMILIES.values())
        family = _BASE_FAMILIES.get(base, others[bases.index(base) % len(others)])
        return plt.get_cmap(family)(_ROLE_SHADES[role])

    return {
        label: {
            "color": color(label),
            **_ROLE_STYLES[arm_role(label)],
            "label": display.arm_name(label),
        }
        for label in labels
    }


def log_ticks(low: float, high: float) -> list[float]:
    """Round ticks inside [low, high] for a log axis. Over a decade or more:
    the sparsest of `_LOG_MANTISSAS` giving four or more, else the densest
    with at most `_MOST_LOG_TICKS`. Under a decade, evenly stepped round
    numbers (8, 10, 12, ...), which a log axis still spaces apart."""
    import matplotlib.ticker as ticker

    if not (low > 0 and high >= low):
        return []
    if high < 10 * low:
        ticks: list[float] = []
        for bins in range(4, _MOST_LOG_TICKS + 1):
            locator = ticker.MaxNLocator(nbins=bins, steps=[1, 2, 5, 10])
            values = locator.tick_values(low, high)
            ticks = [float(f"{v:.12g}") for v in values if low <= v <= high]
            if len(ticks) >= 4:
                break
        return ticks
    exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    best: list[float] = []
    for mantissas in _LOG_MANTISSAS:
        ticks = [
            m * 10.0**e
            for e in exponents
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) > _MOST_LOG_TICKS:
            break
        best = ticks
        if len(ticks) >= 4:
            break
    return best


def compact_number(value: float) -> str:
    """200000 -> `200k`, 1000000 -> `1M`, 12 -> `12`."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _x_axis(ax: Any, formatter: Any) -> str:
    """Log x with `log_ticks` on the drawn range and no minor labels; linear
    when the data span under 20% (a log scale shows nothing there). Returns
    the scale's name for the axis label."""
    import matplotlib.ticker as ticker

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    if high < 1.2 * low:
        ax.set_xscale("linear")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter(useOffset=False))
        return "linear scale"
    ax.xaxis.set_major_locator(ticker.FixedLocator(log_ticks(low, high)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: formatter(v)))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlim(low, high)
    return "log scale"


def _error_bars(
    points: Sequence[tuple[float, float, float]],
) -> list[list[float]]:
    """Matplotlib's [[below], [above]] from (mean, low, high); never negative (a
    mean can round past an equal bound) and 0 where a bound is NaN (one seed)."""

    def gap(x: float) -> float:
        return max(x, 0.0) if math.isfinite(x) else 0.0

    return [
        [gap(mean - lo) for mean, lo, _ in points],
        [gap(hi - mean) for mean, _, hi in points],
    ]


def plot_pareto(
    points: Sequence[PointSummary], metric: str, d_sae: int, input_unit: str = "token"
) -> CaptionedFigure:
    """Metric vs L0 (log x) at one d_sae: one line per arm through the seed
    means, error bars the 95% t interval of the metric's seed mean and the
    min-max of L0 over seeds, the Pareto frontier (over every arm) circled when
    the metric has a better direction.

    Args:
        points: Point summaries of `metric` (other d_sae are left out).
        metric: The metric key.
        d_sae: The dictionary size drawn.
        input_unit: What L0 counts latents per (`display.INPUT_UNITS`).
    """
    plt = pyplot()
    curves = pareto.curves(p for p in points if p.d_sae == d_sae)
    styles = _arm_styles([c[0].label for c in curves.values()])
    # Tall enough for one legend row per arm (and the frontier) beside the axes.
    height = max(4.8, 0.2 * (len(curves) + 1) + 0.6)
    fig, ax = plt.subplots(figsize=(11, height), layout="constrained")
    for curve in sorted(curves.values(), key=lambda c: arm_order(c[0].label)):
        ax.errorbar(
            [p.l0_mean for p in curve],
            [p.mean for p in curve],
            xerr=_error_bars([(p.l0_mean, p.l0_min, p.l0_max) for p in curve]),
            yerr=_error_bars([(p.mean, p.ci_low, p.ci_high) for p in curve]),
            markersize=5,
            capsize=2,
            **styles[curve[0].label],
        )
    higher = pareto.higher_is_better(metric)
    if higher is not None:
        frontier = pareto.pareto_frontier(
            [p for c in curves.values() for p in c], higher_is_better=higher
        )
        x = [p.l0_mean for p in frontier]
        y = [p.mean for p in frontier]
        ax.plot(x, y, color="0.5", linewidth=6, alpha=0.25, zorder=0)
        ax.scatter(
            x,
            y,
            s=140,
            facecolors="none",
            edgecolors="k",
            linewidths=1.0,
            zorder=3,
            label="Pareto frontier",
        )
    scale = _x_axis(ax, compact_number)
    ax.set_xlabel(f"L0 (active latents per {input_unit}, {scale})")
    ax.set_ylabel(display.metric_axis(metric))
    direction = {True: "higher is better", False: "lower is better", None: ""}[higher]
    name = display.metric_name(metric)
    ax.set_title(
        f"{name} vs L0, d_sae {d_sae}" + (f" ({direction})" if direction else "")
    )
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    caption = (
        f"{name} against L0 at d_sae {d_sae}"
        + (f", {direction}" if direction else "")
        + ": seed means of each arm (colour: base architecture; line: stock, fair "
        "control, tied-init diagnostic, tied, projected), vertical bars the 95% t "
        "interval of the seed mean, horizontal bars the lowest to highest seed L0"
        + (", circled points the Pareto frontier over every arm." if higher else ".")
    )
    return CaptionedFigure(fig, caption)


def plot_curves(
    curves: Mapping[str, Mapping[str, Sequence[tuple[int, IntervalLike]]]],
    inputs_per_step: float,
    input_unit: str = "token",
    decay_from_step: int | None = None,
) -> CaptionedFigure:
    """One panel per metric: each arm's seed mean and 95% interval against the
    training inputs seen (log x).

    Args:
        curves: Metric key -> arm label -> (step, interval) in step order.
        inputs_per_step: Tokens (or samples) per training step.
        input_unit: `token` / `sample` (`display.INPUT_UNITS`).
        decay_from_step: First step of the final learning-rate decay, shaded;
            None: no decay.
    """
    plt = pyplot()
    metrics = list(curves)
    labels = sorted({label for c in curves.values() for label in c}, key=arm_order)
    styles = _arm_styles(labels)
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(3.9 * len(metrics) + 2.6, 3.7),
        squeeze=False,
        layout="constrained",
    )
    last_step = max(
        (s for c in curves.values() for p in c.values() for s, _ in p), default=0
    )
    for ax, metric in zip(axes[0], metrics):
        for label in labels:
            points = curves[metric].get(label, [])
            if not points:
                continue
            x = [s * inputs_per_step for s, _ in points]
            ax.plot(x, [p.mean for _, p in points], markersize=4, **styles[label])
            ax.fill_between(
                x,
                [p.low for _, p in points],
                [p.high for _, p in points],
                alpha=0.15,
                color=styles[label]["color"],
                linewidth=0,
            )
        if decay_from_step is not None and decay_from_step < last_step:
            ax.axvspan(
                decay_from_step * inputs_per_step,
                last_step * inputs_per_step,
                color="0.85",
                zorder=0,
            )
        scale = _x_axis(ax, compact_number)
        ax.set_xlabel(f"training {input_unit}s ({scale})")
        ax.set_ylabel(display.metric_axis(metric))
        ax.set_title(display.metric_name(metric))
        ax.grid(True, which="major", alpha=0.3)
    # One legend entry per arm, from whichever panel drew it.
    entries: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(name, handle)
    fig.legend(
        list(entries.values()), list(entries), loc="outside right upper", fontsize=8
    )
    names_text = ", ".join(display.metric_name(m) for m in metrics)
    caption = (
        f"{names_text} against training {input_unit}s: each arm's seed mean, "
        "shaded its 95% t interval"
        + (
            "; grey band: the final learning-rate decay."
            if decay_from_step is not None and decay_from_step < last_step
            else "."
        )
    )
    return CaptionedFigure(fig, caption)


def plot_by_dictionary_size(
    points: Mapping[str, Mapping[str, Sequence[tuple[int, IntervalLike]]]],
    k: float,
    d_in: int,
    tokens: Mapping[int, int] | None = None,
) -> CaptionedFigure:
    """One panel per metric: each arm's seed mean and 95% interval against the
    dictionary size (log x, ticks at the sizes drawn), at one k.

    Args:
        points: Metric key -> arm label -> (d_sae, interval) in size order.
        k: The TopK k every point was trained at.
        d_in: The width the sizes are multiples of (for the caption).
        tokens: d_sae -> training tokens of its SAEs, written under each tick;
            when they differ the caption says the sizes are confounded with
            the training length.
    """
    import matplotlib.ticker as ticker

    plt = pyplot()
    metrics = list(points)
    labels = sorted({label for p in points.values() for label in p}, key=arm_order)
    styles = _arm_styles(labels)
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(3.9 * len(metrics) + 2.9, 3.7),
        squeeze=False,
        layout="constrained",
    )
    sizes = sorted({d for p in points.values() for c in p.values() for d, _ in c})
    for ax, metric in zip(axes[0], metrics):
        for label in labels:
            curve = points[metric].get(label, [])
            if not curve:
                continue
            ax.errorbar(
                [d for d, _ in curve],
                [i.mean for _, i in curve],
                yerr=_error_bars([(i.mean, i.low, i.high) for _, i in curve]),
                markersize=5,
                capsize=3,
                **styles[label],
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.FixedLocator(sizes))
        ax.xaxis.set_major_formatter(
            ticker.FuncFormatter(lambda v, _: size_tick(v, d_in, tokens or {}))
        )
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("dictionary size d_sae (latents, log scale)")
        ax.set_ylabel(display.metric_axis(metric))
        ax.set_title(display.metric_name(metric))
        ax.grid(True, which="major", alpha=0.3)
    entries: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(name, handle)
    fig.legend(
        list(entries.values()), list(entries), loc="outside right upper", fontsize=8
    )
    names_text = " and ".join(display.metric_name(m) for m in metrics)
    caption = (
        f"{names_text} against dictionary size (multiples of d_in {d_in}), TopK "
        f"k = {k:g}: each arm's seed mean with its 95% t interval, every arm "
        "at its own rate."
    )
    if len(set((tokens or {}).values())) > 1:
        caption += (
            " The sizes trained for different numbers of tokens (under each "
            "size): a difference between sizes is not the dictionary size alone."
        )
    return CaptionedFigure(fig, caption)


def size_tick(d_sae: float, d_in: int, tokens: Mapping[int, int]) -> str:
    """`4608 (8×)`, with its SAEs' training tokens beneath when known."""
    text = f"{d_sae:.0f} ({d_sae / d_in:.0f}×)"
    trained = tokens.get(round(d_sae))
    if trained:
        text += f"\n{tokens_text(trained)} tokens"
    return text
