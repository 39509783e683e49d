"""benchmarks.release.upload_saes: a sweep's SAEs staged in release layout and registered."""

import json

from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from sae_lens.saes.sae import SAE

import saelens_aligned
from benchmarks.release.upload_saes import (
    add_release_to_registry,
    find_sae_dirs,
    release_saes,
    stage_release,
)
from saelens_aligned.io.pretrained import (
    load_release_registry,
    load_sae,
    register_pretrained_releases,
    release_entry,
)
from tests.test_pretrained import fake_hf_cache, save_sae


def test_a_run_staged_in_release_layout_loads_and_registers(tmp_path, monkeypatch):
    run = tmp_path / "run"
    save_sae("topk", run / "topk_k4" / "seed0", seed=6)
    save_sae("aligned_topk", run / "aligned_topk_k4" / "seed0", seed=6)
    (run / "aligned_topk_k4" / "seed0" / "metrics.json").write_text(
        json.dumps({"l0": 4.0, "explained_variance": 0.71})
    )

    assert sorted(find_sae_dirs(run)) == ["aligned_topk_k4/seed0", "topk_k4/seed0"]
    saes = find_sae_dirs(run, aligned_only=True)
    assert list(saes) == ["aligned_topk_k4/seed0"]
    staged = stage_release(saes, tmp_path / "staged")
    assert load_sae(staged, "aligned_topk_k4/seed0").trained_aligned

    registry = tmp_path / "pretrained_saes.yaml"
    registry.write_text("# header kept\n{}\n")
    entry = release_entry("me/aligned", "SmolLM2-135M-Instruct", release_saes(saes))
    add_release_to_registry(registry, "my-release", entry)
    assert registry.read_text().startswith("# header kept\n")
    lookup = load_release_registry(registry)["my-release"]
    assert lookup.saes_map == {"aligned_topk_k4/seed0": "aligned_topk_k4/seed0"}
    assert lookup.expected_l0["aligned_topk_k4/seed0"] == 4.0

    # The staged folder, served as the HF repo the entry names, resolves by release.
    fake_hf_cache(monkeypatch, tmp_path, "me/aligned", staged)
    monkeypatch.delitem(get_pretrained_saes_directory(), "my-release", raising=False)
    register_pretrained_releases(registry)
    sae = SAE.from_pretrained("my-release", "aligned_topk_k4/seed0")
    assert saelens_aligned.sae_alignment_summary(sae).max_abs_deviation_from_one < 1e-4
    monkeypatch.delitem(get_pretrained_saes_directory(), "my-release")
