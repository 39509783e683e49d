"""Seed-to-seed stability records of a sweep's points, each with the chance
baseline of two untrained SAEs of the same arm."""

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.records.layout import (
    read_record,
    record_path,
    stability_path,
    write_json_atomic,
)
from benchmarks.sweeps.config import SweepConfig
from benchmarks.sweeps.executor import backend_for
from benchmarks.sweeps.restore import read_reproduction
from benchmarks.sweeps.run_records import has_valid_record, is_complete_sae_dir
from benchmarks.sweeps.runs import RunSpec, initial_sae, main_runs, point_runs

# Seeds of the two untrained SAEs behind every stability record's chance baseline,
# far from any sweep's own seeds.
CHANCE_SEEDS = (10_000, 10_001)


def alive_latents(record: dict[str, Any]) -> np.ndarray | None:
    """Latents that fired in the record's longest evaluation window. [d_sae]"""
    unstructured = record.get("eval_result_unstructured", {})
    density = unstructured.get("feature_density_long") or unstructured.get(
        "feature_density"
    )
    return None if density is None else np.asarray(density) > 0


def chance_weights(run: RunSpec, d_in: int, training_steps: int) -> Any:
    """(W_enc, W_dec) of two independently initialised, untrained SAEs of the
    run's arm and shape: what two seeds share before any training."""
    pair = []
    for seed in CHANCE_SEEDS:
        # The baseline compares weights only: the decoder bias's start (b_dec_init)
        # plays no part, so no activation mean is needed.
        untrained = replace(run, seed=seed, b_dec_init=None)
        sae = initial_sae(untrained, d_in, training_steps)
        pair.append(
            (sae.W_enc.detach().float().numpy(), sae.W_dec.detach().float().numpy())
        )
    return tuple(pair)


def untrained_ground_truth(
    config: SweepConfig, out_dir: Path, run: RunSpec, d_in: int
) -> dict[str, Any]:
    """Ground-truth metrics (MCC, F1, ...) of an untrained SAE of the run's arm:
    what a synthetic sweep's numbers are measured against."""
    import tempfile

    # Ground truth scores the dictionary's directions; an arm's decoder-bias
    # start (b_dec_init) is left at the architecture's own.
    untrained = replace(run, seed=CHANCE_SEEDS[0], b_dec_init=None)
    sae = initial_sae(untrained, d_in, config.training_steps)
    with tempfile.TemporaryDirectory() as tmp:
        sae.save_inference_model(tmp)
        result = backend_for(config, out_dir).evaluate(
            run, Path(tmp), replace(config.grid_eval(), split="eval")
        )
    return result.metrics.get("ground_truth", {})


def points_awaiting_stability(
    config: SweepConfig, out_dir: Path
) -> dict[str, list[RunSpec]]:
    """point id -> its runs, for every point with >= 2 seeds, all recorded, and
    no stability record yet."""
    return {
        point_id: runs
        for point_id, runs in point_runs(main_runs(config, out_dir)).items()
        if len(runs) >= 2
        and not stability_path(out_dir, point_id).exists()
        and all(has_valid_record(out_dir, r.run_id) for r in runs)
    }


def runs_to_restore(config: SweepConfig, out_dir: Path) -> list[RunSpec]:
    """Recorded runs whose SAEs a stability record needs and this machine lacks
    (records made in an earlier session, on another machine)."""
    return [
        run
        for runs in points_awaiting_stability(config, out_dir).values()
        for run in runs
        if not is_complete_sae_dir(out_dir / "saes" / run.run_id)
    ]


def write_stability_records(config: SweepConfig, out_dir: Path) -> int:
    """Stability of every point whose seeds (>= 2) are all done; returns how
    many records were written (existing ones are kept)."""
    from benchmarks.records.layout import run_info
    from benchmarks.sweeps.stability_record import point_stability

    written = 0
    for point_id, runs in points_awaiting_stability(config, out_dir).items():
        run_records = [read_record(record_path(out_dir, r.run_id)) for r in runs]
        members = [
            (run_info(record), out_dir / "saes" / r.run_id, alive_latents(record))
            for r, record in zip(runs, run_records)
        ]
        if not all(is_complete_sae_dir(d) for _, d, _ in members):
            continue  # SAEs not kept here (e.g. records copied elsewhere)
        d_in = int(run_records[0]["sae_cfg_dict"]["d_in"])
        chance = chance_weights(runs[0], d_in, config.training_steps)
        record = point_stability(members, config.stability_threshold, chance=chance)
        retrained = [read_reproduction(d) for _, d, _ in members]
        record["eval_config"]["retrained"] = [asdict(r) for r in retrained if r]
        if config.kind == "synthetic":
            record["eval_result_metrics"]["chance_ground_truth"] = (
                untrained_ground_truth(config, out_dir, runs[0], d_in)
            )
        write_json_atomic(stability_path(out_dir, point_id), record)
        written += 1
    return written
