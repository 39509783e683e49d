"""The feature-quality table of a sweep: SAEBench's sparse probing (local
multi-class text and the sae-probes datasets) and TPP, per arm and against the
references, from the sweep's records. TPP is marked wherever it appears: it
fails the reliability tests of `rules.RELIABILITY_STUDY`.

    python -m benchmarks.reports.feature_quality benchmarks/results/probing_cpu

Per arm, each metric's mean over seeds with its 95% t interval, and the
residual-stream probe baseline beside the probing metrics: an SAE's probe accuracy
means little without the model's own. Each aligned arm is then compared with the
stock base and with its fair control, by the paired-by-seed difference (the arms
share seeds, data order and evaluation text). The fair control of both forms is the
base trained from the balanced (`projected`) init without the constraint
(`init_from: projected`). The `tied`-init control collapses (its norm-10 decoder
never moves), so it is shown as a diagnostic and never used as a reference. The
p-values of the paired t tests are corrected across the table's comparisons with
Benjamini-Hochberg (`scipy.stats.false_discovery_control`).
"""

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.analysis.verdicts.rules import (
    FAILS_RELIABILITY,
    FAIR_CONTROL_START,
    RELIABILITY_TEXT,
)
from benchmarks.analysis.verdicts.statistics import (
    ALPHA,
    benjamini_hochberg,
    mean_interval,
    paired_difference,
)
from benchmarks.records.layout import flat_metrics, load_records, run_info

FAIR_CONTROL_INIT = FAIR_CONTROL_START["tied"]
"""`init_from` of the fair control of either form: the balanced init."""
FDR = ALPHA
"""Benjamini-Hochberg level at which a paired difference counts as better/worse."""


@dataclass(frozen=True)
class QualityMetric:
    """A metric of the table.

    Args:
        name: Its name in `records.FLAT_METRICS`.
        title: The table's label.
        baseline: The FLAT_METRICS name of the residual-stream baseline of the
            same quantity, if any.
        baseline_title: Its label; None: the metric's title.
    """

    name: str
    title: str
    baseline: str | None = None
    baseline_title: str | None = None


METRICS = (
    QualityMetric(
        "sparse_probing_top1",
        "sparse probing top-1 (local sets)",
        "sparse_probing_llm_top1",
    ),
    QualityMetric(
        "sparse_probing_top5",
        "sparse probing top-5 (local sets)",
        "sparse_probing_llm_top5",
    ),
    QualityMetric(
        "sparse_probing_all",
        "probe on all latents (local sets)",
        "sparse_probing_llm_all",
    ),
    QualityMetric("sae_probes_top1", "sae-probes top-1"),
    QualityMetric(
        "sae_probes_top5",
        "sae-probes top-5",
        "sae_probes_llm",
        "sae-probes dense logistic regression",
    ),
    QualityMetric("tpp_total", f"TPP, 20 latents (local sets; {FAILS_RELIABILITY})"),
)
"""Accuracies are test accuracies. The residual-stream baseline of a top-k row
probes the top-k residual dimensions (sae-probes: a dense logistic regression)."""
SECONDS = ("sparse_probing_seconds", "sae_probes_seconds", "tpp_seconds")


def arm_name(info: dict[str, object]) -> str:
    """Stock base, init control or aligned form, in words."""
    if info.get("alignment"):
        return f"{info['architecture']} `{info['alignment']}`"
    if info.get("init_from") == FAIR_CONTROL_INIT:
        return f"{info['architecture']} from the balanced init (fair control)"
    if info.get("init_from"):
        return (
            f"{info['architecture']} from the `{info['init_from']}` init (diagnostic)"
        )
    return f"{info['architecture']} (stock base)"


def per_run_table(out_dir: Path) -> pd.DataFrame:
    """One row per run record: identity, L0 and every metric of the table."""
    runs, _ = load_records(out_dir)
    rows = []
    for record in runs:
        info = run_info(record)
        values = flat_metrics(record)
        rows.append(
            {
                "arm": arm_name(info),
                "architecture": info["architecture"],
                "alignment": info.get("alignment"),
                "init_from": info.get("init_from"),
                "sparsity": f"{info['sparsity_param']}={info['sparsity_value']:g}",
                "d_sae": info["d_sae"],
                "seed": info["seed"],
                "l0": values["l0"],
                **{m.name: values.get(m.name, math.nan) for m in METRICS},
                **{
                    m.baseline: values.get(m.baseline, math.nan)
                    for m in METRICS
                    if m.baseline
                },
                **{name: values.get(name, math.nan) for name in SECONDS},
            }
        )
    return pd.DataFrame(rows)


