"""LM sweeps: SAELens' activation cache made once, SAELens' runner per SAE, SAEBench
evals against the live model.

The pieces are the demo's (`saelens_aligned.demo`): input resolution, the
activation cache, `train_sae` with `use_cached_activations=True`, and the core eval.
This module adds what a sweep needs on top: per-run seeds and SAE configs, and the
evals beyond core (meta_structure; absorption where it can run; hub evals recorded
as skipped with the reason).
"""

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks.config import RunSpec, SweepConfig
from benchmarks.sweep import HUB_EVALS, RunResult


def meta_structure_metrics(
    sae: Any, run: RunSpec, train_steps: int, device: str
) -> dict[str, Any]:
    """SAEBench's meta_structure eval (a BatchTopK meta-SAE on the decoder rows)."""
    from sae_bench.evals.meta_structure.eval_config import MetaStructureEvalConfig
    from sae_bench.evals.meta_structure.main import run_eval_single_sae

    cfg = MetaStructureEvalConfig(
        train_steps=train_steps,
        autocast=device.startswith("cuda"),
        random_seed=run.seed,
    )
    torch.manual_seed(run.seed)
    output = run_eval_single_sae("sweep", run.run_id, sae, cfg, device)
    return asdict(output.eval_result_metrics.meta_structure)


def skipped_evals(config: SweepConfig, absorption_reason: str | None) -> dict[str, str]:
    from saelens_aligned.corpus import hub_is_offline

    reasons: dict[str, str] = {}
    if not config.eval.meta_structure:
        reasons["meta_structure"] = "disabled in the sweep config (eval.meta_structure)"
    if absorption_reason:
        reasons["absorption"] = absorption_reason
    hub_reason = (
        "needs Hugging Face hub datasets or an LLM API; the hub is unreachable here"
        if hub_is_offline()
        else "not part of this sweep's evals (they cost far more than training "
        "these SAEs); run SAEBench on the saved SAE folders"
    )
    for name in HUB_EVALS:
        reasons[name] = hub_reason
    return reasons


