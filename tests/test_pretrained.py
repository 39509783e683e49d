import argparse
import collections
import functools
import json
import math
import pathlib
import shutil
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
import yaml
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from sae_lens.saes.sae import SAE

import saelens_aligned
from saelens_aligned.alignment import alignment_cosines
from saelens_aligned.apps.align import (
    CORE_METRICS,
    AlignReport,
    Stage,
    aligned_architecture_for,
    convert_to_aligned,
    format_report,
    save_inference_sae_atomic,
)
from saelens_aligned.diagnostics import sae_alignment_scores
from saelens_aligned.io.pretrained import (
    NotSafetensorsError,
    ReleaseSAE,
    load_release_registry,
    load_sae,
    register_pretrained_releases,
    release_entry,
)
from tests.conftest import make_sae


def save_sae(architecture: str, path: Path, seed: int = 0, **kwargs: Any) -> SAE[Any]:
    """A small SAE with perturbed (non-tied) weights, exported like SAELens does."""
    sae = make_sae(architecture, d_in=16, d_sae=32, seed=seed, **kwargs)
    with torch.no_grad():
        if "aligned" not in architecture:
            sae.W_enc.add_(0.05 * torch.randn_like(sae.W_enc))
        sae.b_dec.add_(0.01)
    sae.cfg.metadata.hook_name = "model.layers.3"
    sae.save_inference_model(path)
    return sae


