"""The training activations' moments (`activation_moments.json` beside `records/`):
their mean, which an arm with `b_dec_init: mean` starts its decoder bias at, and
how far that mean sits from the origin relative to the spread around it.

Simon, Adams & Zou 2026 (arXiv 2605.31518) tie dead latents to activations whose
mean is large against their spread: gamma = ||mu|| / ||sigma||, with sigma the
per-dimension standard deviations. The record keeps gamma for every sweep that
computes the mean, so a report can say how off-centre its activations were.

`activation_moments` is the pure reduction; the backends compute it once per
sweep and write the record (`benchmarks.sweeps.backends`).
"""

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.records.layout import write_json_atomic

ACTIVATION_MOMENTS_FILENAME = "activation_moments.json"


@dataclass(frozen=True)
class ActivationMoments:
    """First and second moments of a set of activations.

    Args:
        mean: Per-dimension mean mu, computed in float64. [d_in]
        gamma: ||mu|| / ||sigma||, sigma the per-dimension standard deviations
            (population): the off-centre ratio of Simon, Adams & Zou 2026.
        mean_share: ||mu||^2 / E||x||^2, the part of the activations' squared
            norm that the mean alone accounts for (gamma^2 / (1 + gamma^2)).
        tokens: Activation rows the moments were computed over.
        source: What was reduced (the training cache, the synthetic samples).
    """

    mean: list[float]
    gamma: float
    mean_share: float
    tokens: int
    source: str

    def mean_tensor(self) -> torch.Tensor:
        return torch.tensor(self.mean, dtype=torch.float64)


def activation_moments(
    batches: Iterable[torch.Tensor], source: str
) -> ActivationMoments:
    """The moments of every row of `batches` ([tokens, d_in] each), accumulated
    in float64 so a mean over millions of float32 rows does not drift."""
    total_D: torch.Tensor | None = None
    total_sq_D: torch.Tensor | None = None
    tokens = 0
    for batch_TD in batches:
        x_TD = batch_TD.detach().to(torch.float64).reshape(-1, batch_TD.shape[-1])
        if total_D is None:
            total_D = torch.zeros(x_TD.shape[1], dtype=torch.float64)
            total_sq_D = torch.zeros_like(total_D)
        assert total_sq_D is not None
        total_D += x_TD.sum(dim=0).cpu()
        total_sq_D += x_TD.pow(2).sum(dim=0).cpu()
        tokens += x_TD.shape[0]
    if total_D is None or total_sq_D is None or tokens == 0:
        raise ValueError(f"No activations to take the mean of ({source}).")
    mean_D = total_D / tokens
    # Var = E[x^2] - mu^2, clipped: rounding can leave a constant dimension
    # a hair below zero.
    variance_D = (total_sq_D / tokens - mean_D.pow(2)).clamp_min(0.0)
    mean_sq = float(mean_D.pow(2).sum())
    spread_sq = float(variance_D.sum())
    gamma = math.sqrt(mean_sq / spread_sq) if spread_sq > 0 else math.inf
    return ActivationMoments(
        mean=[float(v) for v in mean_D],
        gamma=gamma,
        mean_share=mean_sq / (mean_sq + spread_sq) if mean_sq + spread_sq else 0.0,
        tokens=tokens,
        source=source,
    )


def read_activation_moments(out_dir: Path) -> ActivationMoments | None:
    path = Path(out_dir) / ACTIVATION_MOMENTS_FILENAME
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return ActivationMoments(**data)


def write_activation_moments(out_dir: Path, moments: ActivationMoments) -> None:
    write_json_atomic(Path(out_dir) / ACTIVATION_MOMENTS_FILENAME, asdict(moments))
