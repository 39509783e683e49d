"""Speed and memory of the sparse TopK step against SAELens' own steps.

    python -m benchmarks sparse-perf --out benchmarks/results/perf/sparse_cpu.jsonl
    python -m benchmarks sparse-perf --render benchmarks/results/perf/sparse_cpu.jsonl
    python -m benchmarks sparse-perf --tiny            # seconds; as in tests

Every arm is SAELens' own `SAETrainer.step` (forward, backward, gradient clipping,
Adam, and for aligned arms the re-alignment) on the same batch, interleaved A B C
in one process; the medians and their ratios come from the same run. The clock
(`--clock cpu`, `--threads 1`) is the process' CPU time, so other jobs on the
machine do not distort a ratio. Peak memory is torch's allocator accounting
(`perf_memory.step_peak_memory`). The trainer is fresh, so no latent is dead yet and
AuxK is off in the timed steps (its cost is one extra sparse decode over the dead
latents; tests/test_sparse_topk.py checks it exact).

Measurements, one JSON object each (`--render` turns them into the tables of
docs/performance.md):
- `sparse_step`: per family (TopK, BatchTopK, Matryoshka) and d_sae, the median
  step of SAELens' dense step, SAELens' `use_sparse_activations` decode (TopK
  only: BatchTopK ignores the flag), our sparse stock step and aligned on it.
- `sparse_memory`: peak memory of one step, same arms.
- `sparse_scaling`: the sparse step against d_sae, with the share of each step
  spent in the encoder GEMM (the dense product no TopK trainer avoids).
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import saelens_aligned
from benchmarks.perf.memory import free_memory, loop_peak_memory, step_peak_memory
from benchmarks.perf.settings import (
    SPARSE_TOPK,
    PerfSettings,
    build_sae,
    build_trainer,
    load_average,
    machine,
)
from benchmarks.perf.sparse_tables import read_records, render
from benchmarks.perf.sparse_targets import targets_table


@dataclass(frozen=True)
class Arm:
    """One way of training an SAE of a family.

    Args:
        label: Name in records and tables.
        architecture: A registered training architecture.
        config: Config fields on top of the family's defaults.
        autocast: Train under SAELens' `autocast=True` (bf16).
    """

    label: str
    architecture: str
    config: dict[str, Any] = field(default_factory=dict)
    autocast: bool = False


# Per family: SAELens' dense step first (the reference of every ratio), then
# SAELens' sparse decode where the family has one, our stock sparse step, aligned.
FAMILIES: dict[str, tuple[Arm, ...]] = {
    "topk": (
        Arm("saelens_dense", "topk"),
        Arm("saelens_sparse_activations", "topk", SPARSE_TOPK),
        Arm("sparse_stock", "sparse_topk"),
        Arm("aligned_tied", "aligned_topk", {"alignment": "tied"}),
        Arm("aligned_projected", "aligned_topk", {"alignment": "projected"}),
        Arm("sparse_stock_autocast", "sparse_topk", autocast=True),
        Arm("aligned_tied_autocast", "aligned_topk", {"alignment": "tied"}, True),
    ),
    "batchtopk": (
        Arm("saelens_dense", "batchtopk"),
        Arm("sparse_stock", "sparse_batchtopk"),
        Arm("aligned_tied", "aligned_batchtopk", {"alignment": "tied"}),
        Arm("aligned_projected", "aligned_batchtopk", {"alignment": "projected"}),
    ),
    "matryoshka_batchtopk": (
        Arm("saelens_dense", "matryoshka_batchtopk"),
        Arm("sparse_stock", "sparse_matryoshka_batchtopk"),
        Arm("aligned_tied", "aligned_matryoshka_batchtopk", {"alignment": "tied"}),
    ),
}
SCALING_ARMS = (
    Arm("sparse_stock", "sparse_topk"),
    Arm("aligned_tied", "aligned_topk", {"alignment": "tied"}),
)


@dataclass(frozen=True)
class SparsePerfPlan:
    """What one `sparse-perf` run measures.

    Args:
        settings: Shapes, steps and clock (d_sae is set per measurement).
        step_d_saes: d_sae values of the `sparse_step` comparisons.
        families: Families compared at every `step_d_saes` value.
        small_families: Families compared at the smallest value only (their dense
            step is the slowest to time).
        memory_d_saes: d_sae values of the peak-memory comparison (TopK arms).
        scaling_d_saes: d_sae values of `sparse_scaling`.
        auxk_d_sae: d_sae of the AuxK crossover (`sparse_auxk`).
        auxk_dead: dead-latent counts of the AuxK crossover.
    """

    settings: PerfSettings
    step_d_saes: tuple[int, ...] = (4608, 18432)
    families: tuple[str, ...] = ("topk", "batchtopk")
    small_families: tuple[str, ...] = ("matryoshka_batchtopk",)
    memory_d_saes: tuple[int, ...] = (4608, 18432)
    scaling_d_saes: tuple[int, ...] = (4608, 9216, 18432, 36864)
    auxk_d_sae: int = 18432
    auxk_dead: tuple[int, ...] = (144, 288, 576, 1152, 2304, 4608)


CPU_PLAN = SparsePerfPlan(
    PerfSettings(steps=20, warmup=2, clock="cpu", threads=1),
)
TINY_PLAN = SparsePerfPlan(
    PerfSettings(d_in=32, batch=64, k=8, steps=2, warmup=1),
    step_d_saes=(128, 256),
    memory_d_saes=(256,),
    scaling_d_saes=(128, 256),
    auxk_d_sae=256,
    auxk_dead=(8, 64),
)


def _trainers(arms: tuple[Arm, ...], settings: PerfSettings) -> dict[str, Any]:
    return {
        arm.label: build_trainer(
            build_sae(arm.architecture, settings, **arm.config),
            replace(settings, autocast=arm.autocast),
        )
        for arm in arms
    }


def _batch(settings: PerfSettings) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(0)
    return torch.randn(settings.batch, settings.d_in, generator=gen).to(settings.device)


def _interleaved_samples(
    fns: dict[str, Callable[[], Any]], settings: PerfSettings
) -> dict[str, list[float]]:
    """Seconds of each call, the functions called in turn A B C ... per repeat."""
    now = {"wall": time.perf_counter, "cpu": time.process_time}[settings.clock]
    for _ in range(settings.warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(settings.steps):
        for name, fn in fns.items():
            if settings.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = now()
            fn()
            if settings.device.startswith("cuda"):
                torch.cuda.synchronize()
            samples[name].append(now() - start)
    return samples


def _context(settings: PerfSettings) -> dict[str, Any]:
    return {"machine": machine(), "settings": asdict(settings)}


def sparse_step(family: str, settings: PerfSettings) -> dict[str, Any]:
    """Median step of every arm of `family`, interleaved, and each arm's ratio to
    SAELens' dense step and to our stock sparse step."""
    arms = FAMILIES[family]
    trainers = _trainers(arms, settings)
    batch = _batch(settings)
    before = load_average()
    samples = _interleaved_samples(
        {label: (lambda t=t: t.step(batch)) for label, t in trainers.items()}, settings
    )
    medians = {label: statistics.median(s) for label, s in samples.items()}
    return {
        "measurement": "sparse_step",
        "family": family,
        "d_sae": settings.d_sae,
        "arms": {
            arm.label: {
                "architecture": arm.architecture,
                **arm.config,
                **({"autocast": True} if arm.autocast else {}),
            }
            for arm in arms
        },
        "median_step_s": medians,
        "ratio_to_saelens_dense": {
            label: m / medians["saelens_dense"] for label, m in medians.items()
        },
        "ratio_to_sparse_stock": {
            label: m / medians["sparse_stock"] for label, m in medians.items()
        },
        "load_average": {"before": before, "after": load_average()},
        **_context(settings),
    }


