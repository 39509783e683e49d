"""An align run's inputs: its config (`AlignConfig`) and their checks, before (or,
for the hook's width, just after) the model loads; each error names the flag and
the fix."""

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import SAE

from saelens_aligned.alignment import ALIGNMENT_FORMS, AlignmentForm
from saelens_aligned.architectures import aligned_architectures
from saelens_aligned.errors import InputError
from saelens_aligned.io.pretrained import load_sae
from saelens_aligned.pipeline.evaluation import EvalBudget
from saelens_aligned.pipeline.models import hook_width
from saelens_aligned.pipeline.source import Source
from saelens_aligned.pipeline.training import TrainingSettings


class AlignInputError(InputError):
    """An align input is unusable; the message names it and the fix."""


@dataclass
class AlignConfig:
    """Settings of one align run.

    Args:
        source: the stock SAE: SAELens dir, HF-layout folder, release or HF repo id.
        output_dir: where report.json, report.md, alignment_histograms.png and the
            converted and fine-tuned SAEs are written.
        dataset: local .txt/.jsonl/.json files, or one Hugging Face dataset path.
        sae_id: which SAE of a folder, release or repo.
        alignment: "projected" (keep the decoder; default) or "tied" (re-derive
            the decoder from the encoder).
        architecture: aligned architecture to convert into; default: the aligned
            variant of the SAE's own architecture.
        model_name: model to run; default: the SAE's metadata model_name, else the
            embedded SmolLM2-135M-Instruct.
        model_class_name: SAELens model class; default: the SAE's metadata, else
            "AutoModelForCausalLM".
        hook_name: default: the SAE's metadata hook_name.
        text_column: the dataset column holding text.
        context_size: tokens per sequence.
        training_tokens: fine-tuning budget; 0 skips fine-tuning.
        train_batch_size_tokens: tokens per training step.
        lr: Adam learning rate of the fine-tuning.
        eval_batches: batches of `eval_batch_size_prompts` sequences for explained
            variance, L0 and dead fraction, per stage (the same sequences for every
            stage; needs the model only up to the hook).
        eval_ce_batches: batches for the CE-loss and KL scores; each costs three
            full forward passes (clean, SAE spliced in, zero-ablated), the
            dominant cost on CPU.
        eval_batch_size_prompts: sequences per evaluation batch.
        eval_fraction: fraction of dataset rows held out for evaluation only
            (a fixed-seed split, the same for every run on that dataset).
        device: torch device for model and SAE.
        seed: seed of the fine-tuning (batch order).
        training_overrides: extra training-config fields of the aligned SAE (e.g.
            l1_coefficient for standard SAEs whose metadata lacks it).
    """

    source: str
    output_dir: str
    dataset: Sequence[str]
    sae_id: str | None = None
    alignment: AlignmentForm = "projected"
    architecture: str | None = None
    model_name: str | None = None
    model_class_name: str | None = None
    hook_name: str | None = None
    text_column: str = "text"
    context_size: int = 128
    training_tokens: int = 200_000
    train_batch_size_tokens: int = 1024
    lr: float = 3e-4
    eval_batches: int = 16
    eval_ce_batches: int = 4
    eval_batch_size_prompts: int = 8
    eval_fraction: float = 0.1
    device: str = "cpu"
    seed: int = 42
    training_overrides: dict[str, Any] = field(default_factory=dict)

    def lm_source(self, sae: SAE[Any]) -> Source:
        """The model, hook and text: given, else the SAE's metadata, else the
        embedded SmolLM2-135M-Instruct."""
        meta = sae.cfg.metadata
        hook = self.hook_name or meta.get("hook_name")
        if not hook:
            raise AlignInputError(
                "The SAE's metadata has no hook_name: pass --hook-name."
            )
        model = self.model_name or meta.get("model_name")
        model_class = self.model_class_name or (
            meta.get("model_class_name") if not self.model_name else None
        )
        return Source(
            model=model,
            model_class=model_class or "AutoModelForCausalLM",
            hook=hook,
            dataset=",".join(str(d) for d in self.dataset),
            text_column=self.text_column,
            eval_fraction=self.eval_fraction,
            context_size=self.context_size,
            device=self.device,
        )

    def training(self) -> TrainingSettings:
        return TrainingSettings(
            training_tokens=max(self.training_tokens, self.train_batch_size_tokens),
            train_batch_size_tokens=self.train_batch_size_tokens,
            lr=self.lr,
            seed=self.seed,
            model_batch_size=self.eval_batch_size_prompts,
        )

    def eval_budget(self) -> EvalBudget:
        return EvalBudget(
            batch_size_prompts=self.eval_batch_size_prompts,
            n_eval_reconstruction_batches=self.eval_ce_batches,
            n_eval_sparsity_variance_batches=self.eval_batches,
        )


