"""The typed results of SAEBench's probing evals, as records hold them: sparse
probing and TPP (`local_probing`) and sae-probes' k-sparse probing
(`sae_probes_eval`)."""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SparseProbingResult:
    """SAEBench's sparse-probing metrics for one SAE, means over datasets (and,
    within one, over its one-vs-rest classes).

    Attributes:
        sae_test_accuracy: Probe on all SAE latents.
        sae_top_k_test_accuracy: k -> probe on the top-k latents.
        llm_test_accuracy: The baseline: probe on the residual stream.
        llm_top_k_test_accuracy: k -> probe on the top-k residual dimensions.
        per_dataset: Dataset -> SAEBench's metric name -> mean over its classes.
        per_class: Dataset -> metric name -> class -> accuracy.
        datasets_used: Datasets evaluated.
        datasets_skipped: Dataset -> why it was not (e.g. Brown not fetched).
        seconds: Wall time, including model passes when not reused.
        activations_reused: Whether every dataset's model activations (and
            baseline probes) came from work_dir rather than a model pass.
        settings: The settings it ran with.
    """

    sae_test_accuracy: float
    sae_top_k_test_accuracy: dict[int, float]
    llm_test_accuracy: float
    llm_top_k_test_accuracy: dict[int, float]
    per_dataset: dict[str, dict[str, float]]
    per_class: dict[str, dict[str, dict[str, float]]]
    datasets_used: tuple[str, ...]
    datasets_skipped: dict[str, str]
    seconds: float
    activations_reused: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The headline metrics under SAEBench's names."""
        out = {"sae_test_accuracy": self.sae_test_accuracy}
        out |= {
            f"sae_top_{k}_test_accuracy": v
            for k, v in self.sae_top_k_test_accuracy.items()
        }
        out["llm_test_accuracy"] = self.llm_test_accuracy
        out |= {
            f"llm_top_{k}_test_accuracy": v
            for k, v in self.llm_top_k_test_accuracy.items()
        }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics(), **asdict(self)}


@dataclass(frozen=True)
class TppResult:
    """SAEBench's TPP metrics for one SAE, means over datasets and ablated classes.

    Attributes:
        total_metric: n -> intended minus unintended accuracy drop when the n
            latents most attributed to a class are ablated (higher is better).
        intended_diff: n -> drop of the ablated class's own probe accuracy.
        unintended_diff: n -> mean drop of the other classes' probes.
        llm_test_accuracy: Dataset -> class -> the clean residual probe's test
            accuracy (the baseline the drops are measured from).
        per_dataset: Dataset -> SAEBench's metric name -> mean over classes.
        per_class: Dataset -> class -> SAEBench's metric name -> value.
        datasets_used, datasets_skipped, seconds, activations_reused, settings:
            As in `SparseProbingResult` (reused: activations and residual probes).
    """

    total_metric: dict[int, float]
    intended_diff: dict[int, float]
    unintended_diff: dict[int, float]
    llm_test_accuracy: dict[str, dict[str, float]]
    per_dataset: dict[str, dict[str, float]]
    per_class: dict[str, dict[str, dict[str, float]]]
    datasets_used: tuple[str, ...]
    datasets_skipped: dict[str, str]
    seconds: float
    activations_reused: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """The headline metrics under SAEBench's names."""
        out = {}
        for n in self.total_metric:
            out[f"tpp_threshold_{n}_total_metric"] = self.total_metric[n]
            out[f"tpp_threshold_{n}_intended_diff_only"] = self.intended_diff[n]
            out[f"tpp_threshold_{n}_unintended_diff_only"] = self.unintended_diff[n]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics(), **asdict(self)}


@dataclass(frozen=True)
class ProbeMetrics:
    """Test metrics of one probe (or their mean over datasets).

    Attributes:
        k: SAE latents read; None for the residual-stream baseline.
        test_accuracy: Accuracy on sae-probes' balanced test split.
        test_auc: ROC AUC there.
        test_f1: Weighted F1 there.
    """

    k: int | None
    test_accuracy: float
    test_auc: float
    test_f1: float


@dataclass(frozen=True)
class SaeProbesDatasetResult:
    """One dataset's probes.

    Attributes:
        dataset_name: The sae-probes dataset.
        n_examples: Prompts sae-probes saw (after `max_examples`).
        n_train: Of which its probes trained on.
        n_test: And were tested on.
        sae: The SAE's k-sparse probes, by increasing k.
        llm: The residual-stream baseline; None without it.
    """

    dataset_name: str
    n_examples: int
    n_train: int
    n_test: int
    sae: tuple[ProbeMetrics, ...]
    llm: ProbeMetrics | None


@dataclass(frozen=True)
class SaeProbesResult:
    """SAEBench's sae-probes metrics for one SAE.

    Attributes:
        sae: Mean over datasets of the k-sparse probes' metrics, by increasing k.
        llm: Mean of the residual-stream baseline (what a dense probe on the
            activations the SAE encodes achieves); None without it.
        datasets: The datasets evaluated.
        details: Per dataset.
        seconds: Wall time of SAEBench's run_eval, including model activations
            and baseline probes when they were not cached yet.
        model_activations_reused: Whether every dataset's model activations were
            read from work_dir's cache (no model pass).
        baseline_reused: Whether the baseline probes' results were too.
        settings: The settings it ran with.
    """

    sae: tuple[ProbeMetrics, ...]
    llm: ProbeMetrics | None
    datasets: tuple[str, ...]
    details: tuple[SaeProbesDatasetResult, ...]
    seconds: float
    model_activations_reused: bool
    baseline_reused: bool
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
