"""Measured seconds behind the dictionary-size study's wall-time estimate
(issue #34; `benchmarks.perf.scale_estimate` turns them into hours per step).

    nice -n 10 python -m benchmarks.perf.scale_timing \\
        --out benchmarks/results/perf/scale_timing.json

Two measurements, each at every dictionary size of the scale presets:
- seconds per training step of every arm of `scale_8x` (the sparse step, the
  preset's batch, k = 32), SAELens' own trainer step (`SAETrainer._train_step`:
  forward, AuxK, backward, clipping, Adam) on activations with the preset's
  off-centre mean, with a fixed share of latents held dead so AuxK does the work
  it does in a run that has dead latents (`DEAD_FRACTION`);
- seconds per evaluation of one SAE with the preset's settings through the
  sweep's own backend (`LMBackend.evaluate`): the core eval (CE/KL, explained
  variance, L0, dead fraction over the long window), the learning-rate grid's
  eval, and the final eval with sae-probes, SAEBench sparse probing and
  absorption. The first final eval also builds the sweep's probing activations
  and absorption probes (once per sweep); the second is the per-SAE cost.

Every measurement carries the machine and its load average: on a shared machine
the numbers are only as good as the load they ran under.
"""

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.perf.settings import load_average, machine
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.runs import RunSpec, expand_runs, initial_sae
from saelens_aligned.pipeline.training import in_process_trainer_config

SIZES = (1152, 4608, 18432)
"""The study's dictionary sizes (2x, 8x and 32x of d_in 576)."""
TIMED_K = 32
DEAD_FRACTION = 0.25
"""Latents held dead during the timed steps: the preview of issue #34 left a
third of `tied`'s latents dead at 32x and a few percent of stock TopK's at 2x;
a quarter makes AuxK cost what it costs in such a run."""
D_IN = 576


def timed_runs(config: SweepConfig, d_sae: int) -> list[RunSpec]:
    """One run per arm of `config` at `d_sae` and k = TIMED_K, seed 0."""
    sized = replace(config, d_sae=[d_sae], seeds=[0])
    return [r for r in expand_runs(sized) if r.sparsity_value == TIMED_K]


def step_seconds(
    config: SweepConfig, d_sae: int, steps: int, warmup: int
) -> dict[str, float]:
    """Arm label -> median wall seconds of one training step. The arms step in
    turn (A B C ... A B C), each on the same batch, so a change of the shared
    machine's load falls on every arm alike."""
    from sae_lens.training.sae_trainer import SAETrainer

    gen = torch.Generator().manual_seed(0)
    batch = config.train_batch_size_tokens
    # Off-centre activations, as the residual stream is: sigma 1 per dimension
    # and ||mu|| = 0.6 ||sigma||.
    mean_D = torch.randn(D_IN, generator=gen, dtype=torch.float64)
    mean_D *= 0.6 * math.sqrt(D_IN) / mean_D.norm()
    trainers = {}
    for run in timed_runs(config, d_sae):
        sae = initial_sae(
            run,
            D_IN,
            config.training_steps,
            config.sparse_stock_step,
            activation_mean=mean_D,
        )
        trainer_cfg = in_process_trainer_config(10**9, batch, lr=run.lr)
        trainers[run.label] = SAETrainer(
            cfg=trainer_cfg, sae=sae, data_provider=iter(())
        )
    dead_F = torch.rand(d_sae, generator=gen) < DEAD_FRACTION
    times: dict[str, list[float]] = {label: [] for label in trainers}
    for i in range(warmup + steps):
        x_BD = mean_D.float() + torch.randn(batch, D_IN, generator=gen)
        for label, trainer in trainers.items():
            trainer.n_forward_passes_since_fired[dead_F] = (
                trainer.cfg.dead_feature_window + 1
            )
            start = time.perf_counter()
            trainer._train_step(sae=trainer.sae, sae_in=x_BD)
            if i >= warmup:
                times[label].append(time.perf_counter() - start)
    out = {label: statistics.median(t) for label, t in times.items()}
    for label, seconds in out.items():
        print(f"d_sae {d_sae} {label}: {seconds:.3f} s/step", flush=True)
    return out


