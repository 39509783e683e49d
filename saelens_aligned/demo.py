"""The demo pipeline: an aligned SAE against its base, side by side, on a real LM.

Stages, each reusable on its own:
1. `validate` - cheap checks of every input (model, dataset, hook, output folder)
   before anything expensive runs.
2. `ensure_activation_cache` - SAELens' CacheActivationsRunner, once per
   (model, corpus, hook, context, tokens, seed); the cache directory appears under
   its final name only when complete, so an interrupted run never leaves a
   half-written cache and a rerun reuses a finished one.
3. `train_pair` - SAELens' LanguageModelSAETrainingRunner with
   `use_cached_activations=True`, once per architecture, on the same cache.
4. `evaluate_pair` - SAEBench's core eval against the live model, and the
   alignment scores of both SAEs.
5. `saelens_aligned.report.write_report` - table, plots, JSON.
"""

import difflib
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from saelens_aligned.corpus import TextCorpus, hub_is_offline, resolve_corpus

MODEL_CLASSES = ("AutoModelForCausalLM", "HookedTransformer")
RUN_FILENAME = "run.json"
CACHE_CONFIG_FILENAME = "saelens_aligned_cache.json"
DEFAULT_OUTPUT_DIR = "saelens-aligned-demo"


class DemoInputError(ValueError):
    """A demo input is unusable; the message says why and what to do instead."""


