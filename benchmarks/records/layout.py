"""Evaluation records: one JSON file per run, in SAEBench's result layout.

A record is a plain dict with SAEBench's top-level keys (`eval_type_id`,
`eval_config`, `eval_id`, `datetime_epoch_millis`, `eval_result_metrics`,
`eval_result_details`, `eval_result_unstructured`, `sae_bench_commit_hash`,
`sae_lens_id`, `sae_lens_release_id`, `sae_lens_version`, `sae_cfg_dict`).

- `eval_config["run"]` identifies the run (architecture, alignment, sparsity, d_sae,
  seed, run_id, point_id, label) and `eval_config["sweep"]` the sweep's settings.
- `eval_result_metrics` holds metric groups: SAEBench core's groups
  (`model_behavior_preservation`, `model_performance_preservation`,
  `reconstruction_quality`, `shrinkage`, `sparsity`, `misc`), `meta_structure`,
  `alignment` (our score summary), `ground_truth` (synthetic sweeps), `training`.
- `eval_result_unstructured` holds the alignment histogram, feature densities and
  `skipped_evals` (eval name -> the reason it did not run).

`flat_metrics` gives the numbers analysis works with under short fixed names.
Stability records (one per sweep point with >= 2 seeds) live beside the run
records as `stability-<point_id>.json`.
"""

import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Records are written with the package's atomic writer (temp file, fsync, rename).
from saelens_aligned.io import write_json_atomic
from saelens_aligned.pipeline.eval_moments import RECORD_KEY

__all__ = ["write_json_atomic"]

EVAL_TYPE_ID = "saelens_aligned_sweep"
STABILITY_TYPE_ID = "saelens_aligned_stability"
RECORDS_DIRNAME = "records"
# Beside records/: the sweep's config and its learning-rate choice.
SWEEP_FILENAME = "sweep.json"
LR_CHOICE_FILENAME = "lr_choice.json"
# Beside records/: one line per run event (start, trained, finished with seconds).
RUN_LOG = Path("logs") / "runs.jsonl"

# flat name -> (metric group, metric name) inside eval_result_metrics.
FLAT_METRICS: dict[str, tuple[str, str]] = {
    "ce_loss_score": ("model_performance_preservation", "ce_loss_score"),
    "ce_loss_with_sae": ("model_performance_preservation", "ce_loss_with_sae"),
    "ce_loss_without_sae": ("model_performance_preservation", "ce_loss_without_sae"),
    "kl_div_score": ("model_behavior_preservation", "kl_div_score"),
    # About the mean (SAELens >= 6.45.1's formula): SAEBench 0.6.0's own
    # `explained_variance` is variance about zero and stays in the records only
    # as it wrote it (`saelens_aligned.explained_variance`).
    "explained_variance": ("reconstruction_quality", RECORD_KEY),
    # SAEBench's per-token formula, the one its paper reports (see docs/pretrained.md).
    "explained_variance_legacy": (
        "reconstruction_quality",
        "explained_variance_legacy",
    ),
    "mse": ("reconstruction_quality", "mse"),
    "cossim": ("reconstruction_quality", "cossim"),
    "l2_ratio": ("shrinkage", "l2_ratio"),
    "l0": ("sparsity", "l0"),
    "l1": ("sparsity", "l1"),
    "dead_fraction": ("misc", "frac_dead_latents"),
    "dead_fraction_long": ("misc", "frac_dead_latents_long"),
    "dead_fraction_end_of_training": ("training", "frac_dead_at_end_of_training"),
    "alive_fraction": ("misc", "frac_alive"),
    "meta_structure_fve": ("meta_structure", "decoder_fraction_variance_explained"),
    "alignment_mean": ("alignment", "mean"),
    "alignment_frac_near_one": ("alignment", "frac_near_one"),
    "alignment_frac_below_half": ("alignment", "frac_below_half"),
    "alignment_bimodality": ("alignment", "bimodality_coefficient"),
    "absorption_fraction": ("absorption", "mean_absorption_fraction_score"),
    "absorption_full": ("absorption", "mean_full_absorption_score"),
    "absorption_split_features": ("absorption", "mean_num_split_features"),
    "absorption_seconds": ("absorption", "seconds"),
    # SAEBench's sparse probing on local multi-class text (`probing_evals`).
    "sparse_probing_top1": ("sparse_probing", "sae_top_1_test_accuracy"),
    "sparse_probing_top5": ("sparse_probing", "sae_top_5_test_accuracy"),
    "sparse_probing_all": ("sparse_probing", "sae_test_accuracy"),
    "sparse_probing_llm_top1": ("sparse_probing", "llm_top_1_test_accuracy"),
    "sparse_probing_llm_top5": ("sparse_probing", "llm_top_5_test_accuracy"),
    "sparse_probing_llm_all": ("sparse_probing", "llm_test_accuracy"),
    "sparse_probing_seconds": ("sparse_probing", "seconds"),
    # SAEBench's sparse_probing_sae_probes on the sae-probes datasets.
    "sae_probes_top1": ("sae_probes", "sae_top_1_test_accuracy"),
    "sae_probes_top5": ("sae_probes", "sae_top_5_test_accuracy"),
    "sae_probes_llm": ("sae_probes", "llm_test_accuracy"),
    "sae_probes_seconds": ("sae_probes", "seconds"),
    # SAEBench's TPP (SCR off) on the local sets: 20 latents ablated per class.
    "tpp_total": ("tpp", "tpp_threshold_20_total_metric"),
    "tpp_intended": ("tpp", "tpp_threshold_20_intended_diff_only"),
    "tpp_unintended": ("tpp", "tpp_threshold_20_unintended_diff_only"),
    "tpp_seconds": ("tpp", "seconds"),
    "mcc": ("ground_truth", "mcc"),
    "uniqueness": ("ground_truth", "uniqueness"),
    "f1": ("ground_truth", "f1"),
    "gt_dead_latents": ("ground_truth", "dead_latents"),
    "shrinkage": ("ground_truth", "shrinkage"),
    "train_seconds": ("training", "seconds"),
}


