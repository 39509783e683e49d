"""Reject bad training configurations before any model or dataset loads.

`validate_runner_config` reads only the config, the model's config.json (for a
local model directory) and file metadata, so a typo costs a second, not a model
load. Every error names the field, the bad value and what is accepted.
"""

import difflib
import json
import math
import re
from pathlib import Path
from typing import Any

from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY
from sae_lens.util import str_to_dtype


class ConfigError(ValueError):
    """An invalid configuration value, raised before any expensive work."""

    def __init__(self, field: str, value: Any, accepted: str, hint: str = ""):
        self.field = field
        message = f"{field}={value!r} is invalid: expected {accepted}."
        super().__init__(f"{message} {hint}".strip())


def check_architecture(architecture: str) -> None:
    if architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise ConfigError(
            "architecture",
            architecture,
            f"one of {sorted(SAE_TRAINING_CLASS_REGISTRY)}",
            "Import saelens_aligned to register the aligned variants.",
        )


def _check_positive(field: str, value: Any, integer: bool = False) -> None:
    kind = "a positive integer" if integer else "a positive number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConfigError(field, value, kind)


def _check_nonnegative(field: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(field, value, "a finite number >= 0")


# Coefficient fields of SAELens' training configs (and ours) that must be >= 0.
COEFFICIENT_FIELDS = (
    "l1_coefficient",
    "l0_coefficient",
    "aux_loss_coefficient",
    "pre_act_loss_coefficient",
    "topk_threshold_lr",
)


def validate_sae_config(sae_cfg: Any) -> None:
    """Checks of the SAE part of a config."""
    check_architecture(sae_cfg.architecture())
    _check_positive("d_in", sae_cfg.d_in, integer=True)
    _check_positive("d_sae", sae_cfg.d_sae, integer=True)
    k = getattr(sae_cfg, "k", None)
    if k is not None and not (
        isinstance(k, (int, float)) and math.isfinite(k) and 0 < k <= sae_cfg.d_sae
    ):
        raise ConfigError("k", k, f"a number in (0, d_sae] = (0, {sae_cfg.d_sae}]")
    for field in COEFFICIENT_FIELDS:
        value = getattr(sae_cfg, field, None)
        if value is not None:
            _check_nonnegative(field, value)
    try:
        str_to_dtype(sae_cfg.dtype)
    except (ValueError, KeyError) as e:
        raise ConfigError(
            "dtype", sae_cfg.dtype, "one of float32, float64, float16, bfloat16"
        ) from e


def validate_runner_config(cfg: Any) -> None:
    """Checks of a LanguageModelSAERunnerConfig that need no model or data load."""
    validate_sae_config(cfg.sae)
    _check_positive("lr", cfg.lr)
    _check_positive("context_size", cfg.context_size, integer=True)
    _check_positive(
        "train_batch_size_tokens", cfg.train_batch_size_tokens, integer=True
    )
    if cfg.training_tokens < cfg.train_batch_size_tokens:
        raise ConfigError(
            "training_tokens",
            cfg.training_tokens,
            f"at least one batch (train_batch_size_tokens={cfg.train_batch_size_tokens})",
        )
    if cfg.n_batches_in_buffer * cfg.context_size < cfg.train_batch_size_tokens:
        raise ConfigError(
            "n_batches_in_buffer",
            cfg.n_batches_in_buffer,
            f"n_batches_in_buffer * context_size >= train_batch_size_tokens "
            f"({cfg.train_batch_size_tokens})",
        )
    try:
        str_to_dtype(cfg.dtype)
    except (ValueError, KeyError) as e:
        raise ConfigError(
            "dtype", cfg.dtype, "one of float32, float64, float16, bfloat16"
        ) from e
    if not cfg.use_cached_activations:
        check_dataset_path(cfg.dataset_path)
    check_model_hook(cfg.model_name, cfg.model_class_name, cfg.hook_name, cfg.sae.d_in)
    if cfg.output_path is not None:
        check_output_path(Path(cfg.output_path), cfg.sae.to_dict())


def check_dataset_path(dataset_path: str) -> None:
    if not dataset_path:
        raise ConfigError(
            "dataset_path", dataset_path, "a Hugging Face dataset name or local files"
        )
    looks_local = (
        dataset_path.startswith((".", "/", "~")) or Path(dataset_path).exists()
    )
    if looks_local:
        path = Path(dataset_path).expanduser()
        if not path.exists():
            raise ConfigError(
                "dataset_path", dataset_path, "an existing file or directory"
            )
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        )
        if not files or all(p.stat().st_size == 0 for p in files):
            raise ConfigError("dataset_path", dataset_path, "a non-empty dataset")


# Module paths of a Llama-style HF model that carry a d_model-wide output.
_RESIDUAL_WIDTH_HOOK = re.compile(
    r"^model\.(layers\.\d+(\.(self_attn\.o_proj|mlp|mlp\.down_proj))?|embed_tokens|norm)$"
)


def hf_hook_names(model_config: dict[str, Any]) -> dict[str, int]:
    """Hook names of a decoder-only HF model (Llama layout), with their widths."""
    d_model = model_config["hidden_size"]
    names: dict[str, int] = {"model.embed_tokens": d_model, "model.norm": d_model}
    for layer in range(model_config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}"
        names[prefix] = d_model
        names[f"{prefix}.mlp"] = d_model
        names[f"{prefix}.mlp.down_proj"] = d_model
        names[f"{prefix}.self_attn.o_proj"] = d_model
    return names


def check_model_hook(
    model_name: str, model_class_name: str, hook_name: str, d_in: int
) -> None:
    """For a local AutoModelForCausalLM directory, check the hook and its width.

    Names from the hub or other model classes are checked when the model loads
    (their configs are not readable offline without loading).
    """
    path = Path(model_name).expanduser()
    looks_local = model_name.startswith((".", "/", "~")) or path.exists()
    if not looks_local:
        return
    if not path.is_dir():
        raise ConfigError("model_name", model_name, "an existing local model directory")
    config_file = path / "config.json"
    if not config_file.exists():
        raise ConfigError(
            "model_name", model_name, "a model directory holding config.json"
        )
    if model_class_name != "AutoModelForCausalLM":
        return
    model_config = json.loads(config_file.read_text())
    if "hidden_size" not in model_config or "num_hidden_layers" not in model_config:
        return
    names = hf_hook_names(model_config)
    if hook_name not in names and not _RESIDUAL_WIDTH_HOOK.match(hook_name):
        nearby = difflib.get_close_matches(hook_name, list(names), n=5, cutoff=0.5)
        raise ConfigError(
            "hook_name",
            hook_name,
            "a module path of the model such as model.layers.3",
            f"Nearby valid names: {nearby or sorted(names)[:5]}.",
        )
    if hook_name in names and names[hook_name] != d_in:
        raise ConfigError("d_in", d_in, f"the width of {hook_name}, {names[hook_name]}")


def check_output_path(output_path: Path, sae_cfg_dict: dict[str, Any]) -> None:
    """An output folder that already holds a different run is refused."""
    cfg_file = output_path / "cfg.json"
    if not cfg_file.exists():
        return
    try:
        existing = json.loads(cfg_file.read_text())
    except json.JSONDecodeError:
        existing = {}
    keys = ("architecture", "d_in", "d_sae")
    if any(existing.get(k) != sae_cfg_dict.get(k) for k in keys):
        raise ConfigError(
            "output_path",
            str(output_path),
            "a new folder, or one holding the same run",
            f"It holds a {existing.get('architecture')} SAE (d_sae={existing.get('d_sae')}). "
            "Choose another output_path or delete that folder.",
        )
