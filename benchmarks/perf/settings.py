"""What `benchmarks.perf.aligned_cost` measures and on what: the shapes (`PerfSettings`), the
aligned-vs-base cases, fresh SAEs and trainers of a setting, and the machine and
load every measurement carries."""

import os
import platform
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import TrainingSAE
from sae_lens.training.sae_trainer import SAETrainer

from saelens_aligned.pipeline.training import in_process_trainer_config
from saelens_aligned.sae_config import build_sae_config


@dataclass
class PerfSettings:
    """Shapes and repetitions of one perf run.

    Args:
        d_in: activation width.
        d_sae: latents.
        batch: tokens per training step.
        k: TopK / BatchTopK k.
        steps: timed steps per architecture (median reported).
        warmup: untimed steps per architecture first.
        device: "cpu" or "cuda".
        autocast: bf16 autocast for the SAE step (the GPU setting).
        clock: "wall" (elapsed time, the default) or "cpu" (this process' CPU
            time; with `threads` 1 it is immune to other jobs taking the cores
            in turn, though not to their cache and memory traffic: the clock for
            a shared CPU machine).
        threads: torch intra-op threads on CPU; None keeps torch's default.
    """

    d_in: int = 576
    d_sae: int = 4608
    batch: int = 4096
    k: int = 32
    steps: int = 50
    warmup: int = 5
    device: str = "cpu"
    autocast: bool = False
    clock: str = "wall"
    threads: int | None = None


CPU_SETTINGS = PerfSettings()
GPU_SETTINGS = PerfSettings(d_in=2304, d_sae=16384, device="cuda", autocast=True)
TINY_SETTINGS = PerfSettings(d_in=32, d_sae=128, batch=64, k=8, steps=3, warmup=1)
# SAELens' sparse decode for TopK (a COO tensor times W_dec). SAELens trains it only
# with rescale_acts_by_decoder_norm off: with it on, its `act_times_W_dec` multiplies
# the COO tensor by a dense vector, whose backward torch does not implement for COO
# tensors, so plain `topk` fails in its first backward too.
SPARSE_TOPK = {"use_sparse_activations": True, "rescale_acts_by_decoder_norm": False}


@dataclass(frozen=True)
class PerfCase:
    """One aligned variant to compare with its base.

    Args:
        architecture: The aligned architecture; its base comes from the registry.
        config: Config fields given to both SAEs (e.g. `SPARSE_TOPK`).
        label: Name of the case in records and tables.
    """

    architecture: str
    config: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.architecture


# On SAELens' dense step (`sparse_training` off), where SAELens' sparse decode
# applies; our sparse step is measured by `benchmarks.perf.sparse_step`.
SPARSE_TOPK_CASE = PerfCase(
    "aligned_topk",
    (*SPARSE_TOPK.items(), ("sparse_training", False)),
    "aligned_topk_sparse",
)


def perf_cases(architectures: list[str], sparse_topk: bool = True) -> list[PerfCase]:
    """Each architecture as configured by default, plus the sparse-decode TopK pair
    when TopK is among them."""
    cases = [PerfCase(architecture) for architecture in architectures]
    if sparse_topk and SPARSE_TOPK_CASE.architecture in architectures:
        cases.append(SPARSE_TOPK_CASE)
    return cases


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: timings on a shared machine are only as
    good as this, so every measurement carries it."""
    return [round(x, 2) for x in os.getloadavg()]


def build_sae(
    architecture: str,
    settings: PerfSettings,
    shared: dict[str, Any] | None = None,
    **kwargs: Any,
) -> TrainingSAE[Any]:
    """A fresh SAE of the setting's shape; `shared` fields apply where the config
    has them, `kwargs` must be fields of it."""
    sae_class, _ = get_sae_training_class(architecture)
    # A p-annealing schedule longer than any perf run: p stays at p_start.
    cfg = build_sae_config(
        architecture,
        settings.d_in,
        settings.d_sae,
        training_steps=10**6,
        shared={"k": settings.k, **(shared or {})},
        device=settings.device,
        **kwargs,
    )
    return sae_class(cfg)


def build_trainer(
    sae: TrainingSAE[Any], settings: PerfSettings
) -> SAETrainer[Any, Any]:
    cfg = in_process_trainer_config(
        10**9, settings.batch, settings.device, autocast=settings.autocast
    )
    return SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))