def read_lr_choice(out_dir: Path) -> dict[str, Any] | None:
    """`lr_choice.json` of a sweep folder (`{"metric", "grid": {label: {lr:
    value}}, "chosen": {label: lr}}`) when it and `sweep.json` exist."""
    path = Path(out_dir) / LR_CHOICE_FILENAME
    if not (path.exists() and (Path(out_dir) / SWEEP_FILENAME).exists()):
        return None
    return json.loads(path.read_text())


def record_path(out_dir: Path, run_id: str) -> Path:
    return Path(out_dir) / RECORDS_DIRNAME / f"{run_id}.json"


def grid_records_dir(out_dir: Path) -> Path:
    """Where the learning-rate grid's records live (`records/` itself holds the
    main runs)."""
    return Path(out_dir) / RECORDS_DIRNAME / "lr_grid"


def grid_record_path(out_dir: Path, run_id: str) -> Path:
    """The record of a learning-rate grid run (ranked by the grid's metric only)."""
    return grid_records_dir(out_dir) / f"{run_id}.json"


def checkpoint_record_path(out_dir: Path, run_id: str, step: int) -> Path:
    """The record of a learning-curve checkpoint: beside, not among, the runs'."""
    return Path(out_dir) / RECORDS_DIRNAME / "checkpoints" / f"{run_id}-step{step}.json"


def load_checkpoint_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every learning-curve checkpoint record of a sweep folder, sorted by id."""
    folder = Path(out_dir) / RECORDS_DIRNAME / "checkpoints"
    return [read_record(p) for p in sorted(folder.glob("*.json"))]


def stability_path(out_dir: Path, point_id: str) -> Path:
    return Path(out_dir) / RECORDS_DIRNAME / f"stability-{point_id}.json"


def read_record(path: Path) -> dict[str, Any]:
    """A record, or a ValueError naming the file when it is not valid JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON record ({e}).") from e
    if not isinstance(data, dict) or "eval_type_id" not in data:
        raise ValueError(f"{path}: not a sweep record (no eval_type_id).")
    return data


def load_records(out_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run records, stability records) of a sweep folder, sorted by id."""
    runs, stability = [], []
    folder = Path(out_dir) / RECORDS_DIRNAME
    for path in sorted(folder.glob("*.json")):
        record = read_record(path)
        if record["eval_type_id"] == STABILITY_TYPE_ID:
            stability.append(record)
        elif record["eval_type_id"] == EVAL_TYPE_ID:
            runs.append(record)
    return runs, stability


def run_info(record: dict[str, Any]) -> dict[str, Any]:
    """The run identity: architecture, alignment, sparsity_param, sparsity_value,
    d_sae, seed, run_id, point_id, label, base_architecture."""
    return record["eval_config"]["run"]


def flat_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers under FLAT_METRICS' names; NaN where absent."""
    metrics = record.get("eval_result_metrics", {})
    out = {}
    for name, (group, key) in FLAT_METRICS.items():
        value = metrics.get(group, {}).get(key)
        out[name] = float(value) if isinstance(value, int | float) else math.nan
    return out


def is_finite_record(record: dict[str, Any], required: Iterable[str]) -> bool:
    values = flat_metrics(record)
    return all(math.isfinite(values[name]) for name in required)


def log_event(out_dir: Path, run_id: str, event: str, **extra: Any) -> None:
    """Append one line to the run log (appends of one short line are atomic
    enough: a kill can at worst cut the last line, which readers skip)."""
    path = Path(out_dir) / RUN_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"time": time.time(), "pid": os.getpid(), "run_id": run_id, "event": event}
    with open(path, "a") as f:
        f.write(json.dumps({**line, **extra}) + "\n")
        f.flush()


def read_run_log(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / RUN_LOG
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return events