def sparse_memory(family: str, settings: PerfSettings) -> dict[str, Any]:
    """Peak bytes of one step (after a warm-up step, so Adam's state exists) of
    every arm of `family`, each measured alone."""
    peaks: dict[str, int] = {}
    batch = _batch(settings)
    for arm in FAMILIES[family]:
        (trainer,) = _trainers((arm,), settings).values()
        trainer.step(batch)
        peaks[arm.label] = step_peak_memory(trainer, batch)["peak"]
        del trainer
    return {
        "measurement": "sparse_memory",
        "family": family,
        "d_sae": settings.d_sae,
        "peak_memory_bytes": peaks,
        "ratio_to_saelens_dense": {
            label: p / peaks["saelens_dense"] for label, p in peaks.items()
        },
        **_context(settings),
    }


LOOP_MEMORY_ARMS = (
    Arm("saelens_dense", "topk"),
    Arm("sparse_stock", "sparse_topk"),
    Arm("aligned_tied", "aligned_topk", {"alignment": "tied"}),
)


def sparse_loop_memory(settings: PerfSettings, steps: int = 3) -> dict[str, Any]:
    """Peak bytes over `steps` steps of SAELens' training loop
    (`perf_memory.loop_peak_memory`: each step's output alive into the next, as
    `SAETrainer.fit` keeps it) of the TopK arms, each measured alone."""
    peaks: dict[str, int] = {}
    batch = _batch(settings)
    for arm in LOOP_MEMORY_ARMS:
        (trainer,) = _trainers((arm,), settings).values()
        trainer.step(batch)
        peaks[arm.label] = loop_peak_memory(trainer, batch, steps)["peak"]
        del trainer
        free_memory(settings.device)
    return {
        "measurement": "sparse_loop_memory",
        "family": "topk",
        "d_sae": settings.d_sae,
        "steps": steps,
        "peak_memory_bytes": peaks,
        **_context(settings),
    }


