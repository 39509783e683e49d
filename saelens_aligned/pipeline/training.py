"""Training with SAELens' own runner: one runner-config builder, one `train_sae`.

Every SAE of this project (demo, align fine-tuning, benchmark sweeps) trains
through `LanguageModelSAETrainingRunner` with a config from `runner_config`, on
cached activations (`cached_activations`) or on the live model.
"""

import math
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from saelens_aligned.io.files import atomic_dir
from saelens_aligned.pipeline.progress import say
from saelens_aligned.pipeline.source import ResolvedSource
from saelens_aligned.pipeline.text import load_corpus_split

# SAELens' default window (steps without firing before a latent counts as dead,
# which switches TopK's AuxK loss on for it).
SAELENS_DEAD_FEATURE_WINDOW = 1000
# Runs shorter than four default windows get a window of a quarter of the run, so
# the dead-latent machinery (AuxK, dead counts) acts within the run.
DEAD_WINDOW_FRACTION = 0.25
# A string SAELens requires even when the text is passed as a dataset object.
LOCAL_DATASET_PATH = "saelens-aligned-local-text"
CHECKPOINTS_DIRNAME = "checkpoints"


@dataclass(frozen=True)
class TrainingSettings:
    """How an SAE is trained: the fields of SAELens' runner config we set.

    Attributes:
        training_tokens: Tokens trained on (one pass).
        train_batch_size_tokens: Tokens per optimizer step.
        lr: Adam learning rate.
        seed: Seed of the SAE initialisation and of the batch order.
        model_batch_size: Prompts per model forward pass (live activations).
        lr_scheduler_name: SAELens' scheduler ("constant", "cosineannealing", ...).
        lr_warm_up_steps: Linear warm-up steps.
        lr_decay_steps: Linear decay to `lr_end` (SAELens' default lr / 10) over
            the last this many steps; 0 for none.
        dead_feature_window: Steps without firing before a latent counts as dead
            (TopK-family AuxK acts on those). None: SAELens' 1000, or a quarter of
            the run if that is shorter (see `dead_window`).
        checkpoint_every_steps: Save a SAELens checkpoint every this many steps
            (`train_sae` puts them in `<out>/checkpoints/<samples seen>/`); 0 for
            none. Must divide the run length.
        shuffle_cached_rows: Read cached activation rows in an order drawn from
            `seed`. SAELens reads a cache in file order and shuffles only
            within its mixing buffer, so without this every seed sees the
            same stretch of text at the same step.
    """

    training_tokens: int
    train_batch_size_tokens: int = 1024
    lr: float = 5e-4
    seed: int = 42
    model_batch_size: int = 16
    lr_scheduler_name: str = "constant"
    lr_warm_up_steps: int = 0
    lr_decay_steps: int = 0
    dead_feature_window: int | None = None
    checkpoint_every_steps: int = 0
    shuffle_cached_rows: bool = False

    @property
    def training_steps(self) -> int:
        return self.training_tokens // self.train_batch_size_tokens

    @property
    def dead_window(self) -> int:
        """The dead-feature window this run uses, in steps."""
        if self.dead_feature_window is not None:
            return self.dead_feature_window
        scaled = max(1, int(self.training_steps * DEAD_WINDOW_FRACTION))
        return min(SAELENS_DEAD_FEATURE_WINDOW, scaled)

    @property
    def n_checkpoints(self) -> int:
        """SAELens' `n_checkpoints`: one every `checkpoint_every_steps` steps, the
        last before the final step (the final SAE is the run's own output)."""
        if not self.checkpoint_every_steps:
            return 0
        return self.training_steps // self.checkpoint_every_steps - 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dead_feature_window": self.dead_window}