@dataclass
class DemoConfig:
    """Settings of `saelens-aligned demo`. Defaults finish in about 15 minutes on
    two CPU cores.

    Attributes:
        model: Local model directory or Hugging Face model name; None means the
            embedded SmolLM2-135M-Instruct (converted once into the cache).
        model_class: "AutoModelForCausalLM" (hook names are module paths, e.g.
            `model.layers.3`) or "HookedTransformer" (e.g. `blocks.3.hook_resid_post`).
        dataset: Local .txt/.md/.jsonl files or directories (comma-separated), or a
            Hugging Face dataset path when online; None means the embedded corpus
            (the Python standard library's source).
        hook: The hook whose activations the SAEs reconstruct.
        architecture: The aligned architecture to train.
        baseline: The architecture it is compared with; None means its base
            (`aligned_topk` -> `topk`).
        k: Active latents per token for TopK-family SAEs (both get the same k, so
            the comparison is at equal L0).
        l1_coefficient: Sparsity coefficient for ReLU+L1 SAEs (`standard`, `aligned`).
        d_sae: Number of latents.
        context_size: Tokens per sequence.
        training_tokens: Tokens cached and trained on (one pass).
        train_batch_size_tokens: Tokens per optimizer step.
        lr: Learning rate.
        seed: Seed of SAE initialisation and activation shuffling.
        model_batch_size: Prompts per model forward pass when caching.
        eval_batch_size_prompts: Prompts per forward pass in the core eval.
        eval_reconstruction_batches: Batches for the CE-loss and KL scores.
        eval_sparsity_variance_batches: Batches for L0, variance, densities.
        device: "cpu", "cuda", "mps" ...; the model and the SAEs use it.
        output_dir: The report folder.
        cache_dir: Root of the model/corpus cache (default $SAELENS_ALIGNED_CACHE,
            else $XDG_CACHE_HOME/saelens-aligned).
        activations_dir: Where activation caches live (default
            <cache root>/activations).
        overwrite: Replace an output folder that holds a different run.
    """

    model: str | None = None
    model_class: str = "AutoModelForCausalLM"
    dataset: str | None = None
    hook: str = "model.layers.3"
    architecture: str = "aligned_topk"
    baseline: str | None = None
    k: int = 32
    l1_coefficient: float = 5.0
    d_sae: int = 1536
    context_size: int = 128
    training_tokens: int = 160_000
    train_batch_size_tokens: int = 1024
    lr: float = 5e-4
    seed: int = 42
    model_batch_size: int = 16
    eval_batch_size_prompts: int = 4
    eval_reconstruction_batches: int = 2
    eval_sparsity_variance_batches: int = 32
    device: str = "cpu"
    output_dir: str = DEFAULT_OUTPUT_DIR
    cache_dir: str | None = None
    activations_dir: str | None = None
    overwrite: bool = False

    def run_identity(self) -> dict[str, Any]:
        """The fields that define what the run computes (not where it writes)."""
        skip = {"output_dir", "cache_dir", "activations_dir", "overwrite", "device"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class ResolvedInputs:
    """Everything `validate` found out, for the later stages."""

    config: DemoConfig
    model_name: str
    model_label: str
    baseline: str
    corpus: TextCorpus
    output_dir: Path
    activations_root: Path


def say(message: str) -> None:
    """A progress line that does not break tqdm bars."""
    tqdm.write(message, file=sys.stderr)


# --------------------------------------------------------------------------- #
# 1. Validation (cheap, before any expensive work)
# --------------------------------------------------------------------------- #


def resolve_model(config: DemoConfig) -> tuple[str, str]:
    """(model_name for SAELens, label for the report); fails fast on bad input."""
    if config.model_class not in MODEL_CLASSES:
        raise DemoInputError(
            f"--model-class {config.model_class!r} is not supported; choose one of "
            f"{list(MODEL_CLASSES)}."
        )
    if config.model is None:
        from saelens_aligned.offline import DEFAULT_MODEL_NAME, default_model_dir

        if config.model_class != "AutoModelForCausalLM":
            raise DemoInputError(
                "The embedded default model runs with --model-class "
                "AutoModelForCausalLM; pass --model for a HookedTransformer model."
            )
        say("Preparing the embedded model (converted once, then reused) ...")
        return str(default_model_dir(config.cache_dir)), DEFAULT_MODEL_NAME
    path = Path(config.model).expanduser()
    looks_local = config.model.startswith((".", "/", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise DemoInputError(
                f"--model {config.model!r}: no such model directory. Pass an existing "
                "local model directory (with config.json), a Hugging Face model name, "
                "or leave --model out for the embedded SmolLM2-135M-Instruct."
            )
        if config.model_class == "HookedTransformer":
            raise DemoInputError(
                "A local model directory loads with --model-class "
                "AutoModelForCausalLM; HookedTransformer needs a model name that "
                "TransformerLens knows (e.g. gpt2, EleutherAI/pythia-70m)."
            )
        if not (path / "config.json").exists():
            raise DemoInputError(
                f"--model {config.model!r} is a directory without config.json, so it "
                "is not a saved Hugging Face model directory."
            )
        return str(path.resolve()), path.name
    if hub_is_offline():
        raise DemoInputError(
            f"--model {config.model!r} is not a local directory and the Hugging Face "
            "hub is unreachable (offline, or HF_HUB_OFFLINE=1). Pass a local model "
            "directory, or leave --model out for the embedded SmolLM2-135M-Instruct."
        )
    return config.model, config.model


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
    raise DemoInputError(
        f"--hook {hook!r} does not exist in the model. Valid nearby names: "
        f"{', '.join(nearby)}. (Residual stream after block N: 'model.layers.N' for "
        "AutoModelForCausalLM, 'blocks.N.hook_resid_post' for HookedTransformer.)"
    )


def check_output_dir(config: DemoConfig) -> Path:
    """The output folder, refusing one that holds a different run."""
    out = Path(config.output_dir).expanduser()
    if not out.exists() or not any(out.iterdir()):
        return out
    if out.is_file():
        raise DemoInputError(f"--output {str(out)!r} is a file, not a folder.")
    run_file = out / RUN_FILENAME
    previous = None
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text()).get("config")
        except (OSError, ValueError):
            previous = None
    if previous == _jsonable(config.run_identity()):
        return out  # the same run again: its files are rewritten
    if config.overwrite:
        if run_file.exists():
            for child in ("saes", "plots"):
                shutil.rmtree(out / child, ignore_errors=True)
        return out
    what = "a different demo run" if run_file.exists() else "files of something else"
    raise DemoInputError(
        f"The output folder {str(out)!r} already holds {what}. Pass --overwrite to "
        "replace it, or choose another folder with --output."
    )


def validate(config: DemoConfig) -> ResolvedInputs:
    """Every check that can fail, before the model runs on any text."""
    from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY

    import saelens_aligned  # noqa: F401  (registers the aligned architectures)
    from saelens_aligned.architectures import aligned_architectures, base_architecture

    if config.architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise DemoInputError(
            f"--architecture {config.architecture!r} is not a registered SAELens "
            f"architecture. Valid choices: {sorted(SAE_TRAINING_CLASS_REGISTRY)}."
        )
    if config.baseline is not None:
        baseline = config.baseline
    elif config.architecture in aligned_architectures():
        config_class = SAE_TRAINING_CLASS_REGISTRY[config.architecture][1]
        baseline = base_architecture(config_class)
    else:
        raise DemoInputError(
            f"--architecture {config.architecture!r} is not an aligned architecture, "
            "so it has no default baseline; pass --baseline explicitly."
        )
    if baseline not in SAE_TRAINING_CLASS_REGISTRY:
        raise DemoInputError(
            f"--baseline {baseline!r} is not a registered SAELens architecture. "
            f"Valid choices: {sorted(SAE_TRAINING_CLASS_REGISTRY)}."
        )
    if baseline == config.architecture:
        raise DemoInputError("--baseline must differ from --architecture.")
    for name in ("training_tokens", "d_sae", "context_size", "train_batch_size_tokens"):
        if getattr(config, name) <= 0:
            raise DemoInputError(f"--{name.replace('_', '-')} must be positive.")
    if config.training_tokens < config.context_size:
        raise DemoInputError("--training-tokens must be at least --context-size.")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise DemoInputError("--device cuda was requested but no GPU is visible.")
    output_dir = check_output_dir(config)
    return resolve_data_inputs(config, output_dir, baseline)


def resolve_data_inputs(
    config: DemoConfig, output_dir: Path, baseline: str = ""
) -> ResolvedInputs:
    """Model, corpus, hook and activation-cache location of `config` (the checks
    shared by the demo and the benchmark sweeps); fails fast on bad input."""
    model_name, model_label = resolve_model(config)
    try:
        corpus = resolve_corpus(config.dataset, config.cache_dir)
    except ValueError as e:
        raise DemoInputError(str(e)) from e
    if config.model_class == "AutoModelForCausalLM":
        check_hook_name(config.hook, hf_module_names(model_name))
    from saelens_aligned.offline import cache_root

    activations_root = (
        Path(config.activations_dir).expanduser()
        if config.activations_dir
        else cache_root(config.cache_dir) / "activations"
    )
    return ResolvedInputs(
        config=config,
        model_name=model_name,
        model_label=model_label,
        baseline=baseline,
        corpus=corpus,
        output_dir=output_dir,
        activations_root=activations_root,
    )


# --------------------------------------------------------------------------- #
# 2. Model and activation cache
# --------------------------------------------------------------------------- #


def load_model(inputs: ResolvedInputs) -> Any:
    from sae_lens.load_model import load_model as sae_lens_load_model

    config = inputs.config
    model = sae_lens_load_model(
        config.model_class,
        inputs.model_name,
        device=config.device,
        hook_names=[config.hook]
        if config.model_class == "AutoModelForCausalLM"
        else None,
    )
    model.eval()
    if config.model_class != "AutoModelForCausalLM":
        check_hook_name(config.hook, list(model.hook_dict))
    return model


@torch.no_grad()
def hook_width(model: Any, hook: str) -> int:
    """d_in: the last dimension of `hook`'s activation on a two-token input."""
    seen: list[int] = []

    def record(activation: torch.Tensor, hook: Any) -> None:  # noqa: ARG001
        seen.append(int(activation.shape[-1]))

    tokens = torch.tensor([[1, 2]], device=next(model.parameters()).device)
    model.run_with_hooks(tokens, fwd_hooks=[(hook, record)])
    return seen[0]


def cache_key(inputs: ResolvedInputs, d_in: int) -> dict[str, Any]:
    """What the cached activations depend on; a different key means a new cache."""
    config = inputs.config
    return {
        "model": inputs.model_name,
        "model_class": config.model_class,
        "corpus": _corpus_fingerprint(inputs.corpus),
        "hook": config.hook,
        "d_in": d_in,
        "context_size": config.context_size,
        "training_tokens": config.training_tokens,
        "seed": config.seed,
        "dtype": "float32",
    }


def _dataset_path(corpus: TextCorpus) -> str:
    """What SAELens configs record as `dataset_path` (local text is passed as an
    override dataset; the field must still be a non-empty string)."""
    return corpus.train if isinstance(corpus.train, str) else corpus.train[0]


def _corpus_fingerprint(corpus: TextCorpus) -> Any:
    if corpus.hub:
        return corpus.train
    assert isinstance(corpus.train, tuple)
    return [[p, os.path.getsize(p)] for p in corpus.train]


def activation_cache_dir(inputs: ResolvedInputs, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(
        json.dumps(key, sort_keys=True).encode("utf-8")
    ).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in inputs.model_label)
    return inputs.activations_root / f"{slug}-{inputs.config.hook}-{digest}"


def is_complete_cache(path: Path) -> bool:
    return (path / CACHE_CONFIG_FILENAME).exists() and (path / "state.json").exists()


def ensure_activation_cache(inputs: ResolvedInputs, model: Any, d_in: int) -> Path:
    """The activation cache of this run, made with SAELens' CacheActivationsRunner
    only if no complete one exists. Returns its directory."""
    from sae_lens import CacheActivationsRunnerConfig

    from saelens_aligned.corpus import load_corpus_split, write_text_atomic
    from saelens_aligned.io import replace_dir

    key = cache_key(inputs, d_in)
    final = activation_cache_dir(inputs, key)
    if is_complete_cache(final):
        say(f"Reusing the activation cache {final}")
        return final
    config = inputs.config
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # an interrupted earlier caching
    partial = final.parent / f".{final.name}.partial-{os.getpid()}"
    n_seq = math.ceil(config.training_tokens / config.context_size)
    model_batch_size = max(1, min(config.model_batch_size, n_seq))
    cache_config = CacheActivationsRunnerConfig(
        dataset_path=inputs.corpus.name
        if not inputs.corpus.hub
        else str(inputs.corpus.train),
        model_name=inputs.model_name,
        model_class_name=config.model_class,
        model_batch_size=model_batch_size,
        hook_name=config.hook,
        d_in=d_in,
        training_tokens=config.training_tokens,
        context_size=config.context_size,
        new_cached_activations_path=str(partial),
        shuffle=True,
        seed=config.seed,
        dtype="float32",
        device=config.device,
        buffer_size_gb=cache_buffer_size_gb(
            config.training_tokens, model_batch_size * config.context_size, d_in * 4
        ),
        streaming=inputs.corpus.hub,
        dataset_trust_remote_code=False,
    )
    say(f"Caching {config.training_tokens:,} tokens of {config.hook} activations ...")
    runner = _cache_runner(
        cache_config, model, load_corpus_split(inputs.corpus, "train")
    )
    try:
        runner.run()
        write_text_atomic(
            partial / CACHE_CONFIG_FILENAME, json.dumps(key, indent=2, sort_keys=True)
        )
        replace_dir(partial, final)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return final


def cache_buffer_size_gb(
    training_tokens: int,
    tokens_per_batch: int,
    bytes_per_token: int,
    max_tokens_per_buffer: int = 32_768,
) -> float:
    """SAELens caches whole buffers of whole model batches. Pick a buffer size
    that splits `training_tokens` into equal buffers of at most about
    `max_tokens_per_buffer` tokens: small shards keep memory low and the progress
    bar moving, and the total overshoots the budget by less than one model batch
    per buffer."""
    n_buffers = max(1, math.ceil(training_tokens / max_tokens_per_buffer))
    batches = max(1, math.ceil(training_tokens / n_buffers / tokens_per_batch))
    tokens = batches * tokens_per_batch
    # Half a token of slack: SAELens floors the size back to whole tokens.
    return (tokens + 0.5) * bytes_per_token / 1e9


def _cache_runner(cache_config: Any, model: Any, dataset: Any) -> Any:
    """SAELens' CacheActivationsRunner on an already loaded model (its __init__
    would load a second copy)."""
    import sae_lens.cache_activations_runner as car
    from sae_lens import CacheActivationsRunner

    original = car.load_model
    car.load_model = lambda *args, **kwargs: model  # type: ignore[assignment]  # noqa: ARG005
    try:
        return CacheActivationsRunner(cache_config, override_dataset=dataset)
    finally:
        car.load_model = original  # type: ignore[assignment]


# --------------------------------------------------------------------------- #
# 3. Training, with SAELens' own runner, on the cached activations
# --------------------------------------------------------------------------- #


def sae_config(architecture: str, config: DemoConfig, d_in: int) -> Any:
    """The training config of `architecture`, given the demo's shared settings
    (k for TopK-family SAEs, l1_coefficient for ReLU+L1 ones)."""
    from sae_lens.registry import get_sae_training_class

    _, config_class = get_sae_training_class(architecture)
    fields = config_class.__dataclass_fields__
    kwargs: dict[str, Any] = {"d_in": d_in, "d_sae": config.d_sae}
    if "k" in fields:
        kwargs["k"] = config.k
    if "l1_coefficient" in fields:
        kwargs["l1_coefficient"] = config.l1_coefficient
    if "matryoshka_widths" in fields:
        kwargs["matryoshka_widths"] = [config.d_sae // 4, config.d_sae]
    return config_class(**kwargs)


def train_sae(
    inputs: ResolvedInputs,
    architecture: str,
    model: Any,
    cache_dir: Path,
    d_in: int,
    out: Path | None = None,
    sae_cfg: Any | None = None,
) -> Path:
    """Train `architecture` on the cached activations; returns its SAELens folder
    (`out`, by default <output_dir>/saes/<architecture>). `sae_cfg` replaces the
    training config `sae_config` would build."""
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner
    from sae_lens.config import LoggingConfig

    from saelens_aligned.corpus import load_corpus_split
    from saelens_aligned.io import atomic_dir

    config = inputs.config
    if out is None:
        out = inputs.output_dir / "saes" / architecture
    # SAELens' mixing buffer must hold at least one training batch.
    n_batches_in_buffer = max(
        4, math.ceil(2 * config.train_batch_size_tokens / config.context_size)
    )
    runner_config = LanguageModelSAERunnerConfig(
        sae=sae_cfg if sae_cfg is not None else sae_config(architecture, config, d_in),
        model_name=inputs.model_name,
        model_class_name=config.model_class,
        hook_name=config.hook,
        dataset_path=_dataset_path(inputs.corpus),
        dataset_trust_remote_code=False,
        use_cached_activations=True,
        cached_activations_path=str(cache_dir),
        is_dataset_tokenized=False,
        streaming=False,
        context_size=config.context_size,
        training_tokens=config.training_tokens,
        train_batch_size_tokens=config.train_batch_size_tokens,
        n_batches_in_buffer=n_batches_in_buffer,
        store_batch_size_prompts=config.model_batch_size,
        lr=config.lr,
        seed=config.seed,
        device=config.device,
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=None,
        verbose=False,
    )
    torch.manual_seed(config.seed)
    say(f"Training {architecture} (d_sae {runner_config.sae.d_sae}) ...")
    # SAELens opens the text dataset even when it reads cached activations.
    text = None if inputs.corpus.hub else load_corpus_split(inputs.corpus, "train")
    # SAELens installs its own SIGINT/SIGTERM handlers for training; put ours back.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # SAELens writes the SAE folder file by file: it writes into a temporary
    # sibling that replaces `out` only once complete.
    with atomic_dir(out) as partial:
        runner_config.output_path = str(partial)
        try:
            LanguageModelSAETrainingRunner(
                runner_config, override_dataset=text, override_model=model
            ).run()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return out


# --------------------------------------------------------------------------- #
# 4. Evaluation
# --------------------------------------------------------------------------- #


def eval_activation_store(inputs: ResolvedInputs, model: Any, sae: Any) -> Any:
    """An ActivationsStore over held-out text and the live model."""
    from sae_lens.training.activations_store import ActivationsStore

    from saelens_aligned.corpus import load_corpus_split

    config = inputs.config
    return ActivationsStore.from_sae(
        model=model,
        sae=sae,
        dataset=load_corpus_split(inputs.corpus, "eval"),
        context_size=config.context_size,
        streaming=inputs.corpus.hub,
        store_batch_size_prompts=config.eval_batch_size_prompts,
        train_batch_size_tokens=config.eval_batch_size_prompts * config.context_size,
        n_batches_in_buffer=4,
        device=config.device,
    )


def evaluate_sae(inputs: ResolvedInputs, model: Any, sae_dir: Path) -> dict[str, Any]:
    """SAEBench core eval and alignment scores of the SAE saved in `sae_dir`."""
    from saelens_aligned.diagnostics import sae_alignment_scores, sae_alignment_summary
    from saelens_aligned.evaluation import (
        CoreEvalSettings,
        headline_metrics,
        run_core_eval,
    )
    from saelens_aligned.io import load_sae_dir

    config = inputs.config
    sae = load_sae_dir(sae_dir, device=config.device)
    if sae.cfg.metadata.prepend_bos is None:
        # SAEs saved outside a SAELens training run may not record how their
        # inputs were tokenized; SAELens' training default is to prepend BOS.
        sae.cfg.metadata.prepend_bos = True
    settings = CoreEvalSettings(
        batch_size_prompts=config.eval_batch_size_prompts,
        n_eval_reconstruction_batches=config.eval_reconstruction_batches,
        n_eval_sparsity_variance_batches=config.eval_sparsity_variance_batches,
    )
    store = eval_activation_store(inputs, model, sae)
    result = run_core_eval(sae, model, store, settings, model_name=inputs.model_name)
    scores = sae_alignment_scores(sae)
    return {
        "headline": headline_metrics(result),
        "saebench_core": result.metrics,
        "feature_density": result.feature_density,
        "alignment_scores": [float(x) for x in scores],
        "alignment_summary": sae_alignment_summary(sae).to_dict(),
    }


# --------------------------------------------------------------------------- #
# The whole job
# --------------------------------------------------------------------------- #


@dataclass
class DemoResult:
    """Where the demo wrote its report, and what it measured."""

    output_dir: Path
    activation_cache: Path
    results: dict[str, dict[str, Any]]
    seconds: float


def run_demo(config: DemoConfig) -> DemoResult:
    """Validate, cache, train both SAEs, evaluate them and write the report."""

    from saelens_aligned.corpus import write_text_atomic
    from saelens_aligned.report import write_report

    start = time.monotonic()
    inputs = validate(config)
    inputs.output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        inputs.output_dir / RUN_FILENAME,
        json.dumps(
            {"config": _jsonable(config.run_identity()), "status": "running"}, indent=2
        ),
    )
    say(f"Loading {inputs.model_label} ({config.model_class}) on {config.device} ...")
    model = load_model(inputs)
    d_in = hook_width(model, config.hook)
    cache_dir = ensure_activation_cache(inputs, model, d_in)
    architectures = [config.architecture, inputs.baseline]
    sae_dirs = {
        arch: train_sae(inputs, arch, model, cache_dir, d_in) for arch in architectures
    }
    results: dict[str, dict[str, Any]] = {}
    for arch in tqdm(architectures, desc="SAEBench core eval", unit="SAE"):
        results[arch] = evaluate_sae(inputs, model, sae_dirs[arch])
    seconds = time.monotonic() - start
    write_report(
        inputs.output_dir,
        results,
        meta={
            "model": inputs.model_label,
            "model_name": inputs.model_name,
            "model_class": config.model_class,
            "corpus": inputs.corpus.name,
            "corpus_licence": inputs.corpus.licence,
            "eval_text": "held-out documents"
            if inputs.corpus.eval
            else "the training text (it has no held-out split)",
            "hook": config.hook,
            "d_in": d_in,
            "activation_cache": str(cache_dir),
            "wall_seconds": round(seconds, 1),
            "config": _jsonable(asdict(config)),
        },
    )
    write_text_atomic(
        inputs.output_dir / RUN_FILENAME,
        json.dumps(
            {"config": _jsonable(config.run_identity()), "status": "complete"},
            indent=2,
        ),
    )
    return DemoResult(inputs.output_dir, cache_dir, results, seconds)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
