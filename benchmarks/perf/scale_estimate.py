"""Wall time of each step of the dictionary-size study (issue #34), estimated
before it starts from measured seconds per training step and per evaluation
(`benchmarks.perf.scale_timing`, committed as
benchmarks/results/perf/scale_timing.json).

    python -m benchmarks scale-estimate          # print the table
    python -m benchmarks results                 # also writes it into
                                                 # benchmarks/results/README.md

A step's time is the sum, for one worker, of
- the learning-rate grid: every arm at each rate of `lr_grid`, first seed, middle
  k, trained and scored with the grid's eval (an arm whose best rate is at the
  grid's edge adds a run per extension: not counted);
- the main runs: every arm, k and seed, trained (less the grid run at the chosen
  rate, which is reused), each checkpoint of `eval_at_steps` scored with the core
  eval and the final SAE with the whole eval (absorption only at its k);
- the once-per-sweep set-up of the probing activations and absorption probes;
- the activation caches (training, and the held-out dead-latent window), each
  paid by the first step that reads it (steps on the same text, hook and size
  share one), at the measured build rate.
Stability and the report take minutes and are left out. Pure: numbers in, table
out.
"""

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.runs import arm_labels, middle_value

STEPS = (
    ("1", "scale_8x"),
    ("2×", "scale_2x"),
    ("2", "scale_32x"),
    ("3", "scale_long"),
)
"""(the issue's step, its preset), in the order they run; `2×` is the 2× point
at the study's settings, which the figure against dictionary size needs."""
TIMING_PATH = (
    Path(__file__).resolve().parents[1] / "results" / "perf" / "scale_timing.json"
)


@dataclass(frozen=True)
class StepEstimate:
    """One step's SAEs and hours on one worker.

    Args:
        step: The issue's step number.
        preset: Its preset.
        d_sae: Dictionary size.
        saes: Main SAEs (arms x k x seeds), each with a record.
        grid_runs: Learning-rate grid runs (arms x rates).
        training_hours: Training, grid and main runs.
        eval_hours: Every evaluation, checkpoints included, and the set-up.
        cache_hours: Building its activation caches (0 for those an earlier
            step built, or when no build was measured).
        evals_from: The size whose evaluation seconds were used: `d_sae`, or
            the nearest size measured when this one was not.
    """

    step: str
    preset: str
    d_sae: int
    saes: int
    grid_runs: int
    training_hours: float
    eval_hours: float
    evals_from: int = 0
    cache_hours: float = 0.0

    @property
    def total_hours(self) -> float:
        return self.training_hours + self.eval_hours + self.cache_hours


def estimate_step(
    step: str, preset: str, config: SweepConfig, timing: dict[str, Any]
) -> StepEstimate:
    """`config`'s hours from `timing` (scale_timing.json's layout)."""
    (d_sae,) = config.d_sae
    per_step = timing["step_seconds"][str(d_sae)]
    evals_from = eval_size(timing, d_sae)
    evals = timing["eval_seconds"][str(evals_from)]
    labels = [label for labels in arm_labels(config) for label in labels]
    ks = {
        label: arm.sparsity_values
        for arm, ls in zip(config.architectures, arm_labels(config))
        for label in ls
    }
    train_s = grid_s = eval_s = 0.0
    saes = grid_runs = 0
    for label in labels:
        run_s = per_step[label] * config.training_steps
        for k in ks[label]:
            for seed_index, _ in enumerate(config.seeds):
                saes += 1
                reused = (
                    bool(config.lr_grid)
                    and seed_index == 0
                    and k == middle_value(ks[label])
                )
                train_s += 0.0 if reused else run_s
                with_absorption = k in (config.eval.absorption_sparsity_values or [k])
                # Unmeasured without absorption: the final eval's (an upper bound).
                final = evals.get("final", evals["final (first of the sweep)"])
                if not with_absorption:
                    final = evals.get("final without absorption", final)
                eval_s += len(config.eval_at_steps) * evals["core"] + final
        runs = len(config.lr_grid)
        grid_runs += runs
        grid_s += runs * run_s
        eval_s += runs * evals["grid"]
    # Once per sweep: the probing activations and absorption probes. The
    # activation caches are once per machine and left out.
    # Unmeasured per-SAE final eval: the first one's, set-up included (an upper
    # bound, and no set-up counted apart).
    first = evals["final (first of the sweep)"]
    setup_s = first - evals.get("final", first)
    return StepEstimate(
        step=step,
        preset=preset,
        d_sae=d_sae,
        saes=saes,
        grid_runs=grid_runs,
        training_hours=(train_s + grid_s) / 3600,
        eval_hours=(eval_s + max(setup_s, 0.0)) / 3600,
        evals_from=evals_from,
    )


def activation_caches(config: SweepConfig) -> dict[tuple[Any, ...], int]:
    """The activation caches `config` reads, each as (what identifies it
    across presets) -> its tokens."""
    text = (config.dataset, config.hook, config.context_size)
    caches = {(*text, "train"): config.activation_tokens or config.training_tokens}
    if config.eval.dead_window_tokens:
        caches[(*text, "held-out")] = config.eval.dead_window_tokens
    return caches