def runner_config(
    resolved: ResolvedSource,
    sae_cfg: Any,
    settings: TrainingSettings,
    cached_activations: Path | None = None,
) -> Any:
    """SAELens' `LanguageModelSAERunnerConfig` for training `sae_cfg` on the
    source: from the activation cache `cached_activations`, or from the live model
    when None. No W&B, no checkpoints, no output folder (`train_sae` sets one)."""
    from sae_lens import LanguageModelSAERunnerConfig
    from sae_lens.config import LoggingConfig

    source = resolved.source
    corpus = resolved.corpus
    # SAELens' mixing buffer must hold at least one training batch.
    n_batches_in_buffer = max(
        4, math.ceil(2 * settings.train_batch_size_tokens / source.context_size)
    )
    return LanguageModelSAERunnerConfig(
        sae=sae_cfg,
        model_name=resolved.model_name,
        model_class_name=source.model_class,
        hook_name=source.hook,
        dataset_path=str(corpus.train) if corpus.hub else LOCAL_DATASET_PATH,
        dataset_trust_remote_code=False,
        use_cached_activations=cached_activations is not None,
        cached_activations_path=str(cached_activations)
        if cached_activations is not None
        else None,
        is_dataset_tokenized=False,
        streaming=corpus.hub,
        context_size=source.context_size,
        training_tokens=settings.training_tokens,
        train_batch_size_tokens=settings.train_batch_size_tokens,
        n_batches_in_buffer=n_batches_in_buffer,
        store_batch_size_prompts=settings.model_batch_size,
        lr=settings.lr,
        lr_scheduler_name=settings.lr_scheduler_name,
        lr_warm_up_steps=settings.lr_warm_up_steps,
        lr_decay_steps=settings.lr_decay_steps,
        dead_feature_window=settings.dead_window,
        seed=settings.seed,
        device=source.device,
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=settings.n_checkpoints,
        checkpoint_path=None,
        output_path=None,
        verbose=False,
    )


def train_sae(
    resolved: ResolvedSource,
    sae_cfg: Any,
    settings: TrainingSettings,
    model: Any,
    out: Path,
    cached_activations: Path | None = None,
    override_sae: Any = None,
) -> Path:
    """Train with SAELens' runner and save the SAE as a SAELens folder at `out`
    (written whole: a temporary sibling swapped in at the end), its checkpoints
    (`settings.checkpoint_every_steps`) in `out/checkpoints/`. `override_sae`
    trains that SAE (fine-tuning, or an initialisation built by the caller)
    instead of a new one."""
    from sae_lens import LanguageModelSAETrainingRunner

    cfg = runner_config(resolved, sae_cfg, settings, cached_activations)
    torch.manual_seed(settings.seed)
    say(
        f"Training {sae_cfg.architecture()} (d_sae {sae_cfg.d_sae}, "
        f"{settings.training_steps} steps) ..."
    )
    # SAELens opens the text dataset even when it reads cached activations.
    text = None if resolved.corpus.hub else load_corpus_split(resolved.corpus, "train")
    # SAELens installs its own SIGINT/SIGTERM handlers for training; put ours back.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with atomic_dir(out) as partial:
        cfg.output_path = str(partial)
        if settings.n_checkpoints:
            cfg.checkpoint_path = str(partial / CHECKPOINTS_DIRNAME)
        try:
            runner = LanguageModelSAETrainingRunner(
                cfg,
                override_dataset=text,
                override_model=model,
                override_sae=override_sae,
            )
            if settings.shuffle_cached_rows:
                order_cached_rows(runner.activations_store, settings.seed)
            runner.run()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return out


def order_cached_rows(store: Any, seed: int) -> None:
    """Let `store` (SAELens' `ActivationsStore`) read its cached activation rows
    in an order drawn from `seed` (`TrainingSettings.shuffle_cached_rows`); a
    store reading live text is left as it is."""
    if store.cached_activation_dataset is not None:
        store.cached_activation_dataset = store.cached_activation_dataset.shuffle(
            seed=seed
        )


def in_process_trainer_config(
    total_training_samples: int,
    batch: int,
    device: str = "cpu",
    lr: float = 3e-4,
    **overrides: Any,
) -> Any:
    """A `SAETrainerConfig` for driving SAELens' `SAETrainer` directly on batches
    the caller feeds it (no runner, model or dataset): constant `lr`, no
    checkpoints, no W&B. `overrides` are further SAETrainerConfig fields."""
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    fields: dict[str, Any] = {
        "n_checkpoints": 0,
        "checkpoint_path": None,
        "save_final_checkpoint": False,
        "total_training_samples": total_training_samples,
        "device": device,
        "autocast": False,
        "lr": lr,
        "lr_end": lr,
        "lr_scheduler_name": "constant",
        "lr_warm_up_steps": 0,
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "lr_decay_steps": 0,
        "n_restart_cycles": 1,
        "train_batch_size_samples": batch,
        "dead_feature_window": SAELENS_DEAD_FEATURE_WINDOW,
        "feature_sampling_window": 2000,
        "logger": LoggingConfig(log_to_wandb=False),
    }
    return SAETrainerConfig(**{**fields, **overrides})
