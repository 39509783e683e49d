"""Cost of aligned training against its base architecture, measured side by side.

    python -m benchmarks perf                                # CPU setting
    python -m benchmarks perf --device cuda --gpu-setting    # the GPU check
    python -m benchmarks perf --tiny                         # seconds; as in tests

Prints one JSON object per measurement. Every ratio compares two things measured
in the same process on the same batches, interleaved A B A B. Peak memory is
torch's own allocator accounting, never process RSS: `torch.cuda`'s peak counters
on CUDA; on CPU, which keeps no counters, the allocation and free events the
profiler records (`profile_memory=True`), added to the bytes already allocated
when the step starts (weights, optimizer state, batch), so both devices report
the same quantity.

`--gpu-setting` is the GPU check: the GPU setting (bf16 autocast, d_in 2304,
d_sae 16384, batch 4096) for every variant, both forms and the sparse-decode TopK
pair, the sparse TopK step against SAELens' dense and sparse-decode steps
(`benchmarks.sparse_perf`, step time and peak memory), then the sweep's LM time on
the embedded model on the same device. It needs
no hub access and is sized to finish in well under 8 minutes on one GPU.
"""

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import TrainingSAE
from sae_lens.training.sae_trainer import SAETrainer

import saelens_aligned
from saelens_aligned.alignment import ALIGNMENT_FORMS
from saelens_aligned.architectures import same_step_base
from saelens_aligned.errors import InputError
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
# applies; our sparse step is measured by `benchmarks.sparse_perf`.
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
    _free(settings.device)
    return result


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def memory_accounting(device: str) -> str:
    if device.startswith("cuda"):
        return "torch.cuda.max_memory_allocated (caching allocator)"
    return (
        "torch CPU allocator: profiler allocation/free events over the step "
        "(profile_memory=True) + bytes of the tensors alive at its start"
    )


def _tensor_bytes(tensors: Iterator[Any]) -> int:
    """Bytes of the distinct storages behind `tensors` (views counted once)."""
    storages: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _resident_tensors(trainer: SAETrainer[Any, Any]) -> Iterator[Any]:
    sae = trainer.sae
    yield from sae.parameters()
    yield from (p.grad for p in sae.parameters())
    yield from sae.buffers()
    for state in trainer.optimizer.state.values():
        yield from state.values()
    yield from vars(trainer).values()  # the trainer's own tensors (firing counts)


def step_peak_memory(
    trainer: SAETrainer[Any, Any], batch: torch.Tensor
) -> dict[str, int]:
    """Peak bytes allocated during one training step, from torch's allocator
    accounting, counting what was allocated when it started (the weights, their
    optimizer state, the batch) as CUDA's `max_memory_allocated` does:
    {"resident": bytes at the start, "peak": bytes at the peak}."""
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_allocated()
        trainer.step(batch)
        torch.cuda.synchronize()
        return {"resident": resident, "peak": torch.cuda.max_memory_allocated()}
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    resident = _tensor_bytes(_resident_tensors(trainer)) + _tensor_bytes(iter([batch]))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        trainer.step(batch)
    # Only blocks allocated under the profiler report their frees, so the running
    # sum is exactly the step's own allocations still alive at each event.
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"  # type: ignore[union-attr]
    ]
    running = transient = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        transient = max(transient, running)
    return {"resident": resident, "peak": resident + transient}


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


