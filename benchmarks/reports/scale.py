"""The dictionary-size study (issue #34): TopK's arms at 2x, 8x and 32x of d_in,
from the sweep folder of each size, rendered into docs/scale.md's generated
blocks (`benchmarks.reports.published` lists them):

- `scale claims`: the claim table of each size (the verdict engine,
  `benchmarks.analysis.verdicts`), once per aligned recipe (`tied` with AuxK,
  `tied` without), each judged against the stock base, the fair control and
  the base with its decoder bias from the activations' mean, the better recipe
  (`RecipeVerdicts`) first;
- `scale tokens`: each arm's tokens to the stock arm's final CE-loss score
  (`benchmarks.analysis.tokens_to_target`);
- `scale figure`: dead fraction and CE-loss score against dictionary size.

A size whose folder has no records yet reads "not run yet" with the command
that runs it, so the page renders (and `python -m benchmarks results --check`
holds) before, while and after the sweeps land.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.analysis.curves import Interval, t_interval
from benchmarks.analysis.tokens_to_target import TARGET_METRIC, tokens_to_target
from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow, judge_sweep
from benchmarks.analysis.verdicts.rules import CENTRED_BASE, ROLES
from benchmarks.analysis.verdicts.summary import claim_frame, markdown
from benchmarks.records.activation_moments import read_activation_moments
from benchmarks.records.layout import grid_records_dir
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import display
from benchmarks.reports.figures import CaptionedFigure, plot_by_dictionary_size
from benchmarks.sweeps.presets import PRESETS, load_sweep_config
from benchmarks.sweeps.runs import planned_main_runs

BASE = "topk"
"""The base architecture the study compares arms of."""
FIGURE_K = 32.0
"""The k every size has (32x trains k = 32 only)."""
D_IN = 576
FIGURE_METRICS = ("dead_fraction_long", TARGET_METRIC)


@dataclass(frozen=True)
class ScaleSize:
    """One dictionary size of the study.

    Args:
        name: `2×`, `8×`, `32×`.
        d_sae: Its dictionary size.
        folders: Sweep folders under benchmarks/results/ that hold it, the
            first complete one wins (2×: `scale_2x`, the study's own settings
            at 2×, once it is complete; the matched-L0 sweep until then, on
            205k tokens; the `cpu` sweep before that).
        curve_folders: Folders whose checkpoints the tokens-to-target table
            reads before `folders` (2×: `curves_cpu`, the learning-curve sweep
            on the same model, data and k 32, after `scale_2x`).
    """

    name: str
    d_sae: int
    folders: tuple[str, ...]
    curve_folders: tuple[str, ...] = ()


SIZES = (
    ScaleSize(
        "2×", 1152, ("scale_2x", "cpu_matched", "cpu"), ("scale_2x", "curves_cpu")
    ),
    ScaleSize("8×", 4608, ("scale_8x",)),
    ScaleSize("32×", 18432, ("scale_32x",)),
)


def planned_topk_runs(folder: str, d_sae: int) -> int | None:
    """How many TopK-arm runs at `d_sae` the preset named like `folder` plans,
    None where no preset has that name (the folder's plan is unknown)."""
    if folder not in PRESETS:
        return None
    planned = planned_main_runs(load_sweep_config(folder))
    return sum(1 for r in planned if r.base_architecture == BASE and r.d_sae == d_sae)


def is_complete(folder: str, sweep: SweepRecords, d_sae: int) -> bool:
    """Whether `sweep` (TopK arms at `d_sae`) holds every run its preset plans."""
    planned = planned_topk_runs(folder, d_sae)
    return planned is None or len({r.run_id for r in sweep.runs}) >= planned


def size_records(
    results: Path, size: ScaleSize, curves: bool = False
) -> tuple[str, SweepRecords] | None:
    """(folder, its TopK arms at the size) of the first complete folder with
    such runs (`curves`: and with checkpoints, `curve_folders` first); the
    first partial one where none is complete. A sweep still running does not
    displace a finished one (2×: `cpu_matched` replaces `cpu` once done)."""
    partial = None
    for folder in (*size.curve_folders, *size.folders) if curves else size.folders:
        if not (results / folder / "records").is_dir():
            continue
        sweep = topk_arms(SweepRecords.read(results / folder), size.d_sae)
        if sweep.runs and (sweep.checkpoints or not curves):
            if is_complete(folder, sweep, size.d_sae):
                return folder, sweep
            partial = partial or (folder, sweep)
    return partial


def topk_arms(sweep: SweepRecords, d_sae: int) -> SweepRecords:
    """`sweep` with only the TopK arms' runs at `d_sae`."""

    def keep(run) -> bool:
        return run.arm.base_architecture == BASE and run.point.d_sae == d_sae

    return replace(
        sweep,
        runs=tuple(r for r in sweep.runs if keep(r)),
        stability=tuple(
            s
            for s in sweep.stability
            if s.arm.base_architecture == BASE and s.point.d_sae == d_sae
        ),
        checkpoints=tuple(r for r in sweep.checkpoints if keep(r)),
    )


def aligned_recipes(sweep: SweepRecords) -> list[str]:
    """The aligned arms' labels (`aligned_topk[tied]`, its no-AuxK sibling)."""
    return sorted({r.arm.label for r in sweep.runs if r.arm.alignment is not None})


def one_recipe(sweep: SweepRecords, label: str) -> SweepRecords:
    """`sweep` with `label` the only aligned arm: each recipe judged alone, so no
    verdict pools two recipes' points."""

    def keep(arm) -> bool:
        return arm.alignment is None or arm.label == label

    return replace(
        sweep,
        runs=tuple(r for r in sweep.runs if keep(r.arm)),
        stability=tuple(s for s in sweep.stability if keep(s.arm)),
        checkpoints=tuple(r for r in sweep.checkpoints if keep(r.arm)),
    )


SCALE_ROLES = (*ROLES, CENTRED_BASE)
"""The references of every scale verdict, in table order."""


@dataclass(frozen=True)
class RecipeVerdicts:
    """One aligned recipe's claim rows at one size, judged with no other
    aligned arm in the sweep.

    Args:
        label: The recipe's arm label (`aligned_topk[tied]`, ...).
        rows: Its claim rows against every reference of `SCALE_ROLES`.
        mean_score: Its mean CE-loss score over every run (the tie-break).
    """

    label: str
    rows: tuple[ClaimRow, ...]
    mean_score: float

    @property
    def net(self) -> int:
        """Points better minus points worse, over every pooled claim row and
        reference: how far ahead the recipe comes out of its own table."""
        return sum(r.verdict.net for r in self.rows if r.base == POOLED)


def judged_recipes(sweep: SweepRecords) -> list[RecipeVerdicts]:
    """Each aligned recipe judged alone, the better first: the higher `net`,
    then the higher mean CE-loss score. Both are shown; choosing the better
    after seeing both flatters it a little, which is why the other stays in
    every table beside it."""
    recipes = []
    for label in aligned_recipes(sweep):
        alone = one_recipe(sweep, label)
        scores = [
            r.metrics.get(TARGET_METRIC, math.nan)
            for r in alone.runs
            if r.arm.label == label
        ]
        finite = [s for s in scores if math.isfinite(s)]
        recipes.append(
            RecipeVerdicts(
                label,
                tuple(judge_sweep(alone, roles=SCALE_ROLES)),
                sum(finite) / len(finite) if finite else -math.inf,
            )
        )
    return sorted(recipes, key=lambda r: (-r.net, -r.mean_score, r.label))


def recipe_heading(recipe: RecipeVerdicts, rank: int, count: int) -> str:
    name = display.arm_name(recipe.label)
    if count < 2:
        return f"#### {name}"
    which = "the better recipe here" if rank == 0 else "the other recipe"
    return (
        f"#### {name}: {which} (net {recipe.net:+d}: points better minus points "
        "worse over every row)"
    )


def not_run(size: ScaleSize, results: Path) -> str:
    """Why a size has no main run: not started, or still in its rate grid."""
    # A scale folder is named after the preset that fills it.
    preset = size.folders[0]
    command = (
        f"`python -m benchmarks sweep --preset {preset} --out "
        f"benchmarks/results/{preset}`"
    )
    grid = grid_records_dir(results / preset)
    done = len(list(grid.glob("*.json"))) if grid.is_dir() else 0
    if done:
        return (
            f"Learning-rate grid under way: {done} grid runs recorded, no main run "
            f"yet ({command} resumes it)."
        )
    return f"Not run yet: {command}."


def heading(size: ScaleSize, folder: str | None) -> str:
    where = f", `benchmarks/results/{folder}`" if folder else ""
    return f"### {size.name} (d_sae {size.d_sae}{where})"


def claims_block(results: Path) -> str:
    """Each size's claim table per aligned recipe, or "not run yet"."""
    parts = []
    for size in SIZES:
        found = size_records(results, size)
        parts.append(heading(size, found[0] if found else None))
        if found is None:
            parts.append(not_run(size, results))
            continue
        sweep = found[1]
        if not is_complete(found[0], sweep, size.d_sae):
            parts.append(
                f"Running: {len({r.run_id for r in sweep.runs})} of "
                f"{planned_topk_runs(found[0], size.d_sae)} TopK runs recorded so "
                "far; the verdicts below are partial."
            )
        moments = read_activation_moments(results / found[0])
        if moments is not None:
            parts.append(
                f"Training activations: γ = ‖μ‖/‖σ‖ = {moments.gamma:.2f}; the mean "
                f"carries {moments.mean_share:.0%} of E‖x‖² ({moments.tokens:,} "
                "tokens; the `b_dec=mean` arm starts its decoder bias at μ)."
            )
        recipes = judged_recipes(sweep)
        for rank, recipe in enumerate(recipes):
            parts.append(recipe_heading(recipe, rank, len(recipes)))
            parts.append(markdown(claim_frame(list(recipe.rows))))
    return "\n\n".join(parts)


def tokens_block(results: Path) -> str:
    """Each size's tokens to target per arm and k, or why there are none."""
    parts = []
    for size in SIZES:
        found = size_records(results, size, curves=True)
        parts.append(heading(size, found[0] if found else None))
        if found is None:
            parts.append(
                "No learning-curve checkpoints yet."
                if size_records(results, size)
                else not_run(size, results)
            )
            continue
        results_ = tokens_to_target(found[1].checkpoint_frame())
        rows = ["| arm | k | stock's final score | budget | tokens to it |"]
        rows.append("|---|---|---|---|---|")
        for t in sorted(results_, key=lambda t: (t.sparsity_value, t.label)):
            rows.append(
                f"| {display.arm_name(t.label)} | {t.sparsity_value:g} | "
                f"{t.target:.3f} | {t.budget / 1e6:.2g}M | {t.text} |"
            )
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def figure_points(
    results: Path,
) -> dict[str, dict[str, list[tuple[int, Interval]]]]:
    """Metric -> arm label -> (d_sae, seed interval) at FIGURE_K, every size
    with records."""
    points: dict[str, dict[str, list[tuple[int, Interval]]]] = {
        m: {} for m in FIGURE_METRICS
    }
    for size in SIZES:
        found = size_records(results, size)
        if found is None:
            continue
        for metric in FIGURE_METRICS:
            by_label: dict[str, list[float]] = {}
            for run in found[1].runs:
                if run.point.sparsity_value == FIGURE_K:
                    value = run.metrics.get(metric, math.nan)
                    by_label.setdefault(run.arm.label, []).append(value)
            for label, values in by_label.items():
                interval = t_interval(values)
                if interval.n:
                    points[metric].setdefault(label, []).append((size.d_sae, interval))
    return points


def training_tokens(sweep: SweepRecords) -> int | None:
    """The most tokens any of `sweep`'s SAEs trained on (None: not recorded)."""
    return max(
        (r.training_tokens for r in sweep.runs if r.training_tokens), default=None
    )


def figure_tokens(results: Path) -> dict[int, int]:
    """d_sae -> the training tokens of the SAEs the figure draws at that size."""
    tokens = {}
    for size in SIZES:
        found = size_records(results, size)
        trained = training_tokens(found[1]) if found else None
        if trained:
            tokens[size.d_sae] = trained
    return tokens


def sizes_drawn(results: Path) -> int:
    return len(
        {d for c in figure_points(results).values() for p in c.values() for d, _ in p}
    )


def scale_figure(results: Path) -> CaptionedFigure | None:
    """The figure, once two sizes have records (one size is no trend)."""
    if sizes_drawn(results) < 2:
        return None
    return plot_by_dictionary_size(
        figure_points(results), FIGURE_K, D_IN, figure_tokens(results)
    )


def figure_block(results: Path, image: str) -> str:
    """The figure's markdown (`image`: its path from docs/), or what it waits for."""
    figure = scale_figure(results)
    if figure is None:
        return (
            "Not drawn yet: it needs records at two sizes or more "
            f"(has {sizes_drawn(results)})."
        )
    import matplotlib.pyplot as plt

    plt.close(figure.figure)
    return f"![dead fraction and CE-loss score by dictionary size]({image})\n\n*{figure.caption}*"
