"""Invalid configurations are rejected before any model or dataset loads."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sae_lens import LanguageModelSAERunnerConfig
from sae_lens.config import LoggingConfig
from sae_lens.registry import get_sae_training_class

from saelens_aligned.io.validation import (
    ConfigError,
    check_architecture,
    validate_runner_config,
)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    # Only config.json is read: no weights are needed to validate.
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text(
        json.dumps({"hidden_size": 64, "num_hidden_layers": 4, "model_type": "llama"})
    )
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"text": "hello world"}) + "\n")
    return path


def make_cfg(
    model_dir: Path,
    text_file: Path,
    tmp_path: Path,
    sae: dict[str, Any] | None = None,
    **kwargs: Any,
):
    sae_kwargs = {"d_in": 64, "d_sae": 256, **(sae or {})}
    architecture = sae_kwargs.pop("architecture", "aligned_topk")
    if "topk" in architecture:
        sae_kwargs.setdefault("k", 8)
    _, config_class = get_sae_training_class(architecture)
    base = {
        "sae": config_class(**sae_kwargs),
        "model_name": str(model_dir),
        "model_class_name": "AutoModelForCausalLM",
        "hook_name": "model.layers.2",
        "dataset_path": str(text_file),
        "is_dataset_tokenized": False,
        "streaming": False,
        "context_size": 32,
        "training_tokens": 4096,
        "train_batch_size_tokens": 256,
        "n_batches_in_buffer": 8,
        "output_path": str(tmp_path / "out"),
        "logger": LoggingConfig(log_to_wandb=False),
    }
    return LanguageModelSAERunnerConfig(**{**base, **kwargs})


def test_a_valid_config_passes(model_dir, text_file, tmp_path):
    validate_runner_config(make_cfg(model_dir, text_file, tmp_path))


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match=r"architecture='aligned_bogus'.*aligned_topk"
    ):
        check_architecture("aligned_bogus")


@pytest.mark.parametrize(
    "sae_changes,field",
    [
        ({"d_sae": -1}, "d_sae"),
        ({"k": 0}, "k"),
        ({"k": 10_000}, "k"),
        ({"aux_loss_coefficient": -1.0}, "aux_loss_coefficient"),
        ({"aux_loss_coefficient": float("nan")}, "aux_loss_coefficient"),
        ({"dtype": "float17"}, "dtype"),
    ],
)
def test_bad_sae_values_name_the_field(
    sae_changes, field, model_dir, text_file, tmp_path
):
    cfg = make_cfg(model_dir, text_file, tmp_path, sae={"architecture": "topk"})
    cfg.sae = replace(cfg.sae, **sae_changes)
    with pytest.raises(ConfigError, match=rf"^{field}="):
        validate_runner_config(cfg)


def test_negative_l1_coefficient_is_rejected(model_dir, text_file, tmp_path):
    cfg = make_cfg(
        model_dir,
        text_file,
        tmp_path,
        sae={"architecture": "standard", "l1_coefficient": -2.0},
    )
    with pytest.raises(ConfigError, match=r"^l1_coefficient=-2.0 .*>= 0"):
        validate_runner_config(cfg)


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"training_tokens": 100}, "training_tokens"),
        ({"hook_name": "model.layerz.2"}, "hook_name"),
        ({"dataset_path": "/nonexistent/data.jsonl"}, "dataset_path"),
    ],
)
def test_bad_runner_values_name_the_field(
    changes, field, model_dir, text_file, tmp_path
):
    cfg = make_cfg(model_dir, text_file, tmp_path, **changes)
    with pytest.raises(ConfigError, match=rf"^{field}="):
        validate_runner_config(cfg)


def test_hook_error_lists_nearby_valid_names(model_dir, text_file, tmp_path):
    cfg = make_cfg(model_dir, text_file, tmp_path, hook_name="model.layer.2")
    with pytest.raises(ConfigError, match=r"Nearby valid names: \['model.layers.2'"):
        validate_runner_config(cfg)


def test_d_in_must_match_the_hook_width(model_dir, text_file, tmp_path):
    cfg = make_cfg(model_dir, text_file, tmp_path, sae={"d_in": 576})
    with pytest.raises(ConfigError, match=r"^d_in=576 .*model.layers.2, 64"):
        validate_runner_config(cfg)


def test_empty_dataset_is_rejected(model_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"^dataset_path=.*non-empty"):
        validate_runner_config(make_cfg(model_dir, empty, tmp_path))


def test_missing_model_dir_is_rejected(text_file, tmp_path):
    cfg = make_cfg(tmp_path / "no_model", text_file, tmp_path)
    with pytest.raises(
        ConfigError, match=r"^model_name=.*existing local model directory"
    ):
        validate_runner_config(cfg)


def test_output_path_holding_another_run_is_rejected(model_dir, text_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cfg.json").write_text(
        json.dumps({"architecture": "standard", "d_in": 64, "d_sae": 99})
    )
    with pytest.raises(ConfigError, match=r"^output_path=.*holds a standard SAE"):
        validate_runner_config(make_cfg(model_dir, text_file, tmp_path))
    # ... and nothing already saved was touched.
    assert json.loads((out / "cfg.json").read_text())["d_sae"] == 99
