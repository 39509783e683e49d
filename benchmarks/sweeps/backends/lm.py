"""LM sweeps: SAELens' activation cache made once, SAELens' runner per SAE, the
package's one evaluation (SAEBench core against the live model) per SAE.

Every stage is the pipeline's (`saelens_aligned.pipeline`): the source, the
activation cache, `train_sae` with cached activations, `evaluate`. This module adds
what a sweep needs on top: per-run SAE configs and seeds, and the evals beyond core
(meta_structure; absorption where it can run; hub evals recorded as skipped with
the reason).
"""

import os
import time
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from benchmarks.records.activation_moments import (
    activation_moments,
    read_activation_moments,
    write_activation_moments,
)
from benchmarks.sweeps.backends.base import (
    RunResult,
    meta_structure_metrics,
    skipped_evals,
    training_details,
)
from benchmarks.sweeps.backends.probing_evals import (
    probing_outcome,
    skipped_outcome,
    wanted,
)
from benchmarks.sweeps.config import EvalSettings, SweepConfig
from benchmarks.sweeps.runs import RunSpec, initial_sae
from saelens_aligned.io.sae_dirs import load_sae_dir
from saelens_aligned.pipeline.activations import (
    ensure_activation_cache,
    iter_cached_activations,
)
from saelens_aligned.pipeline.eval_moments import RECORD_KEY
from saelens_aligned.pipeline.evaluation import (
    cached_feature_density,
    dead_fraction,
    evaluate,
)
from saelens_aligned.pipeline.models import hook_width
from saelens_aligned.pipeline.reference_passes import (
    DEFAULT_MAX_BYTES,
    ReferencePassCache,
)
from saelens_aligned.pipeline.source import (
    ResolvedSource,
    load_source_model,
    resolve_source,
)
from saelens_aligned.pipeline.training import train_sae

ABSORPTION_DISABLED = (
    "disabled in the sweep config (eval.absorption); it costs far more than the "
    "core eval"
)


def absorption_metrics(
    sae: Any, hooked_model: Any, settings: EvalSettings, work_dir: Path
) -> tuple[dict[str, Any], str | None]:
    """SAEBench's absorption metrics of `sae` (the record's `absorption` group),
    and the reason when SAEBench could not evaluate it."""
    from saelens_aligned.pipeline.absorption import AbsorptionSettings, run_absorption

    work_dir.mkdir(parents=True, exist_ok=True)
    # Parallel workers share the probes: the first trains them, the others wait
    # for it rather than train (and half-read) their own.
    with FileLock(work_dir / ".lock"):
        result = run_absorption(
            sae,
            hooked_model,
            AbsorptionSettings.cpu(vocab_size=settings.absorption_vocab_size),
            work_dir,
        )
    metrics = {
        key: value
        for key, value in result.to_dict().items()
        if key not in ("reason", "settings")
    }
    metrics["vocab_size"] = result.settings["vocab_size"]
    return metrics, result.reason


def lm_run_result(
    sae_dir: Path,
    model: Any,
    resolved: ResolvedSource,
    settings: EvalSettings,
    seed: int,
    run_id: str,
    heldout_dir: Path | None = None,
    absorption: tuple[Any, Path] | str | None = None,
    probing: tuple[Any, Path] | str | None = None,
) -> RunResult:
    """The record contents of the SAE saved at `sae_dir`: SAEBench core and the
    alignment summary (`pipeline.evaluation.evaluate`), dead latents over the
    long held-out window (`heldout_dir`, a cache of held-out activations),
    meta_structure, absorption (`absorption`: the TransformerLens view and the
    work folder of its probes, or why it cannot run), the probing evals
    (`probing`: the same view and the sweep folder their work folders go in, or
    why they cannot run), and the reasons for every eval that did not run."""
    device = resolved.source.device
    sae = load_sae_dir(sae_dir, device=device)
    result = evaluate(sae, model, resolved, settings, settings.split)
    unstructured: dict[str, Any] = {RECORD_KEY: result.explained_variance}
    metrics: dict[str, dict[str, Any]] = {
        group: dict(values)
        for group, values in result.saebench_core.items()
        if isinstance(values, dict)
    }
    metrics["misc"] = {
        "frac_alive": result.metrics["alive_fraction"],
        "frac_dead_latents": result.metrics["dead_fraction"],
    }
    metrics["alignment"] = {
        k: v for k, v in result.alignment.items() if not k.startswith("histogram")
    }
    metrics["eval_windows"] = dict(result.windows)
    if heldout_dir is not None:
        batches = iter_cached_activations(heldout_dir, sae.cfg.d_in)
        density_F, tokens = cached_feature_density(sae, batches)
        metrics["misc"]["frac_dead_latents_long"] = dead_fraction(density_F)
        metrics["eval_windows"]["dead_window_tokens"] = tokens
        unstructured["feature_density_long"] = [float(x) for x in density_F]
    if settings.meta_structure:
        metrics["meta_structure"] = meta_structure_metrics(
            sae, seed, run_id, settings.meta_structure_train_steps, device
        )
    absorption_reason: str | None = ABSORPTION_DISABLED
    if isinstance(absorption, tuple):
        metrics["absorption"], absorption_reason = absorption_metrics(
            sae, absorption[0], settings, absorption[1]
        )
    elif isinstance(absorption, str):
        absorption_reason = absorption
    outcome = None
    if isinstance(probing, tuple):
        outcome = probing_outcome(sae, probing[0], settings, probing[1])
    elif isinstance(probing, str):
        outcome = skipped_outcome(settings, probing)
    if outcome is not None:
        metrics.update(outcome.metrics)
        unstructured["probing_details"] = outcome.details
    return RunResult(
        metrics=metrics,
        unstructured={
            **unstructured,
            "alignment_histogram": {
                "counts": result.alignment["histogram_counts"],
                "edges": result.alignment["histogram_edges"],
            },
            "feature_density": result.feature_density,
            "skipped_evals": skipped_evals(
                settings,
                absorption_reason,
                outcome.skipped if outcome else None,
                tuple(outcome.metrics) if outcome else (),
            ),
            "sae_dir": str(sae_dir),
        },
        sae_cfg_dict=sae.cfg.to_dict(),
    )