class LMBackend:
    """Runs of an `lm` sweep. The model loads once per process; activations are
    cached once per sweep on disk."""

    def __init__(self, config: SweepConfig, out_dir: Path) -> None:
        from saelens_aligned.demo import DemoConfig, resolve_data_inputs

        self.config = config
        demo_config = DemoConfig(
            model=config.model,
            model_class=config.model_class,
            dataset=config.dataset,
            hook=config.hook,
            context_size=config.context_size,
            training_tokens=config.training_tokens,
            train_batch_size_tokens=config.train_batch_size_tokens,
            lr=config.lr,
            seed=config.activation_seed,
            model_batch_size=config.model_batch_size,
            eval_batch_size_prompts=config.eval.batch_size_prompts,
            eval_reconstruction_batches=config.eval.n_eval_reconstruction_batches,
            eval_sparsity_variance_batches=config.eval.n_eval_sparsity_variance_batches,
            device=config.device,
            output_dir=str(out_dir),
            activations_dir=config.activations_dir,
        )
        # Every check that can fail on the inputs, before any weights load.
        self.inputs = resolve_data_inputs(demo_config, Path(out_dir))
        self._model: Any = None
        self._d_in: int | None = None
        self._cache_dir: Path | None = None
        # Wall seconds inside the LM's forward pass, by phase: `activations`
        # (making the shared cache) and `eval` (SAEBench against the live model).
        self.lm_seconds: dict[str, float] = {"activations": 0.0, "eval": 0.0}
        self._phase = "activations"

    @property
    def model(self) -> Any:
        if self._model is None:
            from saelens_aligned.demo import hook_width, load_model

            self._model = load_model(self.inputs)
            self._d_in = hook_width(self._model, self.config.hook)
            self._time_forward_passes(self._model)
        return self._model

    def _time_forward_passes(self, model: torch.nn.Module) -> None:
        started: list[float] = []

        def before(*_: Any) -> None:
            started.append(time.perf_counter())

        def after(*_: Any) -> None:
            if started:
                self.lm_seconds[self._phase] += time.perf_counter() - started.pop()

        model.register_forward_pre_hook(before)
        model.register_forward_hook(after)

    @property
    def d_in(self) -> int:
        _ = self.model
        assert self._d_in is not None
        return self._d_in

    def prepare(self) -> None:
        from saelens_aligned.demo import ensure_activation_cache

        self._phase = "activations"
        self._cache_dir = ensure_activation_cache(self.inputs, self.model, self.d_in)

    def train(self, run: RunSpec, sae_dir: Path) -> None:
        from sae_lens.registry import get_sae_training_class

        from saelens_aligned.demo import train_sae

        if self._cache_dir is None:
            self.prepare()  # a worker process: finds the cache the parent made
        assert self._cache_dir is not None
        config_class = get_sae_training_class(run.architecture)[1]
        sae_cfg = config_class(
            d_in=self.d_in, **run.sae_config_kwargs(self.config.training_steps)
        )
        inputs = replace(self.inputs, config=replace(self.inputs.config, seed=run.seed))
        train_sae(
            inputs,
            run.architecture,
            self.model,
            self._cache_dir,
            self.d_in,
            out=sae_dir,
            sae_cfg=sae_cfg,
        )

    def evaluate(self, run: RunSpec, sae_dir: Path) -> RunResult:
        from saelens_aligned.demo import evaluate_sae
        from saelens_aligned.io import load_sae_dir

        _ = self.model
        self._phase = "eval"
        evaluated = evaluate_sae(self.inputs, self.model, sae_dir)
        metrics: dict[str, dict[str, Any]] = {
            group: dict(values)
            for group, values in evaluated["saebench_core"].items()
            if isinstance(values, dict)
        }
        headline = evaluated["headline"]
        metrics["misc"] = {
            "frac_alive": headline["alive fraction"],
            "frac_dead_latents": headline["dead fraction"],
        }
        summary = evaluated["alignment_summary"]
        metrics["alignment"] = {
            k: v for k, v in summary.items() if not k.startswith("histogram")
        }
        sae = load_sae_dir(sae_dir, device=self.config.device)
        if self.config.eval.meta_structure:
            metrics["meta_structure"] = meta_structure_metrics(
                sae,
                run,
                self.config.eval.meta_structure_train_steps,
                self.config.device,
            )
        absorption_reason = (
            "disabled in the sweep config (eval.absorption); it needs a "
            "HookedTransformer and costs far more than the core eval"
            if not self.config.eval.absorption
            else "not run: absorption needs model_class HookedTransformer"
            if self.config.model_class != "HookedTransformer"
            else None
        )
        if absorption_reason is None:
            metrics["absorption"] = self._absorption(sae, run)
        return RunResult(
            metrics=metrics,
            unstructured={
                "alignment_histogram": {
                    "counts": summary["histogram_counts"],
                    "edges": summary["histogram_edges"],
                },
                "feature_density": evaluated["feature_density"],
                "skipped_evals": skipped_evals(self.config, absorption_reason),
                "sae_dir": str(sae_dir),
            },
            sae_cfg_dict=sae.cfg.to_dict(),
        )

    def _absorption(self, sae: Any, run: RunSpec) -> dict[str, Any]:
        """SAEBench's absorption eval (first-letter probing). SAEBench loads the
        HookedTransformer itself by name, so this runs where the hub (or a
        TransformerLens-known local model) is available."""
        import tempfile

        from sae_bench.evals.absorption.eval_config import AbsorptionEvalConfig
        from sae_bench.evals.absorption.main import run_eval

        from saelens_aligned.evaluation import prepare_for_saebench

        prepared = prepare_for_saebench(sae, self.inputs.model_name)
        cfg = AbsorptionEvalConfig(
            model_name=self.inputs.model_name, random_seed=run.seed
        )
        with tempfile.TemporaryDirectory() as tmp:
            results = run_eval(cfg, [(run.run_id, prepared)], self.config.device, tmp)
        if not results:
            return {"not_evaluable": 1.0}
        output = next(iter(results.values()))
        return dict(output["eval_result_metrics"]["mean"])
