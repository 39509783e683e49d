"""The TransformerLens view of the embedded model, and SAEBench's absorption eval run
offline on it. One model load for the module (about 1.2 GB, freed afterwards)."""

import gc
import json
import math
import os
import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.load_model import HookedProxyLM

from saelens_aligned.pipeline.absorption import (
    METRIC_FIELDS,
    AbsorptionSettings,
    run_absorption,
    subsample_vocab,
)
from saelens_aligned.pipeline.corpora import default_corpus
from saelens_aligned.pipeline.models import default_model_dir
from saelens_aligned.pipeline.transformer_lens_view import (
    BlocksOnlyTransformer,
    hf_hook_name,
    hook_layer,
    local_model_names_accepted,
    transformer_lens_hook_name,
)

LAYER = 3
HF_HOOKS = [
    "model.embed_tokens",
    f"model.layers.{LAYER}.self_attn.o_proj",
    f"model.layers.{LAYER}.mlp",
    f"model.layers.{LAYER}",
    "model.layers.29",
]
# Observed: at most about 5e-4 on residual values up to about 4,000 (the first
# token's massive activation), about 3e-5 on sublayer outputs; logits about 7e-5.
RTOL, ATOL = 1e-4, 1e-3


@pytest.fixture(scope="module")
def models() -> Iterator[SimpleNamespace]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saelens_aligned.pipeline.transformer_lens_view import load_hooked_transformer

    model_dir = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    hf_model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    loaded = SimpleNamespace(
        hf_model=hf_model,
        tokenizer=tokenizer,
        view=load_hooked_transformer(model_dir, hf_model, tokenizer),
        blocks=load_hooked_transformer(
            model_dir, hf_model, tokenizer, n_blocks=LAYER + 1
        ),
    )
    yield loaded
    del loaded.hf_model, loaded.view, loaded.blocks
    gc.collect()


def corpus_batch(tokenizer: Any, n_docs: int = 4, n_tokens: int = 64) -> torch.Tensor:
    """The first `n_docs` held-out corpus documents, BOS + `n_tokens - 1` tokens
    each, as SAELens' activation store feeds the model."""
    with open(default_corpus().eval[0]) as f:  # type: ignore[index]
        texts = [json.loads(line)["text"] for line, _ in zip(f, range(n_docs))]
    rows = [
        [tokenizer.bos_token_id, *tokenizer(text)["input_ids"][: n_tokens - 1]]
        for text in texts
    ]
    assert all(len(row) == n_tokens for row in rows)
    return torch.tensor(rows)  # [batch, pos]


def test_hook_names_translate_between_the_views() -> None:
    assert transformer_lens_hook_name("model.layers.3") == "blocks.3.hook_resid_post"
    assert transformer_lens_hook_name("model.layers.12.mlp") == "blocks.12.hook_mlp_out"
    assert transformer_lens_hook_name("model.embed_tokens") == "hook_embed"
    for name in HF_HOOKS:
        assert hf_hook_name(transformer_lens_hook_name(name)) == name
    assert hook_layer("model.layers.7.mlp") == hook_layer("blocks.7.hook_mlp_out") == 7
    assert hook_layer("hook_embed") is None
    with pytest.raises(ValueError, match="No counterpart"):
        transformer_lens_hook_name("model.layers.3.input_layernorm")


def test_local_model_names_are_accepted_only_inside_the_block() -> None:
    from transformer_lens import loading_from_pretrained as loading

    model_dir = str(default_model_dir())
    original = loading.get_official_model_name
    with local_model_names_accepted():
        assert loading.get_official_model_name(model_dir) == model_dir
        assert loading.get_official_model_name("gpt2") == "gpt2"
    assert loading.get_official_model_name is original
    with pytest.raises(ValueError, match="not found"):
        loading.get_official_model_name(model_dir)


