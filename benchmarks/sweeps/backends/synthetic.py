"""Synthetic sweeps: SAELens' ground-truth model, made once per sweep, one SAE per
run, ground-truth metrics from SAELens' `eval_sae_on_synthetic_data`.

Layout under the sweep folder (besides what `benchmarks.sweeps.sweep` writes):
    synthetic_model/            the `SyntheticModel` (SAELens' save format), built
                                from `config.synthetic_model` with its own seed
    synthetic_data/eval.safetensors    the evaluation samples (every run's)
    synthetic_data/validation.safetensors  the learning-rate grid's samples
                                (their own seed: `benchmarks.sweeps.backends.validation_split`)
    synthetic_data/train.safetensors   the training samples, where pre-generated

Every file and folder appears under its final name only when complete
(`saelens_aligned.io.files`), so a killed sweep never leaves a half model or data
file.

**Why the data is made once.** Drawing samples from a model with a hierarchy costs
as much as an SAE training step on CPU. Measured with OMP_NUM_THREADS=1 on this
project's 2 shared cores (4096 features, hidden 256, hierarchy 32 x 4 x depth 3,
rank-25 correlations): 0.11 s to sample 1024 ground-truth feature vectors plus
0.02 s to map them to activations, against 0.09-0.12 s for one training step of
a d_sae 1024 TopK / BatchTopK / ReLU SAE on the same batch. Sampling live would
double every CPU run. So on CPU `prepare` draws the training samples once, stores
the feature activations sparse (a few tens of MB), and every run trains on those
same samples, each seed in its own order. On an accelerator sampling is cheap and
200M samples could not be stored, so runs sample live there (seeded by the run's
seed). The evaluation samples are always drawn once (seed `activation_seed + 1`)
and shared by every run, so every SAE is scored on identical data.
"""

import copy
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from benchmarks.records.activation_moments import (
    activation_moments,
    read_activation_moments,
    write_activation_moments,
)
from benchmarks.sweeps.backends.base import (
    HUB_EVALS,
    RunResult,
    meta_structure_metrics,
    training_details,
)
from benchmarks.sweeps.config import EvalSettings, SweepConfig
from benchmarks.sweeps.runs import RunSpec, initial_sae
from saelens_aligned.explained_variance import SAELENS_CALCULATOR
from saelens_aligned.io.files import atomic_dir, atomic_file
from saelens_aligned.pipeline.eval_moments import RECORD_KEY
from saelens_aligned.pipeline.training import CHECKPOINTS_DIRNAME

MODEL_DIRNAME = "synthetic_model"
DATA_DIRNAME = "synthetic_data"
# Stored training samples above this size are not pre-generated: runs sample live.
PREGENERATE_MAX_BYTES = 2 * 1024**3
NO_LM_REASON = "synthetic data: no language model"
# Evals a language-model sweep runs that have no meaning without a language model.
LM_ONLY_EVALS = ("core_ce_loss", "core_kl_div", "absorption", *HUB_EVALS)


# --------------------------------------------------------------------------- #
# The ground-truth model
# --------------------------------------------------------------------------- #


def synthetic_model_config(data: dict[str, Any]) -> Any:
    """`SyntheticModelConfig.from_dict` on a copy (SAELens' nested `from_dict`s
    may consume keys of the dict they are given)."""
    from sae_lens.synthetic import SyntheticModelConfig

    return SyntheticModelConfig.from_dict(copy.deepcopy(data))


def load_or_build_synthetic_model(
    model_config: dict[str, Any], path: Path, device: str = "cpu"
) -> Any:
    """The synthetic model saved at `path` if it was built from `model_config`,
    else build it (seeded by the config) and save it there first."""
    from sae_lens.synthetic import SyntheticModel
    from sae_lens.synthetic.synthetic_model import SYNTHETIC_MODEL_CONFIG_FILENAME

    cfg = synthetic_model_config(model_config)
    wanted = json.loads(json.dumps(cfg.to_dict()))
    saved = path / SYNTHETIC_MODEL_CONFIG_FILENAME
    if saved.exists() and json.loads(saved.read_text()) == wanted:
        return SyntheticModel.load_from_disk(path, device=device)
    model = SyntheticModel(cfg, device=device)
    # Built whole beside the final name, then swapped in: a parallel worker reading
    # `path` sees the old complete model or the new one, never a gap.
    with atomic_dir(path) as partial:
        model.save(partial)
    return model


# --------------------------------------------------------------------------- #
# Stored samples
# --------------------------------------------------------------------------- #


