"""Training seconds per SAE, end to end, on the sparse TopK step and on SAELens'
dense step: SAELens' runner on cached activations of the embedded model, exactly
as a sweep trains (`LMBackend.train`).

    python -m benchmarks.experiments.train_time --preset cpu --preset demo \\
        --out benchmarks/results/experiments/train_time.jsonl

`cpu` is the cpu preset's TopK k = 32 run (Brown, d_sae 1152, 400 steps of 512
tokens); `demo` is `saelens-aligned demo`'s default run (the embedded corpus,
d_sae 1536, 156 steps of 1024 tokens). Each preset's four arms are trained in
turn, `--repeats` times, after one untimed warm-up run, in one process:
- `topk`, SAELens' dense step (what both trained on before the sparse step),
- `topk` on the sparse step (`sparse_topk`, the sweeps' `sparse_stock_step`),
- `aligned_topk` (`tied`) on SAELens' dense step (`sparse_training: false`),
- `aligned_topk` (`tied`) on the sparse step (its default now).
Wall seconds include SAELens' runner set-up and the final save, as a user sees
them; the activation cache is made once before any timing.
"""

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.perf.settings import load_average, machine
from benchmarks.sweeps.backends.lm import LMBackend
from benchmarks.sweeps.config import ArchitectureSweep, SweepConfig
from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.runs import expand_runs
from saelens_aligned.apps.demo import DemoConfig


@dataclass(frozen=True)
class TimedArm:
    """One way of training the preset's TopK k = 32 SAE.

    Args:
        label: Name in records.
        arm: The sweep arm (architecture and SAE fields).
        sparse_stock_step: The sweep setting that puts stock arms on the sparse step.
    """

    label: str
    arm: ArchitectureSweep
    sparse_stock_step: bool = False


K = 32
ARMS = (
    TimedArm("topk_saelens_dense", ArchitectureSweep("topk", "k", [K])),
    TimedArm("topk_sparse", ArchitectureSweep("topk", "k", [K]), True),
    TimedArm(
        "aligned_tied_dense",
        ArchitectureSweep(
            "aligned_topk", "k", [K], ["tied"], sae_kwargs={"sparse_training": False}
        ),
    ),
    TimedArm(
        "aligned_tied_sparse", ArchitectureSweep("aligned_topk", "k", [K], ["tied"])
    ),
)


def demo_sweep() -> SweepConfig:
    """`saelens-aligned demo`'s default training run as a one-seed sweep."""
    demo = DemoConfig()
    return SweepConfig(
        name="demo",
        hook=demo.hook,
        dataset=demo.dataset,
        context_size=demo.context_size,
        d_sae=[demo.d_sae],
        seeds=[demo.seed],
        training_tokens=demo.training_tokens,
        train_batch_size_tokens=demo.train_batch_size_tokens,
        lr=demo.lr,
        activation_seed=demo.seed,
        model_batch_size=demo.model_batch_size,
    )


def preset_sweep(name: str) -> SweepConfig:
    if name == "demo":
        return demo_sweep()
    config = load_sweep_config(name)
    return replace(config, seeds=config.seeds[:1], lr_grid=[])


def time_preset(name: str, repeats: int) -> list[dict[str, Any]]:
    """Seconds of every arm's training, `repeats` times each, in turn."""
    base = preset_sweep(name)
    with tempfile.TemporaryDirectory() as tmp:
        backend = LMBackend(replace(base, architectures=[ARMS[0].arm]), Path(tmp))
        backend.prepare()
        samples: dict[str, list[dict[str, float]]] = {a.label: [] for a in ARMS}
        for repeat in range(repeats + 1):  # the first round warms up
            for timed in ARMS:
                config = replace(
                    base,
                    architectures=[timed.arm],
                    sparse_stock_step=timed.sparse_stock_step,
                )
                backend.config = config
                (run,) = expand_runs(config)
                wall, cpu = time.perf_counter(), time.process_time()
                backend.train(run, Path(tmp) / f"{timed.label}-{repeat}")
                if repeat:
                    samples[timed.label].append(
                        {
                            "wall_s": time.perf_counter() - wall,
                            "cpu_s": time.process_time() - cpu,
                        }
                    )
    medians = {
        label: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for label, runs in samples.items()
    }
    return [
        {
            "measurement": "train_time",
            "preset": name,
            "d_sae": base.d_sae[0],
            "k": K,
            "training_steps": base.training_steps,
            "train_batch_size_tokens": base.train_batch_size_tokens,
            "repeats": repeats,
            "seconds": samples,
            "median": medians,
            "torch_threads": torch.get_num_threads(),
            "load_average": load_average(),
            "machine": machine(),
        }
    ]


def render(records: list[dict[str, Any]]) -> str:
    """The end-to-end table of docs/performance.md, from `train_time` records."""
    from tabulate import tabulate

    rows = []
    for r in records:
        median = {label: m["wall_s"] for label, m in r["median"].items()}
        rows.append(
            [
                r["preset"],
                f"{r['d_sae']} / {r['training_steps']} x {r['train_batch_size_tokens']}",
                f"{median['topk_saelens_dense']:.1f}",
                f"{median['topk_sparse']:.1f}",
                f"{median['aligned_tied_dense']:.1f}",
                f"{median['aligned_tied_sparse']:.1f}",
                f"{median['aligned_tied_sparse'] / median['aligned_tied_dense']:.2f}",
                f"{median['topk_sparse'] / median['topk_saelens_dense']:.2f}",
            ]
        )
    return (
        tabulate(
            rows,
            headers=[
                "run",
                "d_sae / steps x tokens",
                "`topk` dense s",
                "`topk` sparse s",
                "`aligned_topk` dense s",
                "`aligned_topk` sparse s",
                "aligned sparse / dense",
                "stock sparse / dense",
            ],
            tablefmt="github",
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", action="append", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, help="print the table")
    args = parser.parse_args()
    if args.render:
        lines = args.render.read_text().splitlines()
        print(render([json.loads(line) for line in lines if line]), end="")
        return
    import saelens_aligned  # noqa: F401  (registers the architectures)

    for name in args.preset or ["demo", "cpu"]:
        for record in time_preset(name, args.repeats):
            line = json.dumps(record)
            print(line, flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with args.out.open("a") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
