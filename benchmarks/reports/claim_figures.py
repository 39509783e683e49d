"""One figure per claim: every point behind its verdicts, as a paired difference.

Each panel is one metric of the claim against one reference (the stock base,
the fair control); each row of a panel is one aligned point compared at matched
L0 on its reference's curve, drawn as the mean over seeds of the per-seed
difference (aligned - reference) with its 95% t interval and coloured by the
outcome the verdict counted (after the Benjamini-Hochberg correction). A reader
sees direction, size and spread at once, and every base's points, including
those too few to join a pooled verdict.
"""

from collections.abc import Sequence

from matplotlib.ticker import FuncFormatter, MaxNLocator

from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow, PointComparison
from benchmarks.analysis.verdicts.rules import ROLES
from benchmarks.analysis.verdicts.summary import tokens_text
from benchmarks.reports import display
from benchmarks.reports.figures import CaptionedFigure, pyplot

OUTCOME_COLORS = {"better": "tab:blue", "worse": "tab:red", "tie": "0.55"}


def claim_comparisons(
    rows: Sequence[ClaimRow], claim: str, form: str = "tied"
) -> dict[tuple[str, str], list[PointComparison]]:
    """(metric display name, reference role) -> the points of every base's own
    row (each point once; the pooled rows repeat them), in base and L0 order."""
    out: dict[tuple[str, str], list[PointComparison]] = {}
    for row in rows:
        if row.spec.claim != claim or row.alignment != form or row.base == POOLED:
            continue
        key = (row.spec.display, row.role)
        out.setdefault(key, []).extend(row.comparisons)
    return {
        key: sorted(points, key=lambda c: (c.base, c.l0)) for key, points in out.items()
    }


def plot_claim(
    rows: Sequence[ClaimRow], claim: str, sweep: str, form: str = "tied"
) -> CaptionedFigure:
    """The figure of `claim` for `form` in one sweep's rows (module docstring)."""
    plt = pyplot()
    points = claim_comparisons(rows, claim, form)
    metrics = list(dict.fromkeys(metric for metric, _ in points))
    longest = max((len(p) for p in points.values()), default=1)
    fig, axes = plt.subplots(
        max(len(metrics), 1),
        len(ROLES),
        figsize=(9.5, 0.9 + 0.28 * longest * max(len(metrics), 1)),
        squeeze=False,
        layout="constrained",
    )
    for i, metric in enumerate(metrics):
        for j, role in enumerate(ROLES):
            ax = axes[i][j]
            compared = points.get((metric, role), [])
            for y, c in enumerate(compared):
                d = c.difference
                ax.errorbar(
                    d.mean,
                    y,
                    xerr=[[max(d.mean - d.low, 0)], [max(d.high - d.mean, 0)]],
                    fmt="o",
                    markersize=4,
                    color=OUTCOME_COLORS.get(c.outcome, "0.55"),
                )
            ax.set_yticks(
                range(len(compared)),
                [
                    f"{display.architecture_name(c.base)}, L0 {c.l0:.0f}"
                    for c in compared
                ],
                fontsize=7,
            )
            ax.axvline(0, color="black", linewidth=0.8)
            # Few, short, signed ticks: differences span orders of magnitude.
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.xaxis.set_major_formatter(
                FuncFormatter(lambda v, _pos: f"{v:+.2g}" if v else "0")
            )
            ax.set_title(f"{metric}: vs {role}", fontsize=9)
            ax.set_xlabel(f"{form} - reference", fontsize=8)
            ax.grid(True, axis="x", alpha=0.3)
            ax.invert_yaxis()
    return CaptionedFigure(fig, claim_caption(rows, sweep, form))


def claim_caption(rows: Sequence[ClaimRow], sweep: str, form: str = "tied") -> str:
    """The line under `plot_claim`'s figure."""
    tokens = next((r.training_tokens for r in rows), None)
    return (
        f"`{sweep}` ({tokens_text(tokens)} tokens or samples per SAE), `{form}`: "
        "each row one aligned point at matched L0, the mean per-seed difference "
        "from its reference with its 95% t interval; blue better for aligned, red "
        "worse, grey a tie after the correction."
    )
