"""A sweep run's record as the sweep writes it: SAEBench's result layout
(`benchmarks.records.layout`) filled from a backend's `RunResult`, and the checks that
tell a finished run (valid record, complete SAE folder) from one to redo."""

import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sae_lens.constants import SAE_CFG_FILENAME, SAE_WEIGHTS_FILENAME

from benchmarks.records.layout import (
    EVAL_TYPE_ID,
    grid_record_path,
    read_record,
    record_path,
)
from benchmarks.sweeps.backends.base import RunResult
from benchmarks.sweeps.runs import RunSpec


def has_valid_record(out_dir: Path, run_id: str) -> bool:
    return is_valid_record(record_path(out_dir, run_id))


def is_valid_record(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        read_record(path)
    except ValueError:
        return False
    return True


def is_complete_sae_dir(path: Path) -> bool:
    return (path / SAE_CFG_FILENAME).exists() and (path / SAE_WEIGHTS_FILENAME).exists()


def build_record(
    sweep: dict[str, Any], run: RunSpec, result: RunResult, seconds: float
) -> dict[str, Any]:
    """The run's record in SAEBench's result layout (see benchmarks.records.layout)."""
    base = run.base_architecture
    try:
        from sae_bench.sae_bench_utils import (
            get_sae_bench_version,
            get_sae_lens_version,
        )

        sae_bench_version, sae_lens_version = (
            get_sae_bench_version(),
            get_sae_lens_version(),
        )
    except Exception:  # version lookup is informative only
        sae_bench_version, sae_lens_version = "unknown", "unknown"
    sweep = {k: v for k, v in sweep.items() if k != "architectures"}
    metrics = dict(result.metrics)
    metrics.setdefault("training", {})["seconds"] = round(seconds, 2)
    return {
        "eval_type_id": EVAL_TYPE_ID,
        "eval_config": {
            "run": {
                **{k: v for k, v in asdict(run).items() if k != "sae_kwargs"},
                "sae_kwargs": dict(run.sae_kwargs),
                "base_architecture": base,
                "point_id": run.point_id,
                "run_id": run.run_id,
            },
            "sweep": sweep,
        },
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        "eval_result_metrics": metrics,
        "eval_result_details": [],
        "eval_result_unstructured": result.unstructured,
        "sae_bench_commit_hash": sae_bench_version,
        "sae_lens_id": run.run_id,
        "sae_lens_release_id": f"saelens-aligned-sweep-{sweep['name']}",
        "sae_lens_version": sae_lens_version,
        "sae_cfg_dict": result.sae_cfg_dict,
    }


def run_record_path(out_dir: Path, run: RunSpec, grid: bool) -> Path:
    return (
        grid_record_path(out_dir, run.run_id)
        if grid
        else record_path(out_dir, run.run_id)
    )
