"""Verdicts by training length: a learning-curve sweep's comparisons at its
shortest and at its longest checkpoint, side by side, so a verdict from short
runs is never read as one that holds after long training.

Each aligned arm is compared with its stock base and fair control at every
checkpoint step it shares with them, at matched L0 and paired by seed (the same
rules as `judge`); Benjamini-Hochberg runs over each metric's comparisons of one
reference (every arm, both lengths).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.analysis.verdicts.judge import (
    BETTER,
    NO_OVERLAP,
    TIE,
    WORSE,
    judged_specs,
    reference_mask,
)
from benchmarks.analysis.verdicts.matching import pair_at_matched_l0
from benchmarks.analysis.verdicts.rules import MIN_SEEDS, ROLES, ClaimSpec
from benchmarks.analysis.verdicts.statistics import (
    ALPHA,
    Difference,
    benjamini_hochberg,
    paired_difference,
)
from benchmarks.analysis.verdicts.summary import tokens_text
from benchmarks.records.run_table import SweepRecords


@dataclass(frozen=True)
class LengthComparison:
    """An aligned arm against one reference at one checkpoint.

    Args:
        spec: The claim metric.
        aligned: The aligned arm.
        reference: The reference arm.
        role: stock base / fair control.
        step: The checkpoint step.
        tokens_seen: Training tokens (samples) at that step.
        in_decay: Whether the step lies inside the final learning-rate decay
            (not at its end): a change there may be the schedule, not learning.
        l0: (aligned, reference) mean L0.
        difference: Aligned - reference, paired by seed (NaN: no overlap).
        outcome: better / worse / tie after the correction, or no overlap.
    """

    spec: ClaimSpec
    aligned: str
    reference: str
    role: str
    step: int
    tokens_seen: float
    in_decay: bool
    l0: tuple[float, float]
    difference: Difference
    outcome: str


def length_comparisons(sweep: SweepRecords) -> list[LengthComparison]:
    """Every aligned arm against each reference at its shortest and longest
    shared checkpoint, for every claim metric the checkpoints record (the ones
    `judge` would judge: dead features on the long window where recorded).
    Steps are those at which the metric was recorded, so a metric measured only
    at the end compares one length, never a blank."""
    checkpoints = sweep.checkpoint_frame()
    checkpoints = checkpoints[checkpoints["step"].notna()]
    out: list[LengthComparison] = []
    for spec in judged_specs(checkpoints, pd.DataFrame()):
        metric = spec.metric
        frame = checkpoints[np.isfinite(checkpoints[metric])]
        for role in ROLES:
            raws = []
            aligned = frame[frame["alignment"].notna()]
            for label, runs in aligned.groupby("label"):
                base = runs["base_architecture"].iloc[0]
                form = runs["alignment"].iloc[0]
                ref = frame[reference_mask(frame, base, form, role)]
                if ref.empty:
                    continue
                steps = sorted(set(runs["step"]) & set(ref["step"]))
                for step in sorted({steps[0], steps[-1]}) if steps else []:
                    a, r = runs[runs["step"] == step], ref[ref["step"] == step]
                    pairings = pair_at_matched_l0(a, r, metric)
                    paired = [p for p in pairings if len(p.aligned) >= MIN_SEEDS]
                    diff = (
                        paired_difference(paired[0].diffs)
                        if paired
                        else paired_difference([])
                    )
                    decay = int(a["lr_decay_steps"].iloc[0])
                    batch = a["tokens_seen"].iloc[0] / step
                    total_steps = a["training_tokens"].iloc[0] / batch
                    raws.append(
                        (
                            str(label),
                            str(r["label"].iloc[0]),
                            int(step),
                            float(a["tokens_seen"].iloc[0]),
                            bool(decay and total_steps - decay < step < total_steps),
                            (float(a["l0"].mean()), float(r["l0"].mean())),
                            diff,
                        )
                    )
            adjusted = benjamini_hochberg([raw[-1].p_value for raw in raws])
            for raw, q in zip(raws, adjusted):
                diff = raw[-1]
                if diff.n == 0:
                    outcome = NO_OVERLAP
                elif not q < ALPHA:
                    outcome = TIE
                else:
                    up = diff.mean > 0
                    outcome = BETTER if up == spec.higher_is_better else WORSE
                out.append(
                    LengthComparison(spec, raw[0], raw[1], role, *raw[2:], outcome)
                )
    return out


def comparison_text(
    c: LengthComparison | None, interval: bool = True, at: bool = True
) -> str:
    """`better +0.091 [+0.077, +0.105] at 129k`: the outcome, the mean paired
    difference, its 95% interval (`interval`) and the length (`at`); a line
    that states its lengths once leaves them out of each cell."""
    if c is None:
        return "-"
    if c.outcome == NO_OVERLAP:
        return f"no overlap (L0 {c.l0[0]:.1f} vs {c.l0[1]:.1f})"
    d = c.difference
    text = f"{c.outcome} {d.mean:+.3f}"
    if interval:
        text += f" [{d.low:+.3f}, {d.high:+.3f}]"
    if at:
        text += f" at {tokens_text(int(c.tokens_seen))}"
    return text + (", in lr decay" if c.in_decay else "")


def lengths_frame(comparisons: list[LengthComparison]) -> pd.DataFrame:
    """One row per metric, aligned arm and reference: the outcome at the shortest
    and at the longest length side by side."""
    rows = {}
    for c in comparisons:
        key = (c.spec.display, c.aligned, c.role, c.reference)
        rows.setdefault(key, []).append(c)
    out = []
    for (metric, aligned, role, reference), cs in rows.items():
        cs = sorted(cs, key=lambda c: c.step)
        out.append(
            {
                "metric (matched L0)": metric,
                "aligned": aligned,
                "reference": f"{role}: {reference}",
                "shortest": comparison_text(cs[0]),
                "longest": comparison_text(cs[-1]) if len(cs) > 1 else "-",
            }
        )
    return pd.DataFrame(out)
