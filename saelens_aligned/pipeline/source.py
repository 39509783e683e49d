"""Where activations come from: one model, one hook, one text corpus.

`Source` is the one description every pipeline stage reads (activation caching,
training, evaluation); `resolve_source` checks it cheaply, before any weights load,
and returns what the later stages need.
"""

import difflib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from saelens_aligned.errors import InputError
from saelens_aligned.io.cache import cache_root
from saelens_aligned.pipeline.models import (
    DEFAULT_MODEL_NAME,
    MODEL_CLASSES,
    default_model_dir,
)
from saelens_aligned.pipeline.text import (
    DatasetResolutionError,
    TextCorpus,
    hub_is_offline,
    resolve_corpus,
)


class SourceError(InputError):
    """A model, hook or dataset is unusable; the message says why and the fix."""


@dataclass(frozen=True)
class Source:
    """A model, the hook whose activations SAEs reconstruct, and the text.

    Attributes:
        model: Local model directory or Hugging Face model name; None means the
            embedded SmolLM2-135M-Instruct (converted once into the cache).
        model_class: "AutoModelForCausalLM" (hook names are module paths, e.g.
            `model.layers.3`) or "HookedTransformer" (e.g. `blocks.3.hook_resid_post`).
        hook: The hook whose activations the SAEs reconstruct.
        dataset: Local .txt/.md/.jsonl files or directories (comma-separated), or a
            Hugging Face dataset path when online; None means the embedded corpus
            (the Python standard library's source).
        text_column: The dataset column holding the text.
        eval_fraction: Fraction of the dataset's rows held out for evaluation
            (fixed seed) when it has no held-out files of its own.
        context_size: Tokens per sequence.
        device: "cpu", "cuda", "mps" ...; the model and the SAEs use it.
        cache_dir: Root of the model/corpus cache (default $SAELENS_ALIGNED_CACHE,
            else $XDG_CACHE_HOME/saelens-aligned).
        activations_dir: Where activation caches live (default
            <cache root>/activations).
    """

    model: str | None = None
    model_class: str = "AutoModelForCausalLM"
    hook: str = "model.layers.3"
    dataset: str | None = None
    text_column: str = "text"
    eval_fraction: float = 0.1
    context_size: int = 128
    device: str = "cpu"
    cache_dir: str | None = None
    activations_dir: str | None = None

    def identity(self) -> dict[str, Any]:
        """The fields that define the activations (not where they are kept)."""
        skip = {"device", "cache_dir", "activations_dir"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass(frozen=True)
class ResolvedSource:
    """A checked `Source`, with what loading it needs.

    Attributes:
        source: The source as given.
        model_name: What SAELens loads (a local directory or a hub name).
        model_label: A short name for reports.
        corpus: The text, resolved.
        activations_root: Folder of the activation caches.
    """

    source: Source
    model_name: str
    model_label: str
    corpus: TextCorpus
    activations_root: Path


def resolve_model(source: Source) -> tuple[str, str]:
    """(model_name for SAELens, label for reports); fails fast on bad input."""
    if source.model_class not in MODEL_CLASSES:
        raise SourceError(
            f"--model-class {source.model_class!r} is not supported; choose one of "
            f"{list(MODEL_CLASSES)}."
        )
    if source.model is None:
        if source.model_class != "AutoModelForCausalLM":
            raise SourceError(
                "The embedded default model runs with --model-class "
                "AutoModelForCausalLM; pass --model for a HookedTransformer model."
            )
        return str(default_model_dir(source.cache_dir)), DEFAULT_MODEL_NAME
    path = Path(source.model).expanduser()
    looks_local = source.model.startswith((".", "/", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise SourceError(
                f"--model {source.model!r}: no such model directory. Pass an existing "
                "local model directory (with config.json), a Hugging Face model name, "
                "or leave --model out for the embedded SmolLM2-135M-Instruct."
            )
        if source.model_class == "HookedTransformer":
            raise SourceError(
                "A local model directory loads with --model-class "
                "AutoModelForCausalLM; HookedTransformer needs a model name that "
                "TransformerLens knows (e.g. gpt2, EleutherAI/pythia-70m)."
            )
        if not (path / "config.json").exists():
            raise SourceError(
                f"--model {source.model!r} is a directory without config.json, so it "
                "is not a saved Hugging Face model directory."
            )
        return str(path.resolve()), path.name
    if hub_is_offline():
        raise SourceError(
            f"--model {source.model!r} is not a local directory and the Hugging Face "
            "hub is unreachable (offline, or HF_HUB_OFFLINE=1). Pass a local model "
            "directory, or leave --model out for the embedded SmolLM2-135M-Instruct."
        )
    return source.model, source.model


def hf_module_names(model_name: str) -> list[str]:
    """Module paths of an AutoModelForCausalLM, built on the meta device (no
    weights are read)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_config = AutoConfig.from_pretrained(model_name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
    return [name for name, _ in model.named_modules() if name]


def check_hook_name(hook: str, valid: list[str]) -> None:
    if hook in valid:
        return
    nearby = difflib.get_close_matches(hook, valid, n=8, cutoff=0.5)
    if not nearby:
        nearby = valid[:8]
    raise SourceError(
        f"--hook {hook!r} does not exist in the model. Valid nearby names: "
        f"{', '.join(nearby)}. (Residual stream after block N: 'model.layers.N' for "
        "AutoModelForCausalLM, 'blocks.N.hook_resid_post' for HookedTransformer.)"
    )


def resolve_source(source: Source) -> ResolvedSource:
    """Model, corpus, hook and activation-cache location of `source`, checked
    before any weights load. (A HookedTransformer's hook names are checked once
    the model is loaded: `check_hook_name(hook, list(model.hook_dict))`.)"""
    if source.context_size <= 0:
        raise SourceError(
            f"--context-size {source.context_size} must be a positive number of tokens."
        )
    if source.device.startswith("cuda") and not torch.cuda.is_available():
        raise SourceError("--device cuda was requested but no GPU is visible.")
    model_name, model_label = resolve_model(source)
    try:
        corpus = resolve_corpus(
            source.dataset, source.cache_dir, source.text_column, source.eval_fraction
        )
    except DatasetResolutionError as e:
        raise SourceError(str(e)) from e
    if source.model_class == "AutoModelForCausalLM":
        check_hook_name(source.hook, hf_module_names(model_name))
    activations_root = (
        Path(source.activations_dir).expanduser()
        if source.activations_dir
        else cache_root(source.cache_dir) / "activations"
    )
    return ResolvedSource(
        source=source,
        model_name=model_name,
        model_label=model_label,
        corpus=corpus,
        activations_root=activations_root,
    )


def load_source_model(resolved: ResolvedSource) -> Any:
    """The source's model, loaded once, its hook name checked."""
    from saelens_aligned.pipeline.models import load_model

    source = resolved.source
    model = load_model(
        source.model_class, resolved.model_name, source.hook, source.device
    )
    if source.model_class != "AutoModelForCausalLM":
        check_hook_name(source.hook, list(model.hook_dict))
    return model