REFERENCE_CACHE_ENV = "SAELENS_ALIGNED_REFERENCE_CACHE_GB"


def reference_cache_bytes() -> int:
    """Memory for reused reference passes per process: $SAELENS_ALIGNED_REFERENCE_CACHE_GB
    (0 turns reuse off), else 4 GiB (the cpu preset needs 3.2 GB: 8 batches x 2
    passes x 8 x 128 x 49,152 float32 logits)."""
    value = os.environ.get(REFERENCE_CACHE_ENV)
    if value is None:
        return DEFAULT_MAX_BYTES
    try:
        gigabytes = float(value)
    except ValueError:
        raise ValueError(
            f"${REFERENCE_CACHE_ENV}={value!r} is not a number of GiB; set it to "
            "e.g. 2, or 0 to turn reuse of reference passes off"
        ) from None
    return int(max(gigabytes, 0.0) * 1024**3)


class LMBackend:
    """Runs of an `lm` sweep. The model loads once per process; activations are
    cached once per sweep on disk."""

    def __init__(self, config: SweepConfig, out_dir: Path) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        # Every check that can fail on the inputs, before any weights load.
        self.resolved = resolve_source(config.source())
        self._model: Any = None
        self._d_in: int | None = None
        self._cache_dir: Path | None = None
        self._heldout_dir: Path | None = None
        # Wall seconds inside the LM's forward pass, by phase: `activations`
        # (making the shared cache) and `eval` (SAEBench against the live model).
        self.lm_seconds: dict[str, float] = {"activations": 0.0, "eval": 0.0}
        self._phase = "activations"
        self._absorption_model: Any = None
        self.reference_passes: ReferencePassCache | None = None
        self._validation: ResolvedSource | None = None

    def resolved_for(self, split: str) -> ResolvedSource:
        """The source whose "eval" text is `split`'s: the corpus's own eval text,
        or the validation rows (`benchmarks.sweeps.backends.validation_split`)."""
        if split == "eval":
            return self.resolved
        if self._validation is None:
            from dataclasses import replace

            from benchmarks.sweeps.backends.validation_split import validation_corpus

            tokenizer = self.model.tokenizer
            corpus = validation_corpus(
                self.resolved.corpus,
                self.config.activation_tokens or self.config.training_tokens,
                lambda text: len(tokenizer(text)["input_ids"]),
            )
            self._validation = replace(self.resolved, corpus=corpus)
        return self._validation

    def absorption_setup(self) -> tuple[Any, Path] | str:
        """The TransformerLens view absorption and the probing evals run on (the
        blocks up to the hook; loaded once per process) and absorption's probe
        folder, or why there is none."""
        from saelens_aligned.pipeline.transformer_lens_view import (
            hook_layer,
            load_hooked_transformer,
        )

        source = self.resolved.source
        layer = hook_layer(source.hook)
        model_dir = Path(self.resolved.model_name)
        if layer is None or not (model_dir / "config.json").is_file():
            return (
                f"needs a local model directory and a residual-stream hook; this "
                f"sweep has model {self.resolved.model_name!r}, hook {source.hook!r}"
            )
        if self._absorption_model is None:
            self._absorption_model = load_hooked_transformer(
                model_dir, device=source.device, n_blocks=layer + 1
            )
        # One probe folder per sweep: every SAE is judged by the same probes.
        return self._absorption_model, self.out_dir / "absorption"

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_source_model(self.resolved)
            self._d_in = hook_width(self._model, self.config.hook)
            self._time_forward_passes(self._model)
            # Every SAE of the sweep is evaluated on the same held-out batches:
            # SAEBench's clean and zero-ablated passes run once per process.
            self.reference_passes = ReferencePassCache(
                self._model, reference_cache_bytes()
            ).install()
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

    @property
    def cache_dir(self) -> Path:
        """The sweep's activation cache (made on first use)."""
        if self._cache_dir is None:
            self.prepare()
        assert self._cache_dir is not None
        return self._cache_dir

    def prepare(self) -> None:
        self._phase = "activations"
        config = self.config
        self._cache_dir = ensure_activation_cache(
            self.resolved,
            self.model,
            self.d_in,
            config.activation_tokens or config.training_tokens,
            config.activation_seed,
            config.model_batch_size,
        )
        if config.eval.dead_window_tokens:
            self._heldout_dir = ensure_activation_cache(
                self.resolved,
                self.model,
                self.d_in,
                config.eval.dead_window_tokens,
                config.activation_seed,
                config.model_batch_size,
                split="eval",
            )

    @property
    def heldout_dir(self) -> Path | None:
        """The held-out activation cache of the long dead-latent window, if any."""
        if self.config.eval.dead_window_tokens and self._heldout_dir is None:
            self.prepare()
        return self._heldout_dir

    def activation_mean(self) -> torch.Tensor:
        """The mean of the training activation cache (float64, [d_in]): computed
        once per sweep and kept with gamma in the sweep folder
        (`benchmarks.records.activation_moments`)."""
        moments = read_activation_moments(self.out_dir)
        if moments is None:
            # Parallel workers: the first computes it, the others read it.
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(self.out_dir / ".activation_moments.lock"):
                moments = read_activation_moments(self.out_dir)
                if moments is None:
                    moments = activation_moments(
                        iter_cached_activations(self.cache_dir, self.d_in),
                        f"training activation cache {self.cache_dir.name}",
                    )
                    write_activation_moments(self.out_dir, moments)
        return moments.mean_tensor()

    def train(self, run: RunSpec, sae_dir: Path) -> None:
        config = self.config
        sae = initial_sae(
            run,
            self.d_in,
            config.training_steps,
            config.sparse_stock_step,
            self.activation_mean() if run.b_dec_init == "mean" else None,
        )
        train_sae(
            self.resolved,
            sae.cfg,
            config.training(run.seed, run.lr),
            self.model,
            sae_dir,
            # A worker process finds the cache its parent made.
            cached_activations=self.cache_dir,
            override_sae=sae,
        )

    def _absorption_for(
        self, run: RunSpec, settings: EvalSettings
    ) -> tuple[Any, Path] | str | None:
        if not settings.absorption:
            return None
        chosen = settings.absorption_sparsity_values
        if chosen is not None and run.sparsity_value not in chosen:
            return (
                f"run at {run.sparsity_param}={run.sparsity_value:g} only at "
                f"{chosen} in this sweep (eval.absorption_sparsity_values)"
            )
        return self.absorption_setup()

    def _probing_for(
        self, run: RunSpec, settings: EvalSettings
    ) -> tuple[Any, Path] | str | None:
        if not wanted(settings):
            return None
        chosen = settings.probing_sparsity_values
        if chosen is not None and run.sparsity_value not in chosen:
            return (
                f"run at {run.sparsity_param}={run.sparsity_value:g} only at "
                f"{chosen} in this sweep (eval.probing_sparsity_values)"
            )
        setup = self.absorption_setup()
        if isinstance(setup, str):
            return setup
        # One folder per sweep: every SAE is probed on the same activations.
        return setup[0], self.out_dir / "probing"

    def evaluate(
        self, run: RunSpec, sae_dir: Path, settings: EvalSettings
    ) -> RunResult:
        _ = self.model
        self._phase = "eval"
        result = lm_run_result(
            sae_dir,
            self.model,
            self.resolved_for(settings.split),
            settings,
            run.seed,
            run.run_id,
            self.heldout_dir if settings.dead_window_tokens else None,
            self._absorption_for(run, settings),
            self._probing_for(run, settings),
        )
        result.metrics["training"] = training_details(
            self.config.training(run.seed, run.lr), run.seed, result.sae_cfg_dict
        )
        result.unstructured["eval_split"] = settings.split
        return result
