"""LM-forward time of a sweep of k SAEs on one hook against a single-SAE run:
the activation cache is made once per sweep, so its LM time should not grow with
k (`python -m benchmarks perf --sweep-k K`)."""

import time
from pathlib import Path
from typing import Any

from benchmarks.perf.settings import load_average


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

    from benchmarks.sweeps.config import ArchitectureSweep
    from benchmarks.sweeps.executor import LOADED_BACKENDS
    from benchmarks.sweeps.presets import load_sweep_config
    from benchmarks.sweeps.sweep import run_sweep

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
            LOADED_BACKENDS.clear()
            start = time.perf_counter()
            records = run_sweep(config, Path(tmp) / "out", report=False)
            wall = time.perf_counter() - start
            (backend,) = LOADED_BACKENDS.values()
            measured[name] = {
                "runs": len(records),
                "wall_s": wall,
                "lm_activations_s": backend.lm_seconds["activations"],  # type: ignore[attr-defined]
                "lm_eval_s": backend.lm_seconds["eval"],  # type: ignore[attr-defined]
            }
            LOADED_BACKENDS.clear()
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
