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
(`benchmarks.perf.sparse_step`, step time and peak memory), then the sweep's LM time on
the embedded model on the same device. It needs
no hub access and is sized to finish in well under 8 minutes on one GPU.
"""

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import Any

import torch

import saelens_aligned
from benchmarks.perf.settings import (
    CPU_SETTINGS,
    GPU_SETTINGS,
    TINY_SETTINGS,
    PerfCase,
    PerfSettings,
    machine,
    perf_cases,
)
from benchmarks.perf.sweep_lm_time import sweep_lm_time
from benchmarks.perf.timing import roofline, step_overhead
from saelens_aligned.alignment import ALIGNMENT_FORMS
from saelens_aligned.errors import InputError


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
    from benchmarks.perf.sparse_step import sparse_memory, sparse_step

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