@torch.no_grad()
def test_view_reads_the_same_activations_as_the_hf_hooks_on_corpus_text(
    models: SimpleNamespace,
) -> None:
    """Each hook of the HookedTransformer view equals the AutoModelForCausalLM module
    SAELens hooks (through its own HookedProxyLM) on real text, and so do logits."""
    tokens = corpus_batch(models.tokenizer)
    proxy = HookedProxyLM(models.hf_model, models.tokenizer, hook_names=HF_HOOKS)
    hf_logits, hf_cache = proxy.run_with_cache(tokens, names_filter=HF_HOOKS)
    tl_names = [transformer_lens_hook_name(name) for name in HF_HOOKS]
    tl_logits, tl_cache = models.view.run_with_cache(tokens, names_filter=tl_names)
    for hf_name, tl_name in zip(HF_HOOKS, tl_names):
        expected = hf_cache[hf_name]
        assert expected.shape == (*tokens.shape, 576)
        torch.testing.assert_close(
            tl_cache[tl_name], expected, rtol=RTOL, atol=ATOL, msg=hf_name
        )
    torch.testing.assert_close(tl_logits, hf_logits, rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_blocks_only_view_stops_after_its_blocks_with_identical_hooks(
    models: SimpleNamespace,
) -> None:
    tokens = corpus_batch(models.tokenizer, n_docs=2)
    hook = transformer_lens_hook_name(f"model.layers.{LAYER}")
    assert isinstance(models.blocks, BlocksOnlyTransformer)
    assert models.blocks.cfg.n_layers == LAYER + 1
    assert models.blocks.cfg.model_name == models.view.cfg.model_name
    out, cache = models.blocks.run_with_cache(tokens, names_filter=[hook])
    _, full_cache = models.view.run_with_cache(tokens, names_filter=[hook])
    assert out.shape == (*tokens.shape, 576)  # the residual stream, not logits
    torch.testing.assert_close(cache[hook], full_cache[hook], rtol=0, atol=0)
    torch.testing.assert_close(out, cache[hook], rtol=0, atol=0)


def test_vocab_subsample_keeps_every_first_letter_and_the_order() -> None:
    from sae_bench.evals.absorption.vocab import get_alpha_tokens
    from transformers import AutoTokenizer

    words = get_alpha_tokens(AutoTokenizer.from_pretrained(default_model_dir()))
    sample = subsample_vocab(words, 300, seed=0)
    assert len(sample) == 300
    assert sample == subsample_vocab(words, 300, seed=0)
    assert sample != subsample_vocab(words, 300, seed=1)
    first = {w.strip()[0].lower() for w in sample}
    assert first == set("abcdefghijklmnopqrstuvwxyz")
    positions = [words.index(w) for w in sample]
    assert positions == sorted(positions)


def random_topk_sae(hook_name: str, d_sae: int = 256, k: int = 8) -> TopKSAE:
    torch.manual_seed(0)
    cfg = TopKSAEConfig(d_in=576, d_sae=d_sae, k=k, rescale_acts_by_decoder_norm=True)
    cfg.metadata.hook_name = hook_name
    cfg.metadata.model_name = str(default_model_dir())
    return TopKSAE(cfg)


def saebench_default_artifacts() -> Path:
    from sae_bench.evals.absorption.common import RESULTS_DIR

    return RESULTS_DIR


@pytest.fixture(scope="module")
def absorption_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("absorption")


def test_absorption_runs_offline_at_tiny_settings_and_writes_only_to_work_dir(
    models: SimpleNamespace, absorption_dir: Path
) -> None:
    sae = random_topk_sae(f"model.layers.{LAYER}")
    W_dec = sae.W_dec.detach().clone()
    cwd_before = sorted(os.listdir("."))
    saebench_artifacts_existed = saebench_default_artifacts().exists()
    python_rng = random.getstate()
    torch_rng = torch.get_rng_state()
    grad_enabled = torch.is_grad_enabled()

    result = run_absorption(
        sae, models.blocks, AbsorptionSettings.tiny(), absorption_dir
    )

    assert not result.probes_cached and result.seconds > 0
    assert result.settings["vocab_size"] == 600
    # 15 of 26 letters pass at this size (5 needed), so absorption itself ran.
    assert result.evaluable and result.reason is None
    assert result.n_letters_represented >= 5
    assert all(math.isfinite(getattr(result, name)) for name in METRIC_FIELDS)
    assert 0 <= result.mean_absorption_fraction_score <= 1
    assert 0 <= result.mean_full_absorption_score <= 1
    assert 1 <= result.mean_num_split_features <= 3  # max_k_value
    # Nothing written outside work_dir; the SAE and global state untouched.
    assert sorted(os.listdir(".")) == cwd_before
    assert saebench_default_artifacts().exists() == saebench_artifacts_existed
    assert (absorption_dir / "artifacts" / "absorption").is_dir()
    assert any((absorption_dir / "probes").rglob("probe.pth"))
    assert torch.equal(sae.W_dec, W_dec)
    assert random.getstate() == python_rng
    assert torch.equal(torch.get_rng_state(), torch_rng)
    assert torch.is_grad_enabled() == grad_enabled  # run_eval turns it on


def test_absorption_reports_a_reason_when_too_few_letters_are_represented(
    models: SimpleNamespace, absorption_dir: Path
) -> None:
    """An F1 above 1 is impossible, so no letter counts: SAEBench stops before
    measuring absorption, and we say why instead of failing. Probes are reused."""
    sae = random_topk_sae(f"blocks.{LAYER}.hook_resid_post")
    settings = AbsorptionSettings.tiny(min_probe_f1=1.0)
    result = run_absorption(sae, models.blocks, settings, absorption_dir)
    assert result.probes_cached
    assert not result.evaluable
    assert result.n_letters_represented == 0
    assert result.reason is not None and "0 of 26 first letters" in result.reason
    assert all(math.isnan(getattr(result, name)) for name in METRIC_FIELDS)


def test_absorption_refuses_an_sae_not_on_the_residual_stream(
    models: SimpleNamespace,
) -> None:
    sae = random_topk_sae(f"model.layers.{LAYER}.mlp")
    with pytest.raises(ValueError, match="residual stream"):
        run_absorption(sae, models.blocks, AbsorptionSettings.tiny())
