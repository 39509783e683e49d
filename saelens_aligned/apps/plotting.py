"""Plot helpers. Matplotlib is imported lazily so the package imports without it."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saelens_aligned.alignment import HISTOGRAM_EDGES
from saelens_aligned.io.files import save_figure_atomic


def plot_alignment_histograms(
    scores_by_name: Mapping[str, torch.Tensor | np.ndarray],
    path: str | Path | None = None,
    title: str = "Alignment scores a_i = <e_i, d_i>",
) -> Any:
    """Side-by-side histograms of alignment scores, one panel per SAE, shared bins.

    Returns the matplotlib Figure; when `path` is given, writes it as a PNG
    (atomically) and closes it.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scores_by_name)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.5), squeeze=False, sharey=False)
    for ax, (name, scores) in zip(axes[0], scores_by_name.items()):
        values = (
            scores.detach().float().cpu().numpy()
            if isinstance(scores, torch.Tensor)
            else np.asarray(scores)
        )
        clipped = np.clip(values, HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1])
        ax.hist(clipped, bins=HISTOGRAM_EDGES, color="tab:blue")
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(f"{name}\nmean {values.mean():.3f}, n={values.size}")
        ax.set_xlabel("alignment score")
        ax.set_ylabel("features")
    fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_figure_atomic(fig, path)
    return fig


def plot_alignment_vs_density(
    scores_by_name: Mapping[str, torch.Tensor | np.ndarray | list[float]],
    densities_by_name: Mapping[str, torch.Tensor | np.ndarray | list[float]],
    path: str | Path | None = None,
) -> Any:
    """One scatter panel per SAE: alignment score a_i against log10 feature
    density (the fraction of tokens on which it fired), dead features (density 0)
    in red on a row of their own, half a decade below the rarest live feature.
    Dashed lines mark a_i = 0.5 and a_i = 1.

    Returns the matplotlib Figure; when `path` is given, writes it as a PNG
    (atomically) and closes it.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scores_by_name)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.5), squeeze=False)
    for ax, (name, scores) in zip(axes[0], scores_by_name.items()):
        a = _as_numpy(scores)
        density = _as_numpy(densities_by_name[name])
        dead = density <= 0
        logs = np.log10(np.where(dead, 1.0, density))
        floor = logs[~dead].min() if (~dead).any() else 0.0
        ax.scatter(a[~dead], logs[~dead], s=4, alpha=0.5, color="tab:blue")
        ax.scatter(
            a[dead],
            np.full(int(dead.sum()), floor - 0.5),
            s=4,
            alpha=0.5,
            color="tab:red",
            label=f"dead ({int(dead.sum())})",
        )
        for x in (0.5, 1.0):
            ax.axvline(x, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(f"{name}\n{int((~dead).sum())} live of {a.size} features")
        ax.set_xlabel("alignment score a_i")
        ax.set_ylabel("log10 feature density")
        ax.legend(loc="lower right", fontsize="small")
    fig.suptitle("Alignment score against feature density")
    fig.tight_layout()
    if path is not None:
        save_figure_atomic(fig, path)
    return fig


def _as_numpy(values: torch.Tensor | np.ndarray | list[float]) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().double().cpu().numpy().ravel()
    return np.asarray(values, dtype=float).ravel()