def fake_hf_cache(
    monkeypatch: pytest.MonkeyPatch, root: Path, repo_id: str, layout: Path
) -> Path:
    """A huggingface_hub cache holding `layout` as repo_id's main snapshot."""
    cache = root / "hub"
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    shutil.copytree(layout, repo_dir / "snapshots" / commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_load_sae_reads_a_local_saelens_directory_trained_stock_or_aligned(tmp_path):
    stock = save_sae("topk", tmp_path / "stock")
    save_sae("aligned_topk", tmp_path / "aligned", alignment="tied")

    loaded = load_sae(tmp_path / "stock")
    assert type(loaded.sae).__name__ == "TopKSAE"
    assert not loaded.trained_aligned
    assert loaded.alignment.max_abs_deviation_from_one > 1e-3
    # Export folds the decoder norm; alignment scores are invariant to that fold.
    torch.testing.assert_close(
        sae_alignment_scores(loaded.sae), sae_alignment_scores(stock)
    )

    aligned = load_sae(tmp_path / "aligned")
    assert type(aligned.sae).__name__ == "TopKSAE"
    assert aligned.trained_aligned
    assert aligned.alignment.max_abs_deviation_from_one <= 1e-4
    # A training checkpoint (cfg.json names the aligned training architecture).
    checkpoint = make_sae("aligned_topk", alignment="projected", d_in=16, d_sae=32)
    checkpoint.save_model(tmp_path / "checkpoint")
    from_checkpoint = load_sae(tmp_path / "checkpoint")
    assert type(from_checkpoint.sae).__name__ == "TopKSAE"
    assert from_checkpoint.trained_aligned
    assert from_checkpoint.alignment.max_abs_deviation_from_one <= 1e-5
    # The weights file itself names the same directory.
    assert load_sae(tmp_path / "aligned" / "sae_weights.safetensors").path == (
        tmp_path / "aligned"
    )


def test_load_sae_reads_a_local_folder_in_the_hf_release_layout(tmp_path):
    save_sae("standard", tmp_path / "release" / "layer_3" / "width_32", seed=1)
    save_sae("aligned", tmp_path / "release" / "layer_4" / "width_32", seed=2)

    loaded = load_sae(tmp_path / "release", "layer_4/width_32")
    assert loaded.trained_aligned
    assert loaded.path == tmp_path / "release" / "layer_4" / "width_32"
    with pytest.raises(ValueError, match="layer_3/width_32"):
        load_sae(tmp_path / "release")
    with pytest.raises(ValueError, match="not found"):
        load_sae(tmp_path / "release", "layer_9")


def test_load_sae_reads_an_hf_repo_from_the_local_cache_offline(tmp_path, monkeypatch):
    layout = tmp_path / "layout"
    saved = save_sae("aligned_topk", layout / "blocks.3.hook_resid_post", seed=3)
    fake_hf_cache(monkeypatch, tmp_path, "someone/aligned-saes", layout)

    loaded = load_sae("someone/aligned-saes", "blocks.3.hook_resid_post")
    assert loaded.trained_aligned
    assert loaded.alignment.max_abs_deviation_from_one <= 1e-4
    assert str(loaded.path).startswith(str(tmp_path / "hub"))
    torch.testing.assert_close(
        sae_alignment_scores(loaded.sae), sae_alignment_scores(saved)
    )
    # With a single SAE in the repo, sae_id may be left out.
    assert load_sae("someone/aligned-saes").path == loaded.path


def test_registered_releases_resolve_through_sae_from_pretrained(tmp_path, monkeypatch):
    layout = tmp_path / "layout"
    save_sae("aligned", layout / "l3", seed=4)
    fake_hf_cache(monkeypatch, tmp_path, "someone/aligned-release", layout)
    registry = tmp_path / "pretrained_saes.yaml"
    entry = release_entry(
        "someone/aligned-release",
        "SmolLM2-135M-Instruct",
        [ReleaseSAE("layer_3", "l3")],
    )
    registry.write_text(yaml.safe_dump({"test-aligned-release": entry}))
    directory = get_pretrained_saes_directory()
    monkeypatch.delitem(directory, "test-aligned-release", raising=False)

    assert register_pretrained_releases(registry) == ["test-aligned-release"]
    assert register_pretrained_releases(registry) == ["test-aligned-release"]
    sae = SAE.from_pretrained("test-aligned-release", "layer_3")
    via_ours = load_sae("test-aligned-release", "layer_3")
    torch.testing.assert_close(sae.W_enc, via_ours.sae.W_enc)
    assert via_ours.trained_aligned
    monkeypatch.delitem(directory, "test-aligned-release")


def test_packaged_release_registry_parses_in_saelens_format():
    releases = load_release_registry()
    for lookup in releases.values():
        assert lookup.repo_id and lookup.saes_map
    assert saelens_aligned.load_sae is load_sae


def test_pickle_and_pt_weights_are_refused_with_a_clear_message(tmp_path):
    sae = save_sae("standard", tmp_path / "stock")
    pt_file = tmp_path / "sae_weights.pt"
    torch.save(sae.state_dict(), pt_file)
    with pytest.raises(NotSafetensorsError, match="only from safetensors"):
        load_sae(pt_file)

    # A SAELens directory whose weights are only a pickle.
    pickled_dir = tmp_path / "pickled"
    pickled_dir.mkdir()
    shutil.copy(tmp_path / "stock" / "cfg.json", pickled_dir / "cfg.json")
    shutil.copy(pt_file, pickled_dir / "sae_weights.pt")
    with pytest.raises(NotSafetensorsError, match="sae_weights.pt"):
        load_sae(pickled_dir)

    # A pickle renamed to look like safetensors is caught by its header.
    shutil.copy(pt_file, pickled_dir / "sae_weights.safetensors")
    with pytest.raises(NotSafetensorsError, match="zip archive"):
        load_sae(pickled_dir)


# ---------------------------------------------------------------------------
# align: converting a stock SAE


def write_docstring_corpus(path: Path, n_rows: int = 120) -> Path:
    """Real English text every machine has: docstrings of stdlib modules."""
    import inspect
    import json

    rows = []
    for module in (argparse, collections, functools, inspect, json, pathlib, shutil):
        members = [module, *(obj for _, obj in inspect.getmembers(module))]
        for obj in members:
            doc = inspect.getdoc(obj) if callable(obj) or obj is module else None
            if doc and len(doc) > 200 and {"text": doc} not in rows:
                rows.append({"text": doc})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:n_rows]))
    return path


STOCK_ARCHITECTURES = ["standard", "topk", "jumprelu", "gated"]


