"""SAEBench's feature-quality evals in a sweep record: sparse probing on local
multi-class text, sparse probing on the sae-probes datasets, and TPP.

Each runs through the pipeline's offline wrapper (`pipeline.local_probing`,
`pipeline.sae_probes_eval`) on the sweep's TransformerLens view of the model. Its
work folder, shared by every SAE of the sweep, keeps the model activations of its
datasets and the residual-stream baselines, so later SAEs pay only for their
encode and probes. A file lock per folder makes parallel workers wait for the
first one's activations instead of computing their own. The record gets one
metric group per eval (SAEBench's metric names, plus `seconds`), and the
per-dataset details go to the unstructured part.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from benchmarks.sweeps.config import EvalSettings

PROBING_EVALS = ("sparse_probing", "sae_probes", "tpp")


@dataclass(frozen=True)
class ProbingOutcome:
    """What the probing evals add to one record.

    Args:
        metrics: Metric group per eval that ran (`sparse_probing`, `sae_probes`,
            `tpp`).
        details: Per-dataset details per eval that ran.
        skipped: Eval -> why it did not run.
    """

    metrics: dict[str, dict[str, Any]]
    details: dict[str, dict[str, Any]]
    skipped: dict[str, str]


def _sparse_probing(
    sae: Any, model: Any, work_dir: Path, size: str
) -> tuple[dict, dict]:
    from saelens_aligned.pipeline.local_probing import (
        SparseProbingSettings,
        run_sparse_probing,
    )

    result = run_sparse_probing(
        sae, model, getattr(SparseProbingSettings, size)(), work_dir
    )
    return _local_outcome(result)


def _sae_probes(sae: Any, model: Any, work_dir: Path, size: str) -> tuple[dict, dict]:
    from saelens_aligned.pipeline.sae_probes_eval import (
        SaeProbesSettings,
        run_sae_probes,
    )

    result = run_sae_probes(sae, model, getattr(SaeProbesSettings, size)(), work_dir)
    group: dict[str, Any] = {}
    for probe in result.sae:
        group[f"sae_top_{probe.k}_test_accuracy"] = probe.test_accuracy
        group[f"sae_top_{probe.k}_test_auc"] = probe.test_auc
    if result.llm is not None:
        group["llm_test_accuracy"] = result.llm.test_accuracy
        group["llm_test_auc"] = result.llm.test_auc
    group |= {
        "seconds": result.seconds,
        "activations_reused": result.model_activations_reused,
        "n_datasets": len(result.datasets),
    }
    details = {
        "datasets": list(result.datasets),
        "per_dataset": [
            {
                "dataset_name": d.dataset_name,
                "n_train": d.n_train,
                "n_test": d.n_test,
                "sae": [p.__dict__ for p in d.sae],
                "llm": None if d.llm is None else d.llm.__dict__,
            }
            for d in result.details
        ],
    }
    return group, details


def _tpp(sae: Any, model: Any, work_dir: Path, size: str) -> tuple[dict, dict]:
    from saelens_aligned.pipeline.local_probing import TppSettings, run_tpp

    result = run_tpp(sae, model, getattr(TppSettings, size)(), work_dir)
    return _local_outcome(result)


def _local_outcome(result: Any) -> tuple[dict, dict]:
    """The record group and details of a `local_probing` result (sparse probing
    or TPP: the same bookkeeping fields)."""
    group = {
        **result.metrics(),
        "seconds": result.seconds,
        "activations_reused": result.activations_reused,
        "n_datasets": len(result.datasets_used),
    }
    details = {
        "per_dataset": result.per_dataset,
        "datasets_used": list(result.datasets_used),
        "datasets_skipped": result.datasets_skipped,
    }
    return group, details


RUNNERS: dict[str, Callable[[Any, Any, Path, str], tuple[dict, dict]]] = {
    "sparse_probing": _sparse_probing,
    "sae_probes": _sae_probes,
    "tpp": _tpp,
}


def wanted(settings: EvalSettings) -> list[str]:
    """The probing evals the settings turn on."""
    return [name for name in PROBING_EVALS if getattr(settings, name)]


def probing_outcome(
    sae: Any, hooked_model: Any, settings: EvalSettings, work_root: Path
) -> ProbingOutcome:
    """Every probing eval the settings turn on, each in `work_root / <eval>`."""
    metrics, details = {}, {}
    for name in wanted(settings):
        work_dir = work_root / name / settings.probing_size
        work_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(work_dir / ".lock")):
            metrics[name], details[name] = RUNNERS[name](
                sae, hooked_model, work_dir, settings.probing_size
            )
    return ProbingOutcome(metrics, details, {})


def skipped_outcome(settings: EvalSettings, reason: str) -> ProbingOutcome:
    """The outcome of a run the wanted probing evals could not run on."""
    return ProbingOutcome({}, {}, dict.fromkeys(wanted(settings), reason))
