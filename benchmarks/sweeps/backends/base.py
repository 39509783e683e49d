"""The contract between the sweep and its backends, and what every backend shares.

A backend makes a sweep's shared data once (`prepare`), trains one run into a
SAELens folder (`train`) and evaluates a saved SAE (`evaluate`), returning a
`RunResult`. The sweep machinery (`benchmarks.sweeps.sweep`) knows only this module;
`benchmarks.sweeps.backends.lm` and `benchmarks.sweeps.backends.synthetic` implement it.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from benchmarks.sweeps.config import EvalSettings
from benchmarks.sweeps.runs import RunSpec
from saelens_aligned.pipeline.training import TrainingSettings

# Evals of SAEBench that read hub datasets or call an LLM API (sparse probing and
# TPP also run offline on local labelled text: `benchmarks.sweeps.backends.probing_evals`).
HUB_EVALS = (
    "sparse_probing",
    "scr",
    "tpp",
    "unlearning",
    "ravel",
    "autointerp",
    "mdl",
)
OFFLINE_REASONS = {
    "scr": "needs two correlated labels per text (SAEBench: profession and "
    "gender); no local labelled set has such a pair",
    "autointerp": "needs an LLM judge behind an API; none is reachable offline",
}


@dataclass
class RunResult:
    """What a backend measured for one run.

    Args:
        metrics: Metric groups for the record's `eval_result_metrics`.
        unstructured: Histogram data, densities, skipped evals.
        sae_cfg_dict: The saved SAE's config.
    """

    metrics: dict[str, dict[str, Any]]
    unstructured: dict[str, Any] = field(default_factory=dict)
    sae_cfg_dict: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """Makes a sweep's shared data once, then trains and evaluates runs on it."""

    def prepare(self) -> None:
        """Make the data every run shares (cheap when it already exists)."""

    def train(self, run: RunSpec, sae_dir: Path) -> None:
        """Train `run` and save its SAE as a SAELens folder at `sae_dir`."""

    def evaluate(
        self, run: RunSpec, sae_dir: Path, settings: EvalSettings
    ) -> RunResult:
        """Evaluate the SAE saved at `sae_dir` (a run, or one of its checkpoints)
        with `settings` (the sweep's, or the cheaper grid ones)."""


def meta_structure_metrics(
    sae: Any, seed: int, run_id: str, train_steps: int, device: str
) -> dict[str, Any]:
    """SAEBench's meta_structure eval (a BatchTopK meta-SAE on the decoder rows)."""
    from sae_bench.evals.meta_structure.eval_config import MetaStructureEvalConfig
    from sae_bench.evals.meta_structure.main import run_eval_single_sae

    cfg = MetaStructureEvalConfig(
        train_steps=train_steps,
        autocast=device.startswith("cuda"),
        random_seed=seed,
    )
    torch.manual_seed(seed)
    output = run_eval_single_sae("sweep", run_id, sae, cfg, device)
    return asdict(output.eval_result_metrics.meta_structure)


def skipped_evals(
    settings: EvalSettings,
    absorption_reason: str | None,
    probing: dict[str, str] | None = None,
    ran: tuple[str, ...] = (),
) -> dict[str, str]:
    """Each SAEBench eval that did not run, with the reason (`probing`: why a
    wanted probing eval could not run; `ran`: evals that did)."""
    from saelens_aligned.pipeline.text import hub_is_offline

    reasons: dict[str, str] = {}
    if not settings.meta_structure:
        reasons["meta_structure"] = "disabled in the sweep config (eval.meta_structure)"
    if absorption_reason:
        reasons["absorption"] = absorption_reason
    offline = hub_is_offline()
    hub_reason = (
        "needs Hugging Face hub datasets or an LLM API; the hub is unreachable here"
        if offline
        else "not part of this sweep's evals (they cost far more than training "
        "these SAEs); run SAEBench on the saved SAE folders"
    )
    for name in HUB_EVALS:
        reasons[name] = OFFLINE_REASONS.get(name, hub_reason) if offline else hub_reason
    for name in ("sparse_probing", "sae_probes", "tpp"):
        if not getattr(settings, name, False):
            reasons[name] = (
                f"disabled in the sweep config (eval.{name}); it runs offline on "
                "local labelled text"
            )
    reasons.update(probing or {})
    for name in ran:
        reasons.pop(name, None)
    return reasons


def training_details(
    settings: TrainingSettings, init_seed: int, sae_cfg_dict: dict[str, Any]
) -> dict[str, Any]:
    """What the record says about how the SAE was trained: the runner settings,
    the init seed, and SAELens' own count of latents dead at the end of training
    (no firing for `dead_feature_window` steps, the latents TopK's AuxK acts on)."""
    metadata = sae_cfg_dict.get("metadata") or {}
    dead = metadata.get("num_dead_features")
    d_sae = sae_cfg_dict.get("d_sae") or 1
    details = settings.to_dict()
    return {
        **{k: v for k, v in details.items() if k != "seed"},
        "data_seed": details["seed"],
        "init_seed": init_seed,
        "aux_loss_coefficient": sae_cfg_dict.get("aux_loss_coefficient"),
        "frac_dead_at_end_of_training": None if dead is None else dead / d_sae,
    }
