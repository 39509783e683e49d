"""The demo's "trained longer" sentence from the committed records.

    python -m benchmarks.release.demo_findings [--check]

Reads the TopK arms at the demo's k of the learning-curve sweep
(`results/curves_cpu`: its first evaluated checkpoint and its final step) and of
the main sweep (`results/cpu`, final step), and writes
`saelens_aligned/apps/benchmark_findings.json`, which the demo's report turns into
one sentence (`saelens_aligned.apps.findings`). Arms share seeds, data order and
evaluation tokens, so the aligned - stock CE-loss gap is paired by seed. With
`--check` nothing is written; the exit status is 1 when the committed file differs.
"""

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.analysis.verdicts.statistics import paired_difference
from benchmarks.records import layout
from saelens_aligned.apps.findings import (
    FINDINGS_FILENAME,
    ArmSummary,
    BenchmarkFindings,
    LengthFindings,
    PairedGap,
)
from saelens_aligned.architectures import aligned_variant
from saelens_aligned.initialisation import BALANCED_FORM

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path("benchmarks/results")
CURVES_SWEEP = RESULTS / "curves_cpu"
MAIN_SWEEP = RESULTS / "cpu"
CORPUS = "Brown"
ARCHITECTURE = "topk"
K = 32  # the demo's k (DemoConfig.k), a sparsity every sweep ran
ALIGNMENT = "tied"  # the demo's aligned form (AlignedTrainingSAEConfig default)
TARGET = REPO / "saelens_aligned" / "apps" / FINDINGS_FILENAME
METRICS = ("ce_loss_score", "dead_fraction", "l0")
ARMS = ("stock", "fair_control", "aligned")


@dataclass(frozen=True)
class ArmRun:
    """One record of one of the three arms: which arm, step, seed, numbers."""

    arm: str
    step: int
    seed: int
    d_sae: int
    batch_tokens: int
    metrics: dict[str, float]


def arm_of(info: dict[str, Any]) -> str | None:
    """Which of the three arms a run is, or None (another arm or sparsity)."""
    if info["base_architecture"] != ARCHITECTURE or info["sparsity_value"] != K:
        return None
    if info["architecture"] == ARCHITECTURE:
        return {None: "stock", BALANCED_FORM: "fair_control"}.get(info["init_from"])
    is_aligned = info["architecture"] == aligned_variant(ARCHITECTURE)
    return "aligned" if is_aligned and info["alignment"] == ALIGNMENT else None


def arm_runs(run_records: Iterable[dict[str, Any]]) -> list[ArmRun]:
    out = []
    for record in run_records:
        info = layout.run_info(record)
        arm = arm_of(info)
        if arm is None or info.get("step") is None:
            continue
        training = record["eval_result_metrics"]["training"]
        flat = layout.flat_metrics(record)
        out.append(
            ArmRun(
                arm=arm,
                step=int(info["step"]),
                seed=int(info["seed"]),
                d_sae=int(info["d_sae"]),
                batch_tokens=int(training["train_batch_size_tokens"]),
                metrics={m: flat[m] for m in METRICS},
            )
        )
    return out


def length_findings(
    runs: list[ArmRun], sweep: Path, source: str, step: int
) -> LengthFindings:
    """The three arms at `step`, their CE-loss gap paired by seed."""
    by_arm: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for run in runs:
        if run.step == step:
            by_arm[run.arm][run.seed] = run.metrics
    missing = [arm for arm in ARMS if not by_arm[arm]]
    if missing:
        raise ValueError(f"{sweep}: no records of {missing} at step {step}.")
    seeds = sorted(set.intersection(*(set(by_arm[arm]) for arm in ARMS)))
    summaries = {
        arm: ArmSummary(
            **{m: float(np.mean([by_arm[arm][s][m] for s in seeds])) for m in METRICS}
        )
        for arm in ARMS
    }
    diff = paired_difference(
        [
            by_arm["aligned"][s]["ce_loss_score"] - by_arm["stock"][s]["ce_loss_score"]
            for s in seeds
        ]
    )
    (batch_tokens,) = {r.batch_tokens for r in runs if r.step == step}
    return LengthFindings(
        sweep=sweep.as_posix(),
        source=source,
        step=step,
        training_tokens=step * batch_tokens,
        ce_gap=PairedGap(diff.mean, diff.low, diff.high, diff.n),
        **summaries,
    )


def build_findings(repo: Path = REPO) -> BenchmarkFindings:
    """The findings the committed records give."""
    curves_runs, _ = layout.load_records(repo / CURVES_SWEEP)
    curves = arm_runs(curves_runs + layout.load_checkpoint_records(repo / CURVES_SWEEP))
    main_runs, _ = layout.load_records(repo / MAIN_SWEEP)
    main = arm_runs(main_runs)
    steps = sorted({r.step for r in curves})
    lengths = [
        length_findings(curves, CURVES_SWEEP, "learning curves", steps[0]),
        length_findings(main, MAIN_SWEEP, "main runs", max(r.step for r in main)),
        length_findings(curves, CURVES_SWEEP, "learning curves", steps[-1]),
    ]
    lengths.sort(key=lambda x: x.training_tokens)
    every = curves + main
    (d_sae,) = {r.d_sae for r in every}
    for length in lengths:
        for arm in ARMS:
            l0 = getattr(length, arm).l0
            if not math.isclose(l0, K, rel_tol=0.01):  # TopK: L0 = k, matched
                raise ValueError(f"{length.sweep} step {length.step}: {arm} L0 {l0}")
    return BenchmarkFindings(
        corpus=CORPUS,
        architecture=ARCHITECTURE,
        aligned_architecture=aligned_variant(ARCHITECTURE),
        alignment=ALIGNMENT,
        k=K,
        d_sae=d_sae,
        seeds=tuple(sorted({r.seed for r in every})),
        lengths=tuple(lengths),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.release.demo_findings",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed file only"
    )
    args = parser.parse_args(argv)
    text = build_findings().to_json()
    path = TARGET
    if args.check:
        if path.read_text() != text:
            print(f"{path} differs from the records; rerun without --check.")
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}:\n{BenchmarkFindings.from_json(text).sentence()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