@dataclass
class StoredSamples:
    """Ground-truth feature activations of `n` samples, stored sparse by row.

    Args:
        offsets: Sample i's nonzeros are entries offsets[i]:offsets[i+1]. [n + 1]
        feature_index: Feature of each nonzero. [nnz]
        value: Its activation. [nnz]
        num_features: Features of the synthetic model.
    """

    offsets: torch.Tensor
    feature_index: torch.Tensor
    value: torch.Tensor
    num_features: int

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @classmethod
    @torch.no_grad()
    def draw(
        cls, model: Any, n_samples: int, seed: int, batch_size: int = 1024
    ) -> "StoredSamples":
        """`n_samples` samples of `model`'s activation generator, seeded."""
        generator = model.activation_generator
        torch.manual_seed(seed)
        lengths, features, values = [], [], []
        for start in range(0, n_samples, batch_size):
            acts_BF = generator.sample(min(batch_size, n_samples - start))
            rows, cols = acts_BF.nonzero(as_tuple=True)
            lengths.append(torch.bincount(rows, minlength=acts_BF.shape[0]).cpu())
            features.append(cols.to(torch.int32).cpu())
            values.append(acts_BF[rows, cols].float().cpu())
        offsets = torch.zeros(n_samples + 1, dtype=torch.int64)
        offsets[1:] = torch.cat(lengths).cumsum(0)
        return cls(
            offsets, torch.cat(features), torch.cat(values), model.cfg.num_features
        )

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Samples `index` as a sparse COO tensor. [len(index), num_features]"""
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts
        row_of_entry = torch.repeat_interleave(torch.arange(index.numel()), lengths)
        first_entry = torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)
        entries = torch.repeat_interleave(starts, lengths) + (
            torch.arange(row_of_entry.numel()) - first_entry
        )
        indices = torch.stack([row_of_entry, self.feature_index[entries].long()])
        return torch.sparse_coo_tensor(
            indices,
            self.value[entries],
            (index.numel(), self.num_features),
            check_invariants=False,  # built from valid offsets above
        )

    def save(self, path: Path) -> None:
        with atomic_file(path) as partial:
            save_file(
                {
                    "offsets": self.offsets,
                    "feature_index": self.feature_index,
                    "value": self.value,
                },
                str(partial),
                metadata={"num_features": str(self.num_features)},
            )

    @classmethod
    def load(cls, path: Path) -> "StoredSamples":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            num_features = int(f.metadata()["num_features"])
        tensors = load_file(str(path))
        return cls(
            tensors["offsets"], tensors["feature_index"], tensors["value"], num_features
        )


class ReplayedActivations:
    """Stands in for SAELens' `ActivationGenerator` in `eval_sae_on_synthetic_data`:
    `sample(n)` returns the next `n` stored samples, dense, in order."""

    def __init__(self, samples: StoredSamples, device: str) -> None:
        self.samples = samples
        self.device = device
        self.position = 0

    def sample(self, batch_size: int) -> torch.Tensor:
        index = torch.arange(self.position, self.position + batch_size)
        self.position += batch_size
        return self.samples.rows(index).to(self.device).to_dense()


def stored_batches(
    samples: StoredSamples, feature_dict: Any, batch_size: int, seed: int, device: str
) -> Iterator[torch.Tensor]:
    """Hidden activations of the stored samples in batches, in an order drawn from
    `seed` (a fresh order every pass over the data)."""
    order_rng = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(samples), generator=order_rng)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            acts = samples.rows(order[start : start + batch_size]).to(device)
            with torch.no_grad():
                hidden_BD = feature_dict(acts)
            yield hidden_BD


# --------------------------------------------------------------------------- #
# The backend
# --------------------------------------------------------------------------- #


def ground_truth_metrics(result: Any, d_sae: int) -> dict[str, dict[str, Any]]:
    """Metric groups (records layout) of a `SyntheticDataEvalResult`."""
    dead = int(result.dead_latents)
    return {
        "ground_truth": {
            "mcc": result.mcc,
            "uniqueness": result.uniqueness,
            "f1": result.classification.f1_score,
            "precision": result.classification.precision,
            "recall": result.classification.recall,
            "dead_latents": dead,
            "shrinkage": result.shrinkage,
            "true_l0": result.true_l0,
        },
        # SAELens' synthetic eval computes it about the mean (its
        # ExplainedVarianceCalculator): the same number under both keys.
        "reconstruction_quality": {
            "explained_variance": result.explained_variance,
            RECORD_KEY: result.explained_variance,
        },
        "sparsity": {"l0": result.sae_l0},
        "misc": {"frac_alive": 1.0 - dead / d_sae, "frac_dead_latents": dead / d_sae},
    }


class SyntheticBackend:
    """Runs of a `synthetic` sweep. The ground-truth model is built once per sweep
    (cached in the sweep folder) and loaded once per process."""

    def __init__(self, config: SweepConfig, out_dir: Path) -> None:
        if not config.synthetic_model:
            raise ValueError("A synthetic sweep needs `synthetic_model` in its config.")
        self.config = config
        self.out_dir = Path(out_dir)
        # Parse now: a bad model config fails before anything is built.
        self.model_cfg = synthetic_model_config(config.synthetic_model)
        self._model: Any = None
        self._pregenerates: bool | None = None
        self._stored: dict[str, StoredSamples] = {}

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_or_build_synthetic_model(
                self.config.synthetic_model or {},
                self.out_dir / MODEL_DIRNAME,
                self.config.device,
            )
            self._model.feature_dict.eval()
        return self._model

    @property
    def training_samples(self) -> int:
        return self.config.training_steps * self.config.train_batch_size_tokens

    @property
    def data_dir(self) -> Path:
        return self.out_dir / DATA_DIRNAME

    def pregenerates(self) -> bool:
        """Whether training samples are drawn once and stored (CPU, and small
        enough to store), rather than drawn live in every run."""
        if self.config.device != "cpu":
            return False
        if self._pregenerates is None:
            # True L0 measured on the evaluation samples (firing probabilities
            # under a hierarchy are conditional on the parent, so their sum is
            # not the L0); int32 feature index + float32 value per nonzero.
            eval_samples = self.eval_samples()
            true_l0 = eval_samples.value.numel() / max(len(eval_samples), 1)
            size = self.training_samples * true_l0 * 8
            self._pregenerates = size <= PREGENERATE_MAX_BYTES
        return self._pregenerates

    def _samples(self, name: str, n_samples: int, seed: int) -> StoredSamples:
        """The stored samples `name`, drawn (and saved) on first use."""
        if name in self._stored:
            return self._stored[name]
        path = self.data_dir / f"{name}.safetensors"
        samples = StoredSamples.load(path) if path.exists() else None
        if samples is None or len(samples) != n_samples:
            samples = StoredSamples.draw(
                self.model, n_samples, seed, self.config.train_batch_size_tokens
            )
            self.data_dir.mkdir(parents=True, exist_ok=True)
            samples.save(path)
        self._stored[name] = samples
        return samples

    def eval_samples(self) -> StoredSamples:
        return self._samples(
            "eval",
            self.config.eval.synthetic_eval_samples,
            self.config.activation_seed + 1,
        )

    def validation_samples(self) -> StoredSamples:
        """As many samples as eval's, of their own seed: what the learning-rate
        grid is scored on (`benchmarks.sweeps.backends.validation_split`)."""
        from benchmarks.sweeps.backends.validation_split import validation_seed

        return self._samples(
            "validation",
            self.config.eval.synthetic_eval_samples,
            validation_seed(self.config.activation_seed),
        )

    def train_samples(self) -> StoredSamples:
        return self._samples(
            "train", self.training_samples, self.config.activation_seed
        )

    def prepare(self) -> None:
        _ = self.model
        self.eval_samples()
        if self.pregenerates():
            self.train_samples()

    def _data(self, data_seed: int) -> Iterator[torch.Tensor]:
        from sae_lens.synthetic.training import SyntheticActivationIterator

        batch_size = self.config.train_batch_size_tokens
        if self.pregenerates():
            return stored_batches(
                self.train_samples(),
                self.model.feature_dict,
                batch_size,
                data_seed,
                self.config.device,
            )
        # Live: the stream continues the data seed's RNG (see `train`).
        return SyntheticActivationIterator(
            self.model.feature_dict, self.model.activation_generator, batch_size
        )

    def activation_mean(self) -> torch.Tensor:
        """The mean of one run's worth of training activations, in the sweep's
        own data order (float64, [hidden_dim]): computed once per sweep and kept
        with gamma in the sweep folder (`benchmarks.records.activation_moments`)."""
        moments = read_activation_moments(self.out_dir)
        if moments is None:
            torch.manual_seed(self.config.activation_seed)
            batches = itertools.islice(
                self._data(self.config.activation_seed), self.config.training_steps
            )
            moments = activation_moments(batches, "synthetic training samples")
            write_activation_moments(self.out_dir, moments)
        return moments.mean_tensor()

    def train(self, run: RunSpec, sae_dir: Path) -> None:
        from sae_lens.config import LoggingConfig
        from sae_lens.constants import SPARSITY_FILENAME
        from sae_lens.synthetic.synthetic_sae_runner import (
            RUNNER_CONFIG_FILENAME,
            SyntheticSAERunnerConfig,
        )
        from sae_lens.training.sae_trainer import SAETrainer

        import saelens_aligned  # noqa: F401  (registers the aligned architectures)

        settings = self.config.training(run.seed, run.lr)
        sae = initial_sae(
            run,
            self.model_cfg.hidden_dim,
            self.config.training_steps,
            self.config.sparse_stock_step,
            self.activation_mean() if run.b_dec_init == "mean" else None,
        )
        # SyntheticSAERunner's settings, so runs match SAELens' synthetic training;
        # the trainer is driven directly to feed it the stored samples.
        runner_cfg = SyntheticSAERunnerConfig(
            synthetic_model=self.model_cfg,
            sae=sae.cfg,
            training_samples=self.training_samples,
            batch_size=self.config.train_batch_size_tokens,
            lr=run.lr,
            lr_decay_steps=settings.lr_decay_steps,
            dead_feature_window=settings.dead_window,
            n_checkpoints=settings.n_checkpoints,
            device=self.config.device,
            checkpoint_path=None,
            output_path=None,
            logger=LoggingConfig(log_to_wandb=False),
        )
        data = self._data(settings.seed)
        torch.manual_seed(settings.seed)
        with atomic_dir(sae_dir) as partial:
            trainer_cfg = runner_cfg.to_sae_trainer_config()
            if settings.n_checkpoints:
                trainer_cfg.checkpoint_path = str(partial / CHECKPOINTS_DIRNAME)
            trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=data)
            sae = trainer.fit()
            sae.save_inference_model(str(partial))
            save_file(
                {"sparsity": trainer.log_feature_sparsity}, partial / SPARSITY_FILENAME
            )
            (partial / RUNNER_CONFIG_FILENAME).write_text(
                json.dumps(runner_cfg.to_dict(), indent=2)
            )

    def evaluate(
        self, run: RunSpec, sae_dir: Path, settings: EvalSettings
    ) -> RunResult:
        from sae_lens.synthetic import eval_sae_on_synthetic_data

        from saelens_aligned.diagnostics import sae_alignment_summary
        from saelens_aligned.io import load_sae_dir

        device = self.config.device
        sae = load_sae_dir(sae_dir, device=device)
        samples = (
            self.validation_samples()
            if settings.split == "validation"
            else self.eval_samples()
        )
        result = eval_sae_on_synthetic_data(
            sae=sae,
            feature_dict=self.model.feature_dict,
            activations_generator=ReplayedActivations(samples, device),  # type: ignore[arg-type]
            num_samples=len(samples),
            batch_size=self.config.train_batch_size_tokens,
        )
        metrics = ground_truth_metrics(result, sae.cfg.d_sae)
        metrics["training"] = training_details(
            self.config.training(run.seed, run.lr), run.seed, sae.cfg.to_dict()
        )
        metrics["eval_windows"] = {"synthetic_eval_samples": len(samples)}
        summary = sae_alignment_summary(sae).to_dict()
        metrics["alignment"] = {
            k: v for k, v in summary.items() if not k.startswith("histogram")
        }
        skipped = {name: NO_LM_REASON for name in LM_ONLY_EVALS}
        if settings.meta_structure:
            metrics["meta_structure"] = meta_structure_metrics(
                sae,
                run.seed,
                run.run_id,
                settings.meta_structure_train_steps,
                device,
            )
        else:
            skipped["meta_structure"] = (
                "disabled in the sweep config (eval.meta_structure)"
            )
        return RunResult(
            metrics=_finite_or_none(metrics),
            unstructured={
                "alignment_histogram": {
                    "counts": summary["histogram_counts"],
                    "edges": summary["histogram_edges"],
                },
                "synthetic_eval_samples": len(samples),
                RECORD_KEY: SAELENS_CALCULATOR,
                "training_data": "stored" if self.pregenerates() else "live",
                "eval_split": settings.split,
                "skipped_evals": skipped,
                "sae_dir": str(sae_dir),
            },
            sae_cfg_dict=sae.cfg.to_dict(),
        )


def _finite_or_none(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """NaN and inf as None (strict JSON); records read None as missing."""
    return {
        group: {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()
        }
        for group, values in metrics.items()
    }
