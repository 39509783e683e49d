"""Compact tied SAEs, the packaged-release loader, and the shipped release."""

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
from sae_lens.saes.sae import SAE
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import saelens_aligned
from saelens_aligned.alignment import tied_decoder
from saelens_aligned.io import pretrained
from saelens_aligned.io.compact import (
    NotTiedError,
    compact_cfg,
    expand_compact,
    write_compact,
)
from saelens_aligned.io.pretrained import (
    PACKAGED_LOADER,
    PackagedReleaseMissingError,
    ReleaseSAE,
    load_release_registry,
    load_sae,
    register_pretrained_releases,
    release_entry,
)
from tests.conftest import make_sae, random_batches


def exported(architecture: str, path: Path, alignment: str | None = "tied") -> Any:
    sae = make_sae(architecture, alignment, d_in=16, d_sae=64, seed=3)
    with torch.no_grad():
        sae.W_enc.add_(0.05 * torch.randn_like(sae.W_enc))
        sae.b_enc.add_(0.01)
    sae.save_inference_model(path)
    return SAE.load_from_disk(path)


def test_a_compact_tied_sae_expands_to_a_plain_saelens_folder(tmp_path):
    original = exported("aligned_topk", tmp_path / "sae")
    compact = write_compact(tmp_path / "sae", tmp_path / "layer.safetensors")
    with safe_open(str(compact), framework="pt") as f:
        assert set(f.keys()) == {"W_enc", "b_enc", "b_dec"}  # no decoder
        assert f.get_tensor("W_enc").dtype == torch.float16
    assert (
        compact.stat().st_size
        < 0.6 * (tmp_path / "sae" / "sae_weights.safetensors").stat().st_size
    )

    out = expand_compact(compact, tmp_path / "expanded")
    # A process that never imports the plugin loads it.
    code = (
        "import sys, sae_lens; sae = sae_lens.SAE.load_from_disk(sys.argv[1]); "
        "print(sae.cfg.architecture(), sae.W_dec.dtype)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["topk", "torch.float32"]
    sae = SAE.load_from_disk(out)
    scores = (sae.W_enc * sae.W_dec.T).sum(0)
    torch.testing.assert_close(scores, torch.ones_like(scores), atol=1e-5, rtol=0)
    torch.testing.assert_close(sae.W_enc, original.W_enc.to(torch.float16).float())
    x = next(random_batches(16, 64))
    with torch.no_grad():  # fp16 encoder: reconstructions within fp16 precision
        expected = original.decode(original.encode(x))
        err = (sae.decode(sae.encode(x)) - expected).norm() / expected.norm()
    assert float(err) < 5e-3


def test_a_compact_file_takes_metadata_overrides_and_refuses_float16_overflow(
    tmp_path,
):
    exported("aligned_topk", tmp_path / "sae")
    compact = write_compact(
        tmp_path / "sae",
        tmp_path / "c.safetensors",
        metadata={"model_name": "org/model", "hook_name": "blocks.1.hook_resid_post"},
    )
    metadata = compact_cfg(compact)["metadata"]
    assert metadata["model_name"] == "org/model"
    assert metadata["hook_name"] == "blocks.1.hook_resid_post"
    assert metadata["training_architecture"] == "aligned_topk"  # the rest kept
    # Written again with the same content, the file keeps its bytes (and sha256).
    before = compact.read_bytes()
    for _ in range(3):
        write_compact(tmp_path / "sae", compact, metadata=dict(metadata))
        assert compact.read_bytes() == before

    state = load_file(tmp_path / "sae" / "sae_weights.safetensors")
    state["W_enc"] = state["W_enc"] * 1e6  # tied decoder shrinks in step
    state["W_dec"] = tied_decoder(state["W_enc"]).contiguous()
    save_file(state, tmp_path / "sae" / "sae_weights.safetensors")
    with pytest.raises(ValueError, match="beyond torch.float16's range"):
        write_compact(tmp_path / "sae", tmp_path / "big.safetensors")
    write_compact(tmp_path / "sae", tmp_path / "big.safetensors", torch.bfloat16)


def test_only_tied_saes_have_a_compact_form(tmp_path):
    exported("topk", tmp_path / "stock", alignment=None)
    with pytest.raises(NotTiedError, match="only `tied` SAEs"):
        write_compact(tmp_path / "stock", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


@pytest.fixture
def packaged_release(tmp_path, monkeypatch):
    """A release of one compact SAE, registered as a packaged release."""
    exported("aligned_topk", tmp_path / "sae")
    compact = write_compact(tmp_path / "sae", tmp_path / "pkg" / "layer_3.safetensors")
    monkeypatch.setattr(
        pretrained,
        "packaged_release_file",
        lambda _release, folder: tmp_path / "pkg" / f"{folder}.safetensors",
    )
    monkeypatch.setenv("SAELENS_ALIGNED_CACHE", str(tmp_path / "cache"))
    registry = tmp_path / "pretrained_saes.yaml"
    entry = {
        **release_entry(
            "nobody/test-packaged", "SmolLM2", [ReleaseSAE("layer_3", "layer_3")]
        ),
        "conversion_func": PACKAGED_LOADER,
    }
    registry.write_text(yaml.safe_dump({"test-packaged": entry}))
    directory = get_pretrained_saes_directory()
    register_pretrained_releases(registry)
    yield compact
    directory.pop("test-packaged", None)


@pytest.mark.usefixtures("packaged_release")
def test_a_packaged_release_loads_offline_through_saelens_and_ours(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    sae = SAE.from_pretrained("test-packaged", "layer_3")
    ours = load_sae("test-packaged", "layer_3")
    torch.testing.assert_close(sae.W_dec, ours.sae.W_dec)
    assert ours.trained_aligned and abs(ours.alignment.mean - 1) < 1e-5
    assert "cache" in str(ours.path)  # expanded once into the cache


def test_a_deleted_packaged_file_gives_an_error_that_says_what_to_do(
    packaged_release, monkeypatch
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    packaged_release.unlink()
    for load in (
        lambda: SAE.from_pretrained("test-packaged", "layer_3"),
        lambda: load_sae("test-packaged", "layer_3"),
    ):
        with pytest.raises(PackagedReleaseMissingError, match="Reinstall the package"):
            load()


# The shipped release (benchmarks/release/build.py builds it).
SHIPPED = {
    name: lookup
    for name, lookup in load_release_registry().items()
    if lookup.conversion_func == PACKAGED_LOADER
}


def test_the_package_ships_a_release_of_at_least_three_layers():
    assert SHIPPED, "pretrained_saes.yaml lists no packaged release"
    for name, lookup in SHIPPED.items():
        assert len(lookup.saes_map) >= 3
        for sae_id in lookup.saes_map:
            assert pretrained.packaged_release_file(name, sae_id).is_file()
            assert (
                lookup.expected_l0[sae_id] > 0
                and 0 < lookup.expected_var_explained[sae_id] < 1
            )


@pytest.mark.parametrize(
    "release,sae_id",
    [(name, sae_id) for name, lookup in SHIPPED.items() for sae_id in lookup.saes_map],
)
def test_two_lines_load_a_released_sae_offline_and_encode(release, sae_id, tmp_path):
    # In a fresh process, offline, as a new user would.
    code = f"""
import json, torch, saelens_aligned
from sae_lens import SAE
sae = SAE.from_pretrained({release!r}, {sae_id!r})
acts = sae.encode(torch.randn(8, sae.cfg.d_in))
print(json.dumps([sae.cfg.architecture(), sae.cfg.d_sae, int((acts > 0).sum(-1).max())]))
"""
    env = {
        "HF_HUB_OFFLINE": "1",
        "SAELENS_ALIGNED_CACHE": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    architecture, d_sae, max_active = json.loads(done.stdout.strip().splitlines()[-1])
    assert architecture == "topk" and d_sae == 4608 and 0 < max_active <= 32
    assert saelens_aligned


def assert_portable(metadata: dict[str, Any], layer: int) -> None:
    """A shipped SAE's metadata: no path of the machine that built it; the
    model's hub name; TransformerLens' name of the hook it was trained at."""
    from saelens_aligned.pipeline.models import DEFAULT_MODEL_HUB_ID, EMBEDDED_WEIGHTS

    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    assert not [s for s in strings(metadata) if "/" in s and Path(s).is_absolute()]
    assert not [s for s in strings(metadata) if str(Path.home()) in s]
    assert metadata["model_name"] == DEFAULT_MODEL_HUB_ID
    assert metadata["model_weights"] == EMBEDDED_WEIGHTS
    assert metadata["model_class_name"] == "HookedTransformer"
    assert metadata["hook_name"] == f"blocks.{layer}.hook_resid_post"
    assert metadata["hf_hook_name"] == f"model.layers.{layer}"
    assert metadata["hook_name"] in transformer_lens_hook_names()


@functools.cache
def transformer_lens_hook_names() -> frozenset[str]:
    """The hook names of TransformerLens' HookedTransformer of the embedded model
    (built on the meta device from its config: no weights, no hub)."""
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    from saelens_aligned.pipeline.models import default_model_dir
    from saelens_aligned.pipeline.transformer_lens_view import (
        local_model_names_accepted,
    )

    with local_model_names_accepted():
        cfg = loading.get_pretrained_model_config(str(default_model_dir()))
    with torch.device("meta"):
        model = HookedTransformer(cfg, move_to_device=False)
    return frozenset(model.hook_dict)


def test_the_release_build_trains_evaluates_and_packages_every_layer(tmp_path):
    from benchmarks.records.layout import record_path
    from benchmarks.release import precision
    from benchmarks.release.build import (
        ReleasePaths,
        ReleaseSpec,
        build,
        compact_file,
        file_digest,
        forget_weightless_runs,
        render,
        shipped_record,
        trained_sae_dir,
        unfinished_layers,
    )
    from benchmarks.sweeps.config import EvalSettings

    spec = ReleaseSpec(
        name="test-tiny-release",
        repo_id="nobody/test-tiny-release",
        layers=(1, 2),
        d_sae=64,
        k=4,
        dataset=None,  # the embedded corpus: no download
        context_size=32,
        activation_tokens=2048,
        training_tokens=4096,
        train_batch_size_tokens=512,
        dead_window_tokens=1024,
        eval=EvalSettings(
            batch_size_prompts=2,
            n_eval_reconstruction_batches=1,
            n_eval_sparsity_variance_batches=2,
            meta_structure=False,
        ),
        activations_dir=str(tmp_path / "acts"),
    )
    registry = tmp_path / "pretrained_saes.yaml"
    registry.write_text("# header kept\n{}\n")
    paths = ReleasePaths(tmp_path / "results", tmp_path / "releases", registry)
    entry = build(spec, paths)

    assert [s["id"] for s in entry["saes"]] == ["layer_1", "layer_2"]
    assert all(0 < s["l0"] <= 4 for s in entry["saes"])
    assert registry.read_text().startswith("# header kept\n")
    assert load_release_registry(registry)["test-tiny-release"].conversion_func == (
        PACKAGED_LOADER
    )
    for layer in spec.layers:
        compact = compact_file(spec, layer, paths)
        sae = SAE.load_from_disk(expand_compact(compact, tmp_path / "x" / str(layer)))
        assert sae.cfg.d_sae == 64 and sae.W_enc.dtype == torch.float32
        with safe_open(str(compact), framework="pt") as f:
            assert f.get_tensor("W_enc").dtype == torch.float16
        assert_portable(compact_cfg(compact)["metadata"], layer)
        # The registry and the table hold the evaluation of this very file.
        shipped = shipped_record(spec, layer, paths)
        unstructured = shipped["eval_result_unstructured"]
        assert unstructured["compact_sha256"] == file_digest(compact)
        assert entry["saes"][spec.layers.index(layer)]["l0"] == round(
            shipped["eval_result_metrics"]["sparsity"]["l0"], 4
        )
    # Storage precision against the float32 SAE: float32 storage changes nothing.
    stored = {
        (r.sae_id, r.encoder_dtype): r for r in precision.measure(spec, paths, 512)
    }
    assert len(stored) == 6 and stored["layer_1", "float32"].topk_changed == 0
    assert (
        stored["layer_1", "float16"].file_bytes
        < stored["layer_1", "float32"].file_bytes
    )
    for layer in ("layer_1", "layer_2"):
        fp32, bf16, fp16 = (
            stored[layer, d] for d in ("float32", "bfloat16", "float16")
        )
        assert fp32.tokens == bf16.tokens == fp16.tokens == 512
        assert fp32.output_change < 1e-4  # the derived decoder is the trained one
        assert fp16.output_change < bf16.output_change < 0.1
    table = render(spec, paths)
    assert table.count("aligned `tied` (shipped file)") == 2
    assert table.count("stock TopK") == 2
    # Rerunning finds everything done: same files, nothing retrained or evaluated.
    records = {p: p.read_bytes() for p in tmp_path.glob("results/**/records/*.json")}
    assert build(spec, paths) == entry
    assert {p: p.read_bytes() for p in records} == records

    # A fresh checkout has the records but not the weights: the SAE that ships is
    # trained again (and its file and evaluation made again).
    shutil.rmtree(trained_sae_dir(spec, 1, paths))
    assert unfinished_layers(spec, paths) == [1]
    forget_weightless_runs(spec, paths)
    record = record_path(paths.results_dir / "layer_1", spec.aligned_run(1).run_id)
    assert not record.exists()
    assert [s["id"] for s in build(spec, paths)["saes"]] == ["layer_1", "layer_2"]
    assert record.exists() and unfinished_layers(spec, paths) == []


def test_the_shipped_release_stays_within_its_size_budget():
    # docs/pretrained.md states the budget: 20 MB for the whole release.
    for name in SHIPPED:
        files = list(pretrained.packaged_release_file(name, "x").parent.glob("*"))
        assert sum(f.stat().st_size for f in files) <= 20_000_000


def test_the_shipped_files_carry_portable_metadata():
    from benchmarks.release.build import RELEASE, ReleasePaths, compact_file

    for layer in RELEASE.layers:
        compact = compact_file(RELEASE, layer, ReleasePaths())
        assert_portable(compact_cfg(compact)["metadata"], layer)


def test_the_release_table_and_registry_hold_the_shipped_files_numbers():
    """A shipped file's record names the digest of the file that ships (else the
    file changed since it was evaluated), and the registry carries the table's
    numbers; a layer whose file was never evaluated says so in the table."""
    from benchmarks.release.build import (
        RELEASE,
        ReleasePaths,
        compact_file,
        file_digest,
        release_records,
        render,
        shipped_record,
    )

    paths = ReleasePaths()
    lookup = load_release_registry()[RELEASE.name]
    aligned = {
        r.sae_id: r for r in release_records(RELEASE, paths) if r.arm != "stock_topk"
    }
    assert len(aligned) == len(RELEASE.layers)
    for layer in RELEASE.layers:
        sae_id = RELEASE.sae_id(layer)
        record = shipped_record(RELEASE, layer, paths)
        if record is None:
            assert aligned[sae_id].arm == "aligned_tied_fp32"
        else:
            assert record["eval_result_unstructured"]["compact_sha256"] == (
                file_digest(compact_file(RELEASE, layer, paths))
            ), f"{sae_id}: the shipped file changed since it was evaluated"
        metrics = aligned[sae_id].metrics
        assert lookup.expected_l0[sae_id] == round(metrics["l0"], 4)
        assert lookup.expected_var_explained[sae_id] == round(
            metrics["explained_variance"], 4
        )
    unevaluated = sum(r.arm == "aligned_tied_fp32" for r in aligned.values())
    assert render().count("file not evaluated") == unevaluated


def test_benchmarks_eval_reads_a_released_sae_on_the_embedded_model():
    """`python -m benchmarks eval <expanded release folder>` needs no hub: the
    metadata's `model_weights` names the embedded model."""
    import argparse

    from benchmarks.release.build import RELEASE
    from benchmarks.sweeps.eval_saes import source_for

    cfg = {"metadata": {**RELEASE.sae_metadata(15), "context_size": 128}}
    none = dict.fromkeys(["model", "model_class", "hook", "dataset", "context_size"])
    source = source_for(cfg, argparse.Namespace(**none, device="cpu"))
    assert source.model is None and source.model_class == "AutoModelForCausalLM"
    assert source.hook == "model.layers.15"