def sparse_scaling(settings: PerfSettings) -> dict[str, Any]:
    """Median sparse step of `SCALING_ARMS` and of the encoder GEMM alone (the
    same [batch, d_in] x [d_in, d_sae] product), interleaved."""
    trainers = _trainers(SCALING_ARMS, settings)
    batch = _batch(settings)
    W_enc_DF = next(iter(trainers.values())).sae.W_enc.detach()
    fns: dict[str, Callable[[], Any]] = {
        label: (lambda t=t: t.step(batch)) for label, t in trainers.items()
    }
    fns["encoder_gemm"] = lambda: batch @ W_enc_DF
    # The same product into one reused output, as the sparse step now runs it
    # (a fresh [B, F] output also pays its page faults).
    out_BF = torch.empty(settings.batch, settings.d_sae, device=settings.device)
    fns["encoder_gemm_reused"] = lambda: torch.mm(batch, W_enc_DF, out=out_BF)
    medians = {
        label: statistics.median(s)
        for label, s in _interleaved_samples(fns, settings).items()
    }
    return {
        "measurement": "sparse_scaling",
        "d_sae": settings.d_sae,
        "median_step_s": medians,
        "encoder_gemm_share": {
            arm.label: medians["encoder_gemm"] / medians[arm.label]
            for arm in SCALING_ARMS
        },
        "encoder_gemm_reused_share": {
            arm.label: medians["encoder_gemm_reused"] / medians[arm.label]
            for arm in SCALING_ARMS
        },
        **_context(settings),
    }


def run(plan: SparsePerfPlan) -> Iterator[dict[str, Any]]:
    """Each measurement as soon as it is taken."""
    if plan.settings.threads is not None:
        torch.set_num_threads(plan.settings.threads)
    for d_sae in plan.step_d_saes:
        settings = replace(plan.settings, d_sae=d_sae)
        families = plan.families
        if d_sae == min(plan.step_d_saes):
            families = families + plan.small_families
        for family in families:
            yield sparse_step(family, settings)
    for d_sae in plan.memory_d_saes:
        yield sparse_memory("topk", replace(plan.settings, d_sae=d_sae))
        yield sparse_loop_memory(replace(plan.settings, d_sae=d_sae))
    for d_sae in plan.scaling_d_saes:
        yield sparse_scaling(replace(plan.settings, d_sae=d_sae))
    from benchmarks.perf.sparse_auxk import auxk_crossover  # needs today's sparse_ops

    yield auxk_crossover(replace(plan.settings, d_sae=plan.auxk_d_sae), plan.auxk_dead)


def run_only(plan: SparsePerfPlan, keys: list[str]) -> Iterator[dict[str, Any]]:
    """Only the measurements named `sparse_step:FAMILY:D_SAE`,
    `sparse_loop_memory:topk:D_SAE` or `auxk_crossover:topk:D_SAE`."""
    if plan.settings.threads is not None:
        torch.set_num_threads(plan.settings.threads)
    for key in keys:
        measurement, family, d_sae = key.split(":")
        settings = replace(plan.settings, d_sae=int(d_sae))
        if measurement == "sparse_step" and family in FAMILIES:
            yield sparse_step(family, settings)
        elif measurement == "sparse_loop_memory" and family == "topk":
            yield sparse_loop_memory(settings)
        elif measurement == "auxk_crossover" and family == "topk":
            from benchmarks.perf.sparse_auxk import auxk_crossover

            yield auxk_crossover(settings, plan.auxk_dead)
        else:
            raise SystemExit(
                f"--only {key!r}: use sparse_step:FAMILY:D_SAE with FAMILY one of "
                f"{sorted(FAMILIES)}, sparse_loop_memory:topk:D_SAE or "
                "auxk_crossover:topk:D_SAE."
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="append records to this JSONL file")
    parser.add_argument(
        "--render", type=Path, help="print the tables of a records file and exit"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, seconds")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per arm")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="MEASUREMENT:FAMILY:D_SAE",
        help="rerun only these step comparisons, e.g. sparse_step:topk:18432",
    )
    parser.add_argument(
        "--render-targets",
        type=Path,
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="print the targets table of two records files and exit",
    )


def main(args: argparse.Namespace) -> None:
    assert saelens_aligned  # registers the architectures
    if args.render:
        print(render(read_records(args.render)), end="")
        return
    if args.render_targets:
        print(targets_table(*(read_records(p) for p in args.render_targets)))
        return
    plan = TINY_PLAN if args.tiny else CPU_PLAN
    if args.steps is not None:
        plan = replace(plan, settings=replace(plan.settings, steps=args.steps))
    records = run(plan) if args.only is None else run_only(plan, args.only)
    for record in records:
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")
