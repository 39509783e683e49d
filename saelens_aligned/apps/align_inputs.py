"""The checks of an align run's inputs, before (or, for the hook's width, just
after) the model loads; each error names the flag and the fix."""

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import SAE

from saelens_aligned.alignment import ALIGNMENT_FORMS
from saelens_aligned.architectures import aligned_architectures
from saelens_aligned.errors import InputError
from saelens_aligned.io.pretrained import load_sae
from saelens_aligned.pipeline.models import hook_width

if TYPE_CHECKING:
    from saelens_aligned.apps.align import AlignConfig


class AlignInputError(InputError):
    """An align input is unusable; the message names it and the fix."""


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


def check_align_config(cfg: "AlignConfig") -> None:
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


def load_stock_sae(cfg: "AlignConfig") -> SAE[Any]:
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