@pytest.mark.parametrize("stock_arch", STOCK_ARCHITECTURES)
@pytest.mark.parametrize("alignment", ["projected", "tied"])
def test_convert_to_aligned_gives_unit_gain_and_projection_keeps_the_decoder(
    tmp_path, stock_arch, alignment
):
    save_sae(stock_arch, tmp_path / "stock", seed=5)
    stock = load_sae(tmp_path / "stock").sae
    aligned = convert_to_aligned(stock, alignment=alignment)

    assert aligned.cfg.architecture() == aligned_architecture_for(stock)
    assert aligned.cfg.architecture().startswith("aligned")
    scores = sae_alignment_scores(aligned)
    assert (scores - 1).abs().max() <= 1e-5
    if alignment == "projected":
        torch.testing.assert_close(aligned.W_dec.detach(), stock.W_dec.detach())
        # e_i moved along d_i only.
        delta = aligned.W_enc.detach() - stock.W_enc.detach()
        if stock_arch == "gated":  # the magnitude path carries the constraint
            delta = delta * aligned.r_mag.detach().exp()
        moved = delta.norm(dim=0) > 1e-6
        cos = alignment_cosines(delta, stock.W_dec.detach()).abs()
        torch.testing.assert_close(cos[moved], torch.ones_like(cos[moved]))
    # The export is a plain SAELens SAE of the stock architecture.
    save_inference_sae_atomic(aligned, tmp_path / "aligned")
    exported = load_sae(tmp_path / "aligned")
    assert exported.sae.cfg.architecture() == stock.cfg.architecture()
    assert exported.trained_aligned
    assert exported.alignment.max_abs_deviation_from_one <= 1e-5


def test_align_report_states_damage_and_recovery():
    def stage(name: str, ev: float, ce: float) -> Stage:
        metrics = dict.fromkeys(CORE_METRICS, 0.0)
        metrics.update(explained_variance=ev, ce_loss_score=ce)
        return Stage(name, metrics, {"mean": 1.0, "max_abs_deviation_from_one": 0.0})

    report = AlignReport("sae", None, "aligned_topk", "projected", {})
    report.stages = [
        stage("stock", 0.8, 0.9),
        stage("projected", 0.4, 0.95),
        stage("projected+finetuned", 0.7, 0.97),
    ]
    assert report.recovery("explained_variance") == pytest.approx(0.75)
    assert report.recovery("ce_loss_score") is None  # not damaged
    text = format_report(report)
    assert "recovering 75% of the damage (0.1000 below stock)" in text
    assert "did not damage it (0.9000 -> 0.9500)" in text


def test_align_on_a_stock_sae_trained_here_reaches_unit_gain_and_reports_finite_metrics(
    tmp_path,
):
    import datasets
    from sae_lens.config import LanguageModelSAERunnerConfig, LoggingConfig
    from sae_lens.llm_sae_training_runner import LanguageModelSAETrainingRunner
    from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

    from saelens_aligned.cli import main
    from saelens_aligned.pipeline.models import default_model_dir

    datasets.config.TORCHVISION_AVAILABLE = False
    corpus = write_docstring_corpus(tmp_path / "docs.jsonl")
    model_dir = str(default_model_dir())
    hook = "model.layers.3"
    stock_cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=576, d_sae=64, k=8),
        model_name=model_dir,
        model_class_name="AutoModelForCausalLM",
        hook_name=hook,
        dataset_path=str(corpus),
        is_dataset_tokenized=False,
        streaming=False,
        context_size=16,
        training_tokens=1024,
        train_batch_size_tokens=256,
        store_batch_size_prompts=8,
        n_batches_in_buffer=32,
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=str(tmp_path / "stock"),
        verbose=False,
    )
    dataset = datasets.load_dataset("json", data_files=str(corpus), split="train")
    LanguageModelSAETrainingRunner(stock_cfg, override_dataset=dataset).run()
    stock = load_sae(tmp_path / "stock")
    assert not stock.trained_aligned
    assert stock.alignment.max_abs_deviation_from_one > 1e-2

    out = tmp_path / "align"
    main(
        ["align", str(tmp_path / "stock"), "--dataset", str(corpus)]
        + ["--output-dir", str(out), "--context-size", "16", "--tokens", "512"]
        + ["--train-batch-size-tokens", "256", "--eval-batches", "2"]
        + ["--eval-ce-batches", "1", "--eval-batch-size-prompts", "4"]
    )

    report = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in report["stages"]] == [
        "stock",
        "projected",
        "projected+finetuned",
    ]
    for stage in report["stages"]:
        assert set(CORE_METRICS) <= set(stage["metrics"])
        assert all(math.isfinite(v) for v in stage["metrics"].values()), stage
    for name in ("projected", "finetuned"):
        loaded = load_sae(out / name)
        assert loaded.trained_aligned
        assert loaded.alignment.max_abs_deviation_from_one <= 1e-5
    assert (out / "report.md").read_text().startswith("# align")
    assert (out / "alignment_histograms.png").stat().st_size > 0
