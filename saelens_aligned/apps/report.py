"""The demo's report folder: markdown table, PNG plots, raw metrics as JSON.

`summary_table` and `summary_markdown` are pure (results in, markdown out);
`write_report` does the I/O. `meta["labels"]` names each result's column (a
result without one is shown by its key) and `meta["fair_control"]` is the key of
the fair control, if the run has one.
Every file is written through a temporary sibling and os.replace
(`saelens_aligned.io.files`).
"""

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from saelens_aligned.apps.findings import load_findings
from saelens_aligned.io.files import save_figure_atomic, write_text_atomic

SUMMARY_FILENAME = "summary.md"
METRICS_FILENAME = "metrics.json"
ALIGNMENT_PLOT = "plots/alignment_histograms.png"
DENSITY_PLOT = "plots/feature_density_histograms.png"
# Table rows: metric key, display label, whether higher is better (None: no
# direction, e.g. L0). Labels exist only here, where the table is rendered.
TABLE_ROWS: tuple[tuple[str, str, bool | None], ...] = (
    ("ce_loss_score", "CE-loss score", True),
    ("kl_div_score", "KL score", True),
    ("explained_variance", "explained variance (about the mean)", True),
    ("explained_variance_legacy", "explained variance (SAEBench legacy)", True),
    ("cossim", "cosine similarity", True),
    ("l2_ratio", "L2 ratio", None),
    ("l0", "L0", None),
    ("dead_fraction", "dead fraction", False),
    ("alive_fraction", "alive fraction", True),
    ("alignment_mean", "mean alignment score", None),
)


def table_values(result: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of one evaluated SAE, with its mean alignment score."""
    return {
        **result["metrics"],
        "alignment_mean": float(result["alignment"]["mean"]),
    }


def _format(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}"


def summary_table(
    results: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, str] | None = None,
) -> str:
    """A markdown table, one column per SAE (headed by `labels[name]`, else the
    name); the better value of each directional row is bold."""
    names = list(results)
    rows = {name: table_values(results[name]) for name in names}
    headers = [(labels or {}).get(n, f"`{n}`") for n in names]
    lines = [
        "| metric | " + " | ".join(headers) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label, higher_is_better in TABLE_ROWS:
        values = [rows[n].get(key, math.nan) for n in names]
        best = None
        finite = [v for v in values if math.isfinite(v)]
        if higher_is_better is not None and len(finite) > 1 and len(set(finite)) > 1:
            best = max(finite) if higher_is_better else min(finite)
        cells = [
            f"**{_format(v)}**" if best is not None and v == best else _format(v)
            for v in values
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(
    results: Mapping[str, Mapping[str, Any]], meta: Mapping[str, Any]
) -> str:
    config = meta.get("config", {})
    labels = meta.get("labels", {})
    longer = ""
    if meta.get("pretrained"):
        trained = (
            f"Released SAE `{meta['pretrained']}` (folder `{meta.get('sae_dir')}`), "
            "not trained here, so there is no stock base or fair control beside it: "
            "those would have to be trained at its seed on its data; the demo "
            "without `--pretrained` trains all three. "
        )
        files = "`metrics.json` (every metric, per-feature densities and alignment "
    else:
        fair_control = meta.get("fair_control")
        control = (
            f" The {labels.get(fair_control, fair_control)} starts from exactly the weights the aligned "
            "`projected` form starts from at this seed (encoder column = decoder "
            "row at unit norm) and trains without the constraint: at step 0 it "
            "computes the aligned SAE's function, so it separates what the start "
            "does from what the constraint does."
            if fair_control
            else ""
        )
        trained = (
            f"Every SAE: d_sae {config.get('d_sae')}, trained on the same "
            f"{config.get('training_tokens'):,} cached activations "
            f"(context {config.get('context_size')}, batch "
            f"{config.get('train_batch_size_tokens')} tokens, lr {config.get('lr')}, "
            f"seed {config.get('seed')}), evaluated on the same tokens.{control} "
        )
        longer = f"{load_findings().sentence()}\n\n"
        files = (
            "`saes/<name>/` (SAELens SAE folders, load with "
            "`SAE.load_from_disk`), `metrics.json` (every metric, per-feature "
            "densities and alignment "
        )
    return (
        "# saelens-aligned demo\n\n"
        f"Model `{meta.get('model')}` ({meta.get('model_class')}), hook "
        f"`{meta.get('hook')}` (d_in {meta.get('d_in')}); corpus: "
        f"{meta.get('corpus')} - licence: {meta.get('corpus_licence')}.\n"
        + trained
        + "Metrics: SAEBench core eval on "
        f"{meta.get('eval_text', 'held-out documents')} against the live model; a "
        "latent is dead when it never fired on the evaluated tokens. Wall time "
        f"{meta.get('wall_seconds')} s.\n\n"
        + summary_table(results, labels)
        + "\n"
        + longer
        + "![alignment scores](plots/alignment_histograms.png)\n"
        "\n![feature densities](plots/feature_density_histograms.png)\n"
        f"\nFiles: {files}scores).\n"
    )


def plot_feature_densities(densities_by_name: Mapping[str, list[float]]) -> Any:
    """Side-by-side histograms of log10 feature density; dead latents in a bar of
    their own at the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(densities_by_name)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.5), squeeze=False)
    floor = -7.0
    bins = np.linspace(floor - 0.5, 0.0, 61)
    for ax, (name, density) in zip(axes[0], densities_by_name.items()):
        values = np.asarray(density, dtype=float)
        dead = int((values <= 0).sum())
        logs = np.log10(np.clip(values, 10**floor, None))
        logs[values <= 0] = floor - 0.25
        ax.hist(logs, bins=bins, color="tab:orange")
        ax.set_title(f"{name}\ndead {dead} of {values.size}")
        ax.set_xlabel("log10 feature density (left bar: dead)")
        ax.set_ylabel("features")
    fig.suptitle("Feature density on held-out tokens")
    fig.tight_layout()
    return fig


def _plain(label: str) -> str:
    # A plot title: no markdown backticks, long labels on two lines.
    return label.replace("`", "").replace(" (", "\n(")


def write_report(
    output_dir: Path,
    results: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> dict[str, Path]:
    """Write summary.md, metrics.json and the plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from saelens_aligned.apps.plotting import plot_alignment_histograms

    paths = {
        "summary": output_dir / SUMMARY_FILENAME,
        "metrics": output_dir / METRICS_FILENAME,
        "alignment_plot": output_dir / ALIGNMENT_PLOT,
        "density_plot": output_dir / DENSITY_PLOT,
    }
    titles = {name: _plain(meta.get("labels", {}).get(name, name)) for name in results}
    fig = plot_alignment_histograms(
        {titles[n]: np.asarray(r["alignment_scores"]) for n, r in results.items()}
    )
    save_figure_atomic(fig, paths["alignment_plot"])
    fig = plot_feature_densities(
        {titles[n]: r["feature_density"] for n, r in results.items()}
    )
    save_figure_atomic(fig, paths["density_plot"])
    write_text_atomic(
        paths["metrics"],
        json.dumps({"meta": meta, "results": results}, indent=1, default=str),
    )
    write_text_atomic(paths["summary"], summary_markdown(results, meta))
    return paths