def interval_text(values: pd.Series) -> str:
    """`mean [low, high]` over the finite values (t interval), or n/a."""
    x = values.dropna().to_numpy(dtype=float)
    if x.size == 0:
        return "n/a"
    if x.size == 1:
        return f"{x[0]:.3f}"
    mean, low, high = mean_interval(x.tolist())
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def arm_table(runs: pd.DataFrame) -> str:
    """Per arm and sparsity: each metric's seed mean with its interval, the
    baselines, L0 and seconds per SAE."""
    rows = []
    for (arm, sparsity, d_sae), group in runs.groupby(
        ["arm", "sparsity", "d_sae"], sort=True
    ):
        row = {
            "arm": arm,
            "sparsity": sparsity,
            "d_sae": d_sae,
            "seeds": len(group),
            "L0": f"{group['l0'].mean():.1f}",
        }
        for metric in METRICS:
            row[metric.title] = interval_text(group[metric.name])
        for name in SECONDS:
            row[f"{name.removesuffix('_seconds')} s/SAE"] = (
                f"{group[name].mean():.0f}" if group[name].notna().any() else "n/a"
            )
        rows.append(row)
    baselines = {
        f"residual stream: {m.baseline_title or m.title}": interval_text(
            runs[m.baseline]
        )
        for m in METRICS
        if m.baseline and m.baseline in runs
    }
    text = pd.DataFrame(rows).to_markdown(index=False)
    if baselines:
        text += "\n\n" + pd.Series(baselines, name="value").to_markdown()
    return text + "\n"


@dataclass(frozen=True)
class PairedDifference:
    """Aligned minus reference over the seeds both have."""

    metric: str
    aligned: str
    reference: str
    sparsity: str
    n: int
    mean: float
    low: float
    high: float
    p_value: float
    p_adjusted: float = math.nan

    @property
    def outcome(self) -> str:
        if not (self.p_adjusted <= FDR):
            return "tie"
        return "better" if self.mean > 0 else "worse"  # every metric: higher is better


def paired_differences(runs: pd.DataFrame) -> list[PairedDifference]:
    """Each aligned arm against the stock base and the fair control at the same
    sparsity and d_sae, paired by seed; p-values BH-corrected across all."""
    out = []
    aligned = runs[runs["alignment"].notna()]
    stock = runs[runs["alignment"].isna() & runs["init_from"].isna()]
    control = runs[runs["init_from"] == FAIR_CONTROL_INIT]
    keys = ["sparsity", "d_sae", "seed"]
    for (name, sparsity), arm in aligned.groupby(["arm", "sparsity"]):
        for reference in (stock, control):
            ref = reference[reference["sparsity"] == sparsity]
            if ref.empty:
                continue
            pairs = arm.merge(ref, on=keys, suffixes=("", "_ref"))
            for metric in METRICS:
                d = (pairs[metric.name] - pairs[f"{metric.name}_ref"]).dropna()
                if len(d) < 2:
                    continue
                diff = paired_difference(d.tolist())
                out.append(
                    PairedDifference(
                        metric.title,
                        name,
                        str(ref["arm"].iloc[0]),
                        sparsity,
                        diff.n,
                        diff.mean,
                        diff.low,
                        diff.high,
                        diff.p_value,
                    )
                )
    adjusted = benjamini_hochberg([d.p_value for d in out])
    return [
        PairedDifference(**{**d.__dict__, "p_adjusted": p})
        for d, p in zip(out, adjusted, strict=True)
    ]


def difference_table(differences: list[PairedDifference]) -> str:
    if not differences:
        return "No aligned arm has a reference with two shared seeds.\n"
    rows = [
        {
            "metric": d.metric,
            "aligned": d.aligned,
            "reference": d.reference,
            "sparsity": d.sparsity,
            "seeds": d.n,
            "aligned - reference [95%]": f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]",
            "BH-adjusted p": f"{d.p_adjusted:.3f}",
            "outcome": d.outcome,
        }
        for d in differences
    ]
    return pd.DataFrame(rows).to_markdown(index=False) + "\n"


def render(out_dir: Path) -> str:
    """Both tables of the sweep folder `out_dir`."""
    runs = per_run_table(out_dir)
    if runs.empty:
        return f"No run records in {out_dir}.\n"
    # The study's verdict on the metrics comes first: a reader who stops at the
    # first table should not take TPP for evidence.
    return (
        RELIABILITY_TEXT
        + "\n\n"
        + arm_table(runs)
        + "\n"
        + difference_table(paired_differences(runs))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="a sweep folder")
    print(render(parser.parse_args().out_dir), end="")


if __name__ == "__main__":
    main()
