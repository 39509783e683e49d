"""SAEBench's sae-probes sparse-probing eval run offline on the embedded model, at
tiny settings, with random SAEs (plumbing, not quality). One 4-block model load."""

import gc
import importlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig

from saelens_aligned.pipeline.models import default_model_dir
from saelens_aligned.pipeline.probing_results import ProbeMetrics, SaeProbesResult
from saelens_aligned.pipeline.sae_probes_data import balanced_subsample
from saelens_aligned.pipeline.sae_probes_eval import SaeProbesSettings, run_sae_probes

# sae-probes' probes pass sklearn 1.8's deprecated `penalty`; it is still honoured.
pytestmark = pytest.mark.filterwarnings(
    "ignore:'penalty' was deprecated:FutureWarning",
    "ignore:Inconsistent values:UserWarning",
)
LAYER = 3
TINY = SaeProbesSettings.tiny()
REDIRECTED = {
    "generate_model_activations": (
        "HookedTransformer",
        "DATA_PATH",
        "ensure_dataset_activations",
    ),
    "generate_sae_activations": ("DATASET_SIZES",),
    "run_baselines": ("DATASET_SIZES", "ensure_dataset_activations"),
    "run_sae_evals": ("DATASET_SIZES", "ensure_dataset_activations"),
    "utils_data": ("ensure_dataset_activations", "read_numbered_dataset_df"),
}


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    """No hub access (module-scoped, so it is in place before the model loads)."""
    import huggingface_hub

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def model() -> Iterator[Any]:
    from saelens_aligned.pipeline.transformer_lens_view import load_hooked_transformer

    hooked = load_hooked_transformer(default_model_dir(), n_blocks=LAYER + 1)
    yield hooked
    del hooked
    gc.collect()


def random_sae(hook_name: str = f"model.layers.{LAYER}", seed: int = 0) -> TopKSAE:
    torch.manual_seed(seed)
    cfg = TopKSAEConfig(d_in=576, d_sae=256, k=8, rescale_acts_by_decoder_norm=True)
    cfg.metadata.hook_name = hook_name
    return TopKSAE(cfg)


def redirected_objects() -> dict[str, Any]:
    """The sae-probes globals run_sae_probes replaces during a call."""
    return {
        f"{module}.{name}": getattr(
            importlib.import_module(f"sae_probes.{module}"), name
        )
        for module, names in REDIRECTED.items()
        for name in names
    }


def tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def assert_probe(metrics: ProbeMetrics | None) -> None:
    assert metrics is not None
    for value in (metrics.test_accuracy, metrics.test_auc, metrics.test_f1):
        assert math.isfinite(value) and 0 <= value <= 1


