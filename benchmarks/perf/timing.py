"""Step time of an aligned SAE against its base (median of interleaved steps,
A B A B, on the same batch) and the roofline: achieved matmul FLOP/s against
dense matmuls of the step's shapes."""

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.perf.memory import free_memory, memory_accounting, step_peak_memory
from benchmarks.perf.settings import (
    PerfCase,
    PerfSettings,
    build_sae,
    build_trainer,
    load_average,
)
from saelens_aligned.architectures import same_step_base


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_medians(
    steps: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    device: str,
    clock: str = "wall",
) -> dict[str, float]:
    """Median seconds per call of each function, called in turn A B A B ..."""
    now = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            _sync(device)
            start = now()
            fn()
            _sync(device)
            times[name].append(now() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_flops_per_step(settings: PerfSettings) -> float:
    # Encoder and decoder matmuls, forward and two backward products each.
    return 6 * 2 * settings.batch * settings.d_in * settings.d_sae


def dense_matmul_seconds(settings: PerfSettings) -> float:
    """Time of the six dense matmuls of a step (forward and backward shapes)."""
    B, D, F = settings.batch, settings.d_in, settings.d_sae
    dtype = torch.bfloat16 if settings.autocast else torch.float32
    dev = settings.device
    x_BD, W_DF = (
        torch.randn(B, D, device=dev, dtype=dtype),
        torch.randn(D, F, device=dev, dtype=dtype),
    )
    f_BF, W_FD = (
        torch.randn(B, F, device=dev, dtype=dtype),
        torch.randn(F, D, device=dev, dtype=dtype),
    )
    g_BD = torch.randn(B, D, device=dev, dtype=dtype)

    def six() -> None:
        x_BD @ W_DF  # encode
        f_BF @ W_FD  # decode
        f_BF @ W_DF.T  # grad wrt acts through the encoder... (shape B x D)
        x_BD.T @ f_BF  # grad W_enc
        g_BD @ W_FD.T  # grad acts through the decoder
        f_BF.T @ g_BD  # grad W_dec

    return interleaved_medians(
        {"dense": six}, settings.steps, settings.warmup, dev, settings.clock
    )["dense"]


def step_overhead(
    architecture: str,
    settings: PerfSettings,
    alignment: str = "tied",
    memory: bool = False,
    case: PerfCase | None = None,
) -> dict[str, Any]:
    """Median step time of `architecture` (aligned) against its base, interleaved;
    with `memory`, each one's peak memory in a step (`step_peak_memory`). The base
    trains with the same step: the sparse TopK step where the aligned SAE uses
    it (`sparse_topk` for `aligned_topk`), so the ratio is alignment's cost."""
    case = case or PerfCase(architecture)
    config = dict(case.config)
    load_before = load_average()
    aligned = build_sae(case.architecture, settings, config, alignment=alignment)
    base_name = same_step_base(aligned.cfg)
    base = build_sae(base_name, settings, config)
    trainers = {
        "aligned": build_trainer(aligned, settings),
        "base": build_trainer(base, settings),
    }
    gen = torch.Generator(device="cpu").manual_seed(0)
    batch = torch.randn(settings.batch, settings.d_in, generator=gen).to(
        settings.device
    )
    medians = interleaved_medians(
        {name: (lambda t=t: t.step(batch)) for name, t in trainers.items()},
        settings.steps,
        settings.warmup,
        settings.device,
        settings.clock,
    )
    result: dict[str, Any] = {
        "measurement": "step_overhead",
        "architecture": case.name,
        "base": base_name,
        "alignment": alignment,
        "config": config,
        "median_step_s": medians,
        "ratio": medians["aligned"] / medians["base"],
        "load_average": {"before": load_before, "after": load_average()},
    }
    if memory:
        peaks = {
            name: step_peak_memory(trainer, batch) for name, trainer in trainers.items()
        }
        result["memory_accounting"] = memory_accounting(settings.device)
        result["peak_memory_bytes"] = {name: p["peak"] for name, p in peaks.items()}
        result["resident_bytes"] = {name: p["resident"] for name, p in peaks.items()}
        result["peak_memory_ratio"] = peaks["aligned"]["peak"] / peaks["base"]["peak"]
    del trainers, aligned, base
    free_memory(settings.device)
    return result


def roofline(
    architecture: str,
    settings: PerfSettings,
    alignment: str = "tied",
    overhead: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Achieved matmul FLOP/s of the aligned step as a fraction of dense matmuls
    (from `overhead`, a `step_overhead` record of the same case, when given)."""
    overhead = overhead or step_overhead(architecture, settings, alignment)
    dense_s = dense_matmul_seconds(settings)
    flops = matmul_flops_per_step(settings)
    step_s = overhead["median_step_s"]
    return {
        "measurement": "roofline",
        "architecture": architecture,
        "alignment": alignment,
        "matmul_flops_per_step": flops,
        "dense_matmul_flops_per_s": flops / dense_s,
        "aligned_flops_per_s": flops / step_s["aligned"],
        "base_flops_per_s": flops / step_s["base"],
        "aligned_fraction_of_dense": dense_s / step_s["aligned"],
        "base_fraction_of_dense": dense_s / step_s["base"],
        "load_average": load_average(),
    }