def eval_seconds(config: SweepConfig, d_sae: int, work: Path) -> dict[str, float]:
    """Wall seconds of one SAE's evaluations at `d_sae` (an untrained stock
    TopK SAE at k = 32: the work does not depend on the weights)."""
    from benchmarks.sweeps.backends.lm import LMBackend
    from saelens_aligned.pipeline.activations import ensure_activation_cache

    backend = LMBackend(replace(config, d_sae=[d_sae]), work)
    run = timed_runs(config, d_sae)[0]
    # The same SAE as a run at another k: the backend skips absorption there.
    other_k = replace(run, sparsity_value=float(TIMED_K // 2))
    sae_dir = work / f"sae-{d_sae}"
    sae = initial_sae(run, backend.d_in, config.training_steps)
    # What SAELens' runner writes into a trained SAE's metadata.
    sae.cfg.metadata.hook_name = config.hook
    sae.cfg.metadata.model_name = backend.resolved.model_name
    sae.cfg.metadata.context_size = config.context_size
    sae.save_inference_model(str(sae_dir))
    # Evaluating needs the held-out cache only (the long dead window); the
    # training cache, made once per machine for every scale preset, is timed
    # apart (TRAINING_CACHE_SECONDS).
    start = time.perf_counter()
    backend._heldout_dir = ensure_activation_cache(
        backend.resolved,
        backend.model,
        backend.d_in,
        config.eval.dead_window_tokens,
        config.activation_seed,
        config.model_batch_size,
        split="eval",
    )
    backend._cache_dir = work / "no-training-cache"
    out = {"held-out cache": time.perf_counter() - start}
    for name, timed, settings in (
        ("grid", run, config.grid_eval()),
        ("core", run, config.checkpoint_eval()),
        ("final (first of the sweep)", run, config.eval),
        ("final", run, config.eval),
        ("final without absorption", other_k, config.eval),
    ):
        start = time.perf_counter()
        backend.evaluate(timed, sae_dir, settings)
        out[name] = time.perf_counter() - start
        print(f"d_sae {d_sae} eval {name}: {out[name]:.0f} s", flush=True)
    return out


def cpu_model() -> str:
    """The CPU's name (`model name` of /proc/cpuinfo), or the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return machine()["processor"]


def measure(
    preset: str, sizes: tuple[int, ...], steps: int, warmup: int, evals: bool
) -> dict[str, Any]:
    config = load_sweep_config(preset)
    record: dict[str, Any] = {
        "preset": preset,
        "machine": {**machine(), "cpu_model": cpu_model()},
        "batch_tokens": config.train_batch_size_tokens,
        "k": TIMED_K,
        "dead_fraction": DEAD_FRACTION,
        "step_seconds": {},
        "eval_seconds": {},
        "load_average": {},
    }
    if steps:
        record["steps_timed"] = steps
        before = load_average()
        for d_sae in sizes:
            seconds = step_seconds(config, d_sae, steps, warmup)
            record["step_seconds"][str(d_sae)] = seconds
        record["load_average"]["steps"] = {"before": before, "after": load_average()}
    if evals:
        before = load_average()
        with tempfile.TemporaryDirectory() as tmp:
            for d_sae in sizes:
                record["eval_seconds"][str(d_sae)] = eval_seconds(
                    config, d_sae, Path(tmp)
                )
        record["load_average"]["evals"] = {"before": before, "after": load_average()}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="scale_8x")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--steps", type=int, default=20, help="timed steps per arm (0: no step timing)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-evals", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    record = measure(
        args.preset, tuple(args.sizes), args.steps, args.warmup, not args.no_evals
    )
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    # Steps and evals can be measured by separate calls into one file.
    for key in ("step_seconds", "eval_seconds", "load_average"):
        record[key] = {**previous.get(key, {}), **record[key]}
    record = {**previous, **record}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