@pytest.fixture(scope="module")
def first(model: Any, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The first SAE evaluated in a fresh work_dir, and what surrounded the call."""
    from sae_probes.constants import DATA_PATH

    work_dir = tmp_path_factory.mktemp("sae-probes")
    sae = random_sae()
    before = SimpleNamespace(
        cwd=os.getcwd(),
        cwd_listing=sorted(os.listdir(".")),
        package_data=tree(DATA_PATH),
        objects=redirected_objects(),
        sides=(model.tokenizer.padding_side, model.tokenizer.truncation_side),
        W_dec=sae.W_dec.detach().clone(),
        grad=torch.is_grad_enabled(),
    )
    result = run_sae_probes(sae, model, TINY, work_dir)
    return SimpleNamespace(
        result=result, before=before, sae=sae, work_dir=work_dir, data=DATA_PATH
    )


def test_tiny_eval_runs_offline_with_its_baseline_and_writes_only_to_work_dir(
    first: SimpleNamespace, model: Any
) -> None:
    result: SaeProbesResult = first.result
    assert result.datasets == TINY.dataset_names
    assert not result.model_activations_reused and not result.baseline_reused
    assert [m.k for m in result.sae] == [1, 2]
    for metrics in result.sae:
        assert_probe(metrics)
    assert_probe(result.llm)  # the residual-stream baseline beside the SAE's probes
    for detail in result.details:
        assert detail.n_examples == 240  # 120 of each class
        assert (detail.n_train, detail.n_test) == (130, 109)
        assert [m.k for m in detail.sae] == [1, 2]
        for metrics in (*detail.sae, detail.llm):
            assert_probe(metrics)
    assert result.llm is not None
    mean_llm = sum(d.llm.test_accuracy for d in result.details) / 2  # type: ignore[union-attr]
    assert result.llm.test_accuracy == pytest.approx(mean_llm)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["settings"]["max_examples"] == 240
    # Everything under work_dir: activations keyed by model and hook, SAEBench JSON.
    acts = list((first.work_dir / "model_activations").rglob("*.pt"))
    assert len(acts) == 2 and all(
        f"blocks.{LAYER}.hook_resid_post" in a.name for a in acts
    )
    assert any((first.work_dir / "results").glob("*_eval_results.json"))
    before = first.before
    assert os.getcwd() == before.cwd and sorted(os.listdir(".")) == before.cwd_listing
    assert tree(first.data) == before.package_data
    # Every redirect undone; the SAE, tokenizer and grad mode untouched.
    after = redirected_objects()
    assert all(after[name] is before.objects[name] for name in after)
    sides = (model.tokenizer.padding_side, model.tokenizer.truncation_side)
    assert sides == before.sides
    assert torch.equal(first.sae.W_dec, before.W_dec)
    assert torch.is_grad_enabled() == before.grad


def test_a_second_sae_reuses_model_activations_and_baseline(
    first: SimpleNamespace, model: Any
) -> None:
    second = run_sae_probes(random_sae(seed=1), model, TINY, first.work_dir)
    assert second.model_activations_reused and second.baseline_reused
    assert second.seconds < first.result.seconds
    assert second.llm == first.result.llm
    for metrics in second.sae:
        assert_probe(metrics)
    # Its own probes were computed, not the first SAE's results read back.
    assert second.sae != first.result.sae


def test_redirects_are_undone_when_the_eval_fails(
    monkeypatch: pytest.MonkeyPatch, model: Any, tmp_path: Path
) -> None:
    from sae_bench.evals.sparse_probing_sae_probes import main

    gma = importlib.import_module("sae_probes.generate_model_activations")
    seen = {}

    def failing_run_sae_evals(**_: Any) -> None:
        seen.update(cwd=os.getcwd(), data=gma.DATA_PATH)
        raise RuntimeError("boom")

    monkeypatch.setattr(main, "run_sae_evals", failing_run_sae_evals)
    before, cwd = redirected_objects(), os.getcwd()
    with pytest.raises(RuntimeError, match="boom"):
        run_sae_probes(random_sae(), model, TINY, tmp_path)
    assert seen["cwd"] == str(tmp_path.resolve())
    assert Path(seen["data"]).is_relative_to(tmp_path.resolve())
    after = redirected_objects()
    assert all(after[name] is before[name] for name in after)
    assert os.getcwd() == cwd


def test_bad_input_is_refused_before_any_model_pass(tmp_path: Path) -> None:
    no_model = object()  # any use of the model would fail differently
    settings = SaeProbesSettings.tiny(dataset_names=("113_movie_sentiment",))
    with pytest.raises(ValueError, match=r"dataset_names.*'113_movie_sent'"):
        run_sae_probes(random_sae(), no_model, settings, tmp_path)
    with pytest.raises(ValueError, match=r"hook_name.*model\.layers\.N"):
        run_sae_probes(
            random_sae(f"model.layers.{LAYER}.mlp"), no_model, TINY, tmp_path
        )
    assert not any(tmp_path.iterdir())
    for bad in (
        dict(binarize=True),
        dict(setting="scarcity"),
        dict(max_examples=50),
        dict(ks=()),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SaeProbesSettings(**bad)  # type: ignore[arg-type]


def test_balanced_subsample_halves_the_classes_and_keeps_the_order() -> None:
    frame = pd.DataFrame(
        {"prompt": [f"p{i}" for i in range(50)], "target": [0] * 40 + [1] * 10}
    )
    sample = balanced_subsample(frame, 30, seed=0)
    assert sample["target"].value_counts().to_dict() == {0: 10, 1: 10}  # minority bound
    assert list(sample["prompt"]) == sorted(sample["prompt"], key=lambda p: int(p[1:]))
    assert sample.equals(balanced_subsample(frame, 30, seed=0))
    assert len(balanced_subsample(frame, 8, seed=0)) == 8
