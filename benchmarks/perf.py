"""Cost of aligned training against its base architecture, measured side by side.

    python -m benchmarks perf                  # CPU setting of the perf issue
    python -m benchmarks perf --device cuda    # GPU setting (bf16 autocast)
    python -m benchmarks perf --tiny           # seconds; what the test suite runs

Prints one JSON object per measurement. Every ratio compares two things measured
in the same process on the same batches, interleaved A B A B.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import TrainingSAE
from sae_lens.training.sae_trainer import SAETrainer

import saelens_aligned
from saelens_aligned.architectures import base_architecture
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
    """

    d_in: int = 576
    d_sae: int = 4608
    batch: int = 4096
    k: int = 32
    steps: int = 50
    warmup: int = 5
    device: str = "cpu"
    autocast: bool = False


CPU_SETTINGS = PerfSettings()
GPU_SETTINGS = PerfSettings(d_in=2304, d_sae=16384, device="cuda", autocast=True)
TINY_SETTINGS = PerfSettings(d_in=32, d_sae=128, batch=64, k=8, steps=3, warmup=1)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def build_sae(
    architecture: str, settings: PerfSettings, **kwargs: Any
) -> TrainingSAE[Any]:
    sae_class, _ = get_sae_training_class(architecture)
    # A p-annealing schedule longer than any perf run: p stays at p_start.
    cfg = build_sae_config(
        architecture,
        settings.d_in,
        settings.d_sae,
        training_steps=10**6,
        shared={"k": settings.k},
        device=settings.device,
        **kwargs,
    )
    return sae_class(cfg)


def plain_trainer_config(
    total_training_samples: int,
    batch: int,
    device: str = "cpu",
    lr: float = 3e-4,
    **overrides: Any,
) -> SAETrainerConfig:
    """An in-process SAETrainer config: constant lr, no checkpoints, no W&B."""
    fields: dict[str, Any] = {
        "n_checkpoints": 0,
        "checkpoint_path": None,
        "save_final_checkpoint": False,
        "total_training_samples": total_training_samples,
        "device": device,
        "autocast": False,
        "lr": lr,
        "lr_end": lr,
        "lr_scheduler_name": "constant",
        "lr_warm_up_steps": 0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "lr_decay_steps": 0,
        "n_restart_cycles": 1,
        "train_batch_size_samples": batch,
        "dead_feature_window": 1000,
        "feature_sampling_window": 2000,
        "logger": LoggingConfig(log_to_wandb=False),
    }
    return SAETrainerConfig(**{**fields, **overrides})