def cache_build_hours(tokens: int, timing: dict[str, Any]) -> float:
    """Hours to build a cache of `tokens` at the measured rate (0 when no build
    was measured)."""
    cache = timing.get("training_cache")
    if not cache:
        return 0.0
    return tokens * cache["seconds"] / cache["tokens"] / 3600


def eval_size(timing: dict[str, Any], d_sae: int) -> int:
    """`d_sae` if its evaluations were measured, else the nearest size that was
    (in log size)."""
    import math

    measured = [int(d) for d in timing["eval_seconds"]]
    if not measured:
        raise KeyError(f"no evaluation seconds measured (d_sae {d_sae})")
    return min(measured, key=lambda d: abs(math.log(d / d_sae)))


def estimate_table(configs: dict[str, SweepConfig], timing: dict[str, Any]) -> str:
    """The markdown table of every step, then the measurements behind it."""
    rows = [
        "| step | preset | d_sae | SAEs (+ grid runs) | training h | eval h | cache h | total h |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total = 0.0
    borrowed = []
    built: set[tuple[Any, ...]] = set()
    for step, preset in STEPS:
        config = configs[preset]
        new = {k: n for k, n in activation_caches(config).items() if k not in built}
        built |= set(new)
        e = replace(
            estimate_step(step, preset, config, timing),
            cache_hours=cache_build_hours(sum(new.values()), timing),
        )
        total += e.total_hours
        mark = ""
        if e.evals_from != e.d_sae:
            mark = " *"
            borrowed.append(f"{e.d_sae} uses d_sae {e.evals_from}'s")
        rows.append(
            f"| {e.step} | `{e.preset}` | {e.d_sae} | {e.saes} (+{e.grid_runs}) | "
            f"{e.training_hours:.1f} | {e.eval_hours:.1f}{mark} | "
            f"{e.cache_hours:.1f} | {e.total_hours:.1f} |"
        )
    rows.append(f"| all | | | | | | | {total:.1f} |")
    note = (
        "\n\n\\* Evaluation not measured at this size: "
        + "; ".join(dict.fromkeys(borrowed))
        + " (a lower bound: the dead window and probing encode every latent)."
        if borrowed
        else ""
    )
    return "\n".join(rows) + note + "\n\n" + measurements_text(timing)


def measurements_text(timing: dict[str, Any]) -> str:
    """Seconds per step and per eval, with the machine and its load."""
    lines = [
        "Seconds per training step (sparse step, "
        f"{timing['batch_tokens']} tokens, k {timing['k']}, "
        f"{timing['dead_fraction']:.0%} of latents held dead, median of "
        f"{timing.get('steps_timed', '?')} steps):",
        "",
    ]
    for d_sae, arms in timing["step_seconds"].items():
        parts = ", ".join(f"`{label}` {s:.2f}" for label, s in arms.items())
        lines.append(f"- d_sae {d_sae}: {parts}")
    lines += [
        "",
        "Seconds per evaluation of one SAE (`core`: the first in its process, "
        "so it includes SAEBench's reference passes, made once per process; "
        "`final (first of the sweep)` also builds the probing activations and "
        "absorption probes, once per sweep):",
        "",
    ]
    for d_sae, evals in timing["eval_seconds"].items():
        parts = ", ".join(f"{name} {s:.0f}" for name, s in evals.items())
        lines.append(f"- d_sae {d_sae}: {parts}")
    cache = timing.get("training_cache")
    if cache:
        lines += [
            "",
            f"Activation caches (`cache h`, training and held-out: once per "
            f"machine for each text and size, the first step to read one "
            f"builds it): "
            f"{cache['seconds'] / 60:.0f} min for {cache['tokens']:,} tokens "
            f"({cache['note']}), scaled by each cache's tokens.",
        ]
    machine = timing["machine"]
    loads = "; ".join(
        f"{part} {v['before']} -> {v['after']}"
        for part, v in timing.get("load_average", {}).items()
    )
    lines += [
        "",
        f"Machine: {machine.get('cpu_model', machine['processor'])}, {machine['cpu_count']} cores "
        f"({machine['cpu_threads']} torch threads), shared with other jobs; load "
        f"average (1, 5, 15 min) {loads}. One worker; on a quiet machine expect "
        "less, and `--workers` divides the main runs.",
    ]
    return "\n".join(lines)


def render() -> str:
    import json

    from benchmarks.sweeps.presets import load_sweep_config

    timing = json.loads(TIMING_PATH.read_text()) if TIMING_PATH.exists() else {}
    configs = {p: load_sweep_config(p) for _, p in STEPS}
    sizes = {str(d) for c in configs.values() for d in c.d_sae}
    missing = sorted(sizes - set(timing.get("step_seconds", {})))
    if not timing.get("eval_seconds"):
        missing = sorted(sizes)
    if missing:
        return (
            f"Not measured yet at d_sae {', '.join(missing)}: run "
            "`python -m benchmarks.perf.scale_timing` (module docstring)."
        )
    return estimate_table(configs, timing)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the presets and the committed timing say everything."""


def main(_args: argparse.Namespace | None = None) -> None:
    print(render())


if __name__ == "__main__":
    main()
