import shutil
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
import yaml
from conftest import make_sae
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from sae_lens.saes.sae import SAE

import saelens_aligned
from saelens_aligned.diagnostics import sae_alignment_scores
from saelens_aligned.pretrained import (
    NotSafetensorsError,
    ReleaseSAE,
    load_release_registry,
    load_sae,
    register_pretrained_releases,
    release_entry,
)


def save_sae(architecture: str, path: Path, seed: int = 0, **kwargs: Any) -> SAE[Any]:
    """A small SAE with perturbed (non-tied) weights, exported like SAELens does."""
    sae = make_sae(architecture, d_in=16, d_sae=32, seed=seed, **kwargs)
    with torch.no_grad():
        if "aligned" not in architecture:
            sae.W_enc.add_(0.05 * torch.randn_like(sae.W_enc))
        sae.b_enc.add_(0.01)
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