def sweep_lm_time(
    k: int = 8, tiny: bool = False, device: str = "cpu"
) -> dict[str, Any]:
    """LM-forward time of a sweep of `k` SAEs on one hook against a single-SAE
    run of the same settings, each from an empty activation cache, on `device`.

    Settings are the `ci` preset's (tiny SAEs: the SAE work is not what is
    measured), with `k` runs: TopK and aligned TopK, varying k and seed. The
    activation cache is made once per sweep, so its LM time should not grow with
    `k`; the core eval splices each SAE into the live model, so eval LM time does.
    """
    import tempfile
    from dataclasses import replace as dc_replace

    from benchmarks.config import ArchitectureSweep, load_sweep_config
    from benchmarks.sweep import _BACKENDS, run_sweep

    base = dc_replace(load_sweep_config("ci"), device=device)
    if tiny:
        base = dc_replace(base, training_tokens=1024)
    seeds = list(range(max(1, k // 4)))
    values = [8.0, 16.0][: max(1, min(2, k // max(1, 2 * len(seeds))))]
    many = dc_replace(
        base,
        seeds=seeds,
        architectures=[
            ArchitectureSweep("topk", "k", values),
            ArchitectureSweep("aligned_topk", "k", values, alignments=["tied"]),
        ],
        eval=dc_replace(base.eval, meta_structure=False),
    )
    one = dc_replace(
        many,
        seeds=[0],
        architectures=[ArchitectureSweep("aligned_topk", "k", [8.0], ["tied"])],
    )
    measured = {}
    for name, config in (("single", one), ("sweep", many)):
        with tempfile.TemporaryDirectory() as tmp:
            config = dc_replace(config, activations_dir=str(Path(tmp) / "acts"))
            _BACKENDS.clear()
            start = time.perf_counter()
            records = run_sweep(config, Path(tmp) / "out", report=False)
            wall = time.perf_counter() - start
            (backend,) = _BACKENDS.values()
            measured[name] = {
                "runs": len(records),
                "wall_s": wall,
                "lm_activations_s": backend.lm_seconds["activations"],  # type: ignore[attr-defined]
                "lm_eval_s": backend.lm_seconds["eval"],  # type: ignore[attr-defined]
            }
            _BACKENDS.clear()
    single, sweep = measured["single"], measured["sweep"]
    return {
        "measurement": "sweep_lm_time",
        "device": device,
        "k": sweep["runs"],
        "single": single,
        "sweep": sweep,
        "activation_lm_time_ratio": sweep["lm_activations_s"]
        / single["lm_activations_s"],
        "total_lm_time_ratio": (sweep["lm_activations_s"] + sweep["lm_eval_s"])
        / (single["lm_activations_s"] + single["lm_eval_s"]),
        "wall_ratio": sweep["wall_s"] / single["wall_s"],
        "load_average": load_average(),
    }


def run(
    settings: PerfSettings,
    architectures: list[str],
    forms: list[str],
    memory: bool,
    sparse_topk: bool = True,
) -> Iterator[dict[str, Any]]:
    """Each measurement as soon as it is taken (a long run shows progress): every
    case of `perf_cases` in every form, then the roofline of aligned TopK."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    context = {"machine": machine(), "settings": asdict(settings)}
    topk_tied: dict[str, Any] | None = None
    for case in perf_cases(architectures, sparse_topk):
        for form in forms:
            result = step_overhead(case.architecture, settings, form, memory, case)
            if case == PerfCase("aligned_topk") and form == "tied":
                topk_tied = result
            yield {**result, **context}
    yield {**roofline("aligned_topk", settings, overhead=topk_tied), **context}


def gpu_check(
    device: str = "cuda", tiny: bool = False, sweep_k: int = 8
) -> Iterator[dict[str, Any]]:
    """The GPU setting for every variant, both forms and the sparse-decode pair,
    with peak memory, then the sweep's LM time on the embedded model, all on
    `device`. `tiny` keeps the setting (bf16 autocast) at tiny shapes, so the test
    suite runs this path on CPU."""
    settings = replace(
        replace(TINY_SETTINGS, autocast=True) if tiny else GPU_SETTINGS, device=device
    )
    architectures = saelens_aligned.aligned_architectures()
    yield from run(settings, architectures, list(ALIGNMENT_FORMS), memory=True)
    # The sparse TopK step against SAELens' own steps, in the same setting.
    from benchmarks.sparse_perf import sparse_memory, sparse_step

    for family in ("topk", "batchtopk"):
        yield sparse_step(family, settings)
    yield sparse_memory("topk", settings)
    yield {**sweep_lm_time(sweep_k, tiny=tiny, device=device), "machine": machine()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, a few steps")
    parser.add_argument(
        "--gpu-setting",
        action="store_true",
        help="the GPU check: bf16 autocast, d_in 2304, d_sae 16384, batch 4096, "
        "every variant and form with peak memory, then the sweep's LM time (k=8) "
        "on the embedded model, all on --device; no hub access",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per architecture"
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall (default) or cpu: process CPU time, for a shared machine "
        "(use with --threads 1)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--architectures", nargs="+", default=None)
    parser.add_argument("--alignment", nargs="+", default=list(ALIGNMENT_FORMS))
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the peak-memory measurements"
    )
    parser.add_argument(
        "--no-sparse",
        action="store_true",
        help="skip the sparse-decode TopK pair (use_sparse_activations)",
    )
    parser.add_argument(
        "--sweep-only",
        action="store_true",
        help="with --sweep-k: skip the step, memory and roofline measurements",
    )
    parser.add_argument(
        "--sweep-k",
        type=int,
        default=0,
        help="also measure the LM time of a K-SAE sweep vs one run (K=8 in #8)",
    )


class PerfInputError(InputError):
    """A perf option is unusable; the message names it and the fix."""


def check_args(args: argparse.Namespace) -> None:
    """The options' checks, before anything is built or timed."""
    aligned = saelens_aligned.aligned_architectures()
    for name in args.architectures or []:
        if name not in aligned:
            raise PerfInputError(
                f"--architectures {name!r}: perf compares an aligned architecture "
                f"with its base; choose from {sorted(aligned)}."
            )
    for form in args.alignment:
        if form not in ALIGNMENT_FORMS:
            raise PerfInputError(
                f"--alignment {form!r}: choose from {list(ALIGNMENT_FORMS)}."
            )
    for flag, value in (("--steps", args.steps), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise PerfInputError(f"{flag} {value}: must be at least 1.")
    if args.sweep_k < 0:
        raise PerfInputError(f"--sweep-k {args.sweep_k}: must be >= 0 (0: off).")
    if args.sweep_only and not args.sweep_k:
        raise PerfInputError("--sweep-only needs --sweep-k K (the sweep to time).")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PerfInputError(
            f"--device {args.device!r}: no GPU is visible; pass --device cpu."
        )


def main(args: argparse.Namespace) -> None:
    check_args(args)
    if args.gpu_setting:
        start = time.perf_counter()
        for result in gpu_check(args.device, args.tiny, args.sweep_k or 8):
            result["elapsed_s"] = time.perf_counter() - start
            print(json.dumps(result), flush=True)
        return
    if args.tiny:
        settings = TINY_SETTINGS
    elif args.device.startswith("cuda"):
        settings = GPU_SETTINGS
    else:
        settings = CPU_SETTINGS
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    settings = replace(settings, clock=args.clock, threads=args.threads)
    architectures = args.architectures or saelens_aligned.aligned_architectures()
    if not (args.sweep_only and args.sweep_k):
        for result in run(
            settings,
            architectures,
            args.alignment,
            memory=not args.no_memory,
            sparse_topk=not args.no_sparse,
        ):
            print(json.dumps(result), flush=True)
    if args.sweep_k:
        result = sweep_lm_time(args.sweep_k, tiny=args.tiny, device=args.device)
        print(json.dumps({**result, "machine": machine()}), flush=True)