# Settings that must be positive (flag, AlignConfig field), and those that may be 0.
_POSITIVE = (
    ("--context-size", "context_size"),
    ("--train-batch-size-tokens", "train_batch_size_tokens"),
    ("--lr", "lr"),
    ("--eval-batches", "eval_batches"),
    ("--eval-batch-size-prompts", "eval_batch_size_prompts"),
)
_NON_NEGATIVE = (
    ("--tokens", "training_tokens"),
    ("--eval-ce-batches", "eval_ce_batches"),
)


def check_align_config(cfg: AlignConfig) -> None:
    """The checks that need nothing loaded, each naming the flag and the fix."""
    for flag, name in _POSITIVE:
        value = getattr(cfg, name)
        if not (isinstance(value, int | float) and value > 0):
            raise AlignInputError(f"{flag} {value!r}: must be a positive number.")
    for flag, name in _NON_NEGATIVE:
        value = getattr(cfg, name)
        if not (isinstance(value, int) and value >= 0):
            raise AlignInputError(
                f"{flag} {value!r}: must be a whole number >= 0 (0 turns it off)."
            )
    if not 0 < cfg.eval_fraction < 1:
        raise AlignInputError(
            f"--eval-fraction {cfg.eval_fraction!r}: must lie strictly between 0 "
            "and 1 (the share of dataset rows held out for evaluation)."
        )
    if cfg.alignment not in ALIGNMENT_FORMS:
        raise AlignInputError(
            f"--alignment {cfg.alignment!r}: choose one of {list(ALIGNMENT_FORMS)}."
        )
    names = aligned_architectures()
    if cfg.architecture is not None and cfg.architecture not in names:
        raise AlignInputError(
            f"--architecture {cfg.architecture!r} is not an aligned architecture; "
            f"choose from {sorted(names)}."
        )
    if not cfg.dataset:
        raise AlignInputError("--dataset: give at least one file or dataset path.")
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise AlignInputError(
            f"--output-dir {str(out)!r} is a file; choose a folder (new or existing)."
        )


def check_training_overrides(architecture: str, overrides: dict[str, Any]) -> None:
    """Every --set KEY must be a field of the aligned architecture's config."""
    config_class = get_sae_training_class(architecture)[1]
    known = config_class.__dataclass_fields__
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise AlignInputError(
            f"--set {unknown[0]}: not a field of {config_class.__name__} "
            f"({architecture}).{hint}"
        )


def load_stock_sae(cfg: AlignConfig) -> SAE[Any]:
    """The SAE to convert; an unusable source is reported as bad input."""
    try:
        return load_sae(cfg.source, cfg.sae_id, device=cfg.device).sae
    except InputError:
        raise
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise AlignInputError(
            f"source {cfg.source!r}: {e} Pass a SAELens SAE folder (cfg.json + "
            "sae_weights.safetensors), a release name or a Hugging Face repo id."
        ) from e


def check_hook_width(sae: SAE[Any], model: Any, hook: str) -> None:
    d_in = hook_width(model, hook)
    if d_in != sae.cfg.d_in:
        raise AlignInputError(
            f"--hook-name {hook!r}: its activations are {d_in} wide but the SAE's "
            f"d_in is {sae.cfg.d_in}; pass the hook (and --model) it was trained on."
        )
