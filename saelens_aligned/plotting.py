"""Plot helpers. Matplotlib is imported lazily so the package imports without it."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saelens_aligned.alignment import HISTOGRAM_EDGES
from saelens_aligned.io import save_figure_atomic


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