def build_trainer(
    sae: TrainingSAE[Any], settings: PerfSettings
) -> SAETrainer[Any, Any]:
    cfg = plain_trainer_config(
        10**9, settings.batch, settings.device, autocast=settings.autocast
    )
    return SAETrainer(cfg=cfg, sae=sae, data_provider=iter(()))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_medians(
    steps: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: str
) -> dict[str, float]:
    """Median seconds per call of each function, called in turn A B A B ..."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
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

    return interleaved_medians({"dense": six}, settings.steps, settings.warmup, dev)[
        "dense"
    ]


def step_overhead(
    architecture: str, settings: PerfSettings, alignment: str = "tied"
) -> dict[str, Any]:
    """Median step time of `architecture` (aligned) against its base, interleaved."""
    aligned = build_sae(architecture, settings, alignment=alignment)
    base_name = base_architecture(type(aligned.cfg))
    base = build_sae(base_name, settings)
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
    )
    result: dict[str, Any] = {
        "measurement": "step_overhead",
        "architecture": architecture,
        "base": base_name,
        "alignment": alignment,
        "median_step_s": medians,
        "ratio": medians["aligned"] / medians["base"],
    }
    if settings.device.startswith("cuda"):
        result["peak_memory_bytes"] = {
            name: _cuda_peak_memory(trainers[name], batch) for name in trainers
        }
        peaks = result["peak_memory_bytes"]
        result["peak_memory_ratio"] = peaks["aligned"] / peaks["base"]
    return result


def _cuda_peak_memory(trainer: SAETrainer[Any, Any], batch: torch.Tensor) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    trainer.step(batch)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def cpu_peak_memory(
    architecture: str, settings: PerfSettings, alignment: str | None
) -> int:
    """Peak RSS growth of a few steps of one SAE over the RSS just before them, in
    a fresh process (on CPU the allocator keeps no per-tensor statistics, so
    processes are the clean split). The kernel's high-water mark is reset first
    (Linux `/proc/self/clear_refs`): importing torch and SAELens peaks higher than
    a training step and would otherwise hide it."""
    code = (
        "import json, sys, torch\n"
        "import saelens_aligned\n"
        "from benchmarks.perf import PerfSettings, build_sae, build_trainer\n"
        "def kib(field):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(field): return int(line.split()[1])\n"
        "s = PerfSettings(**json.loads(sys.argv[1]))\n"
        "kw = json.loads(sys.argv[3])\n"
        "sae = build_sae(sys.argv[2], s, **kw)\n"
        "t = build_trainer(sae, s)\n"
        "batch = torch.randn(s.batch, s.d_in)\n"
        "t.step(batch)  # optimizer state and allocator pools exist from here\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = kib('VmRSS:')\n"
        "for _ in range(3): t.step(batch)\n"
        "print((kib('VmHWM:') - before) * 1024)\n"
    )
    kwargs = {} if alignment is None else {"alignment": alignment}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            json.dumps(asdict(settings)),
            architecture,
            json.dumps(kwargs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def memory_overhead(
    architecture: str, settings: PerfSettings, alignment: str = "tied"
) -> dict[str, Any]:
    base_name = base_architecture(type(build_sae(architecture, TINY_SETTINGS).cfg))
    aligned_bytes = cpu_peak_memory(architecture, settings, alignment)
    base_bytes = cpu_peak_memory(base_name, settings, None)
    return {
        "measurement": "peak_memory",
        "architecture": architecture,
        "base": base_name,
        "alignment": alignment,
        "peak_rss_growth_bytes": {"aligned": aligned_bytes, "base": base_bytes},
        "ratio": aligned_bytes / max(base_bytes, 1),
    }


def roofline(
    architecture: str, settings: PerfSettings, alignment: str = "tied"
) -> dict[str, Any]:
    """Achieved matmul FLOP/s of the aligned step as a fraction of dense matmuls."""
    overhead = step_overhead(architecture, settings, alignment)
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
    }


def sweep_lm_time(k: int = 8, tiny: bool = False) -> dict[str, Any]:
    """LM-forward time of a sweep of `k` SAEs on one hook against a single-SAE
    run of the same settings, each from an empty activation cache.

    Settings are the `ci` preset's (tiny SAEs: the SAE work is not what is
    measured), with `k` runs: TopK and aligned TopK, varying k and seed. The
    activation cache is made once per sweep, so its LM time should not grow with
    `k`; the core eval splices each SAE into the live model, so eval LM time does.
    """
    import tempfile
    from dataclasses import replace as dc_replace

    from benchmarks.config import ArchitectureSweep, load_sweep_config
    from benchmarks.sweep import _BACKENDS, run_sweep

    base = load_sweep_config("ci")
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
        "k": sweep["runs"],
        "single": single,
        "sweep": sweep,
        "activation_lm_time_ratio": sweep["lm_activations_s"]
        / single["lm_activations_s"],
        "total_lm_time_ratio": (sweep["lm_activations_s"] + sweep["lm_eval_s"])
        / (single["lm_activations_s"] + single["lm_eval_s"]),
        "wall_ratio": sweep["wall_s"] / single["wall_s"],
    }


def run(
    settings: PerfSettings, architectures: list[str], forms: list[str], memory: bool
) -> Iterator[dict[str, Any]]:
    """Each measurement as soon as it is taken (a long run shows progress)."""
    context = {"machine": machine(), "settings": asdict(settings)}
    for architecture in architectures:
        for form in forms:
            yield {**step_overhead(architecture, settings, form), **context}
            if memory and not settings.device.startswith("cuda"):
                yield {**memory_overhead(architecture, settings, form), **context}
    yield {**roofline("aligned_topk", settings), **context}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes, a few steps")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per architecture"
    )
    parser.add_argument("--architectures", nargs="+", default=None)
    parser.add_argument("--alignment", nargs="+", default=["tied", "projected"])
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the RSS subprocesses"
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


def main(args: argparse.Namespace) -> None:
    assert saelens_aligned  # registers the aligned architectures
    if args.tiny:
        settings = TINY_SETTINGS
    elif args.device.startswith("cuda"):
        settings = GPU_SETTINGS
    else:
        settings = CPU_SETTINGS
    if args.steps is not None:
        settings = PerfSettings(**{**asdict(settings), "steps": args.steps})
    architectures = args.architectures or saelens_aligned.aligned_architectures()
    if not (args.sweep_only and args.sweep_k):
        for result in run(
            settings, architectures, args.alignment, memory=not args.no_memory
        ):
            print(json.dumps(result), flush=True)
    if args.sweep_k:
        result = sweep_lm_time(args.sweep_k, tiny=args.tiny)
        print(json.dumps({**result, "machine": machine()}), flush=True)
