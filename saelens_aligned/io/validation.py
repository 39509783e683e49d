"""Reject bad training configurations before any model or dataset loads.

`validate_runner_config` reads only the config, the model's config.json (for a
local model directory) and file metadata, so a typo costs a second, not a model
load. Every error names the field, the bad value and what is accepted.
"""

import difflib
import json
import re
from pathlib import Path
from typing import Any

from saelens_aligned.sae_config import (
    ConfigError,
    check_architecture,
    check_dtype,
    check_positive,
    validate_sae_config,
)

__all__ = ["ConfigError", "validate_runner_config", "validate_sae_config"]


def validate_runner_config(cfg: Any) -> None:
    """Checks of a LanguageModelSAERunnerConfig that need no model or data load."""
    check_architecture(cfg.sae.architecture())
    validate_sae_config(cfg.sae)
    check_positive("lr", cfg.lr)
    check_positive("context_size", cfg.context_size, integer=True)
    check_positive("train_batch_size_tokens", cfg.train_batch_size_tokens, integer=True)
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
    check_dtype("dtype", cfg.dtype)
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
