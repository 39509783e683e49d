"""`saelens-aligned demo`: an aligned SAE against its base and its fair control, side
by side, on a real LM.

The three SAEs (`demo_arms`) share the seed, the cached activations (so the batch
order) and the evaluation tokens:
- the aligned architecture (e.g. `aligned_topk`, form `tied`);
- its baseline, by default the stock base (`topk`) from SAELens' own init;
- the **fair control**: the stock base from the balanced init, exactly the weights
  the aligned `projected` form starts from at the same seed (e_i = d_i at unit
  norm, `saelens_aligned.initialisation`), trained without the constraint. At
  step 0 it computes the same function as the aligned SAE, so what separates them
  is the constraint during training; what separates it from the stock base is
  the start alone.

A thin app over the pipeline (`saelens_aligned.pipeline`):
1. `validate` - cheap checks of every input (model, dataset, hook, output folder)
   before anything expensive runs.
2. `pipeline.activations.ensure_activation_cache` - SAELens' CacheActivationsRunner,
   once per (model, corpus, hook, context, tokens, seed), reused by any rerun.
3. `pipeline.training.train_sae` - SAELens' runner on the cached activations, once
   per arm, each from its `initialisation.initial_sae` at the demo's seed.
4. `pipeline.evaluation.evaluate` - SAEBench's core eval against the live model on
   held-out text, and the alignment scores of every SAE.
5. `saelens_aligned.apps.report.write_report` - table, plots, JSON, and what the
   benchmark found when the same comparison trained longer
   (`saelens_aligned.apps.findings`).
"""

import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY
from tqdm.auto import tqdm

from saelens_aligned.alignment import AlignmentForm
from saelens_aligned.architectures import aligned_architectures, base_architecture
from saelens_aligned.diagnostics import sae_alignment_scores
from saelens_aligned.errors import InputError
from saelens_aligned.initialisation import BALANCED_FORM, initial_sae
from saelens_aligned.io.files import write_text_atomic
from saelens_aligned.io.sae_dirs import load_sae_dir
from saelens_aligned.pipeline.activations import ensure_activation_cache
from saelens_aligned.pipeline.evaluation import EvalBudget, evaluate
from saelens_aligned.pipeline.models import hook_width
from saelens_aligned.pipeline.progress import say
from saelens_aligned.pipeline.source import (
    ResolvedSource,
    Source,
    SourceError,
    load_source_model,
    resolve_source,
)
from saelens_aligned.pipeline.training import TrainingSettings, train_sae
from saelens_aligned.pipeline.transformer_lens_view import hook_for_view
from saelens_aligned.sae_config import build_sae_config

RUN_FILENAME = "run.json"
DEFAULT_OUTPUT_DIR = "saelens-aligned-demo"


class DemoInputError(InputError):
    """A demo input is unusable; the message says why and what to do instead."""


@dataclass
class DemoConfig:
    """Settings of `saelens-aligned demo`. The defaults are sized to finish in a few
    minutes on two CPU cores (README.md, "Command line", has the measured time).

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
        k: Active latents per token for TopK-family SAEs (every SAE gets the same
            k, so the comparison is at equal L0).
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
        pretrained: A released SAE to explore instead of training three,
            `RELEASE/SAE_ID` (e.g. the packaged
            `smollm2-135m-instruct-res-aligned-topk-8x/layer_3`): nothing is
            cached or trained; it is evaluated on held-out text at its own hook.
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
    pretrained: str | None = None

    def source(self) -> Source:
        """The model, hook and text every stage of the demo reads."""
        return Source(
            model=self.model,
            model_class=self.model_class,
            hook=self.hook,
            dataset=self.dataset,
            context_size=self.context_size,
            device=self.device,
            cache_dir=self.cache_dir,
            activations_dir=self.activations_dir,
        )

    def training(self) -> TrainingSettings:
        return TrainingSettings(
            training_tokens=self.training_tokens,
            train_batch_size_tokens=self.train_batch_size_tokens,
            lr=self.lr,
            seed=self.seed,
            model_batch_size=self.model_batch_size,
        )

    def eval_budget(self) -> EvalBudget:
        return EvalBudget(
            batch_size_prompts=self.eval_batch_size_prompts,
            n_eval_reconstruction_batches=self.eval_reconstruction_batches,
            n_eval_sparsity_variance_batches=self.eval_sparsity_variance_batches,
        )

    def run_identity(self) -> dict[str, Any]:
        """The fields that define what the run computes (not where it writes)."""
        skip = {"output_dir", "cache_dir", "activations_dir", "overwrite", "device"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class DemoInputs:
    """Everything `validate` found out, for the later stages."""

    config: DemoConfig
    resolved: ResolvedSource
    baseline: str
    output_dir: Path


@dataclass(frozen=True)
class DemoArm:
    """One SAE the demo trains.

    Attributes:
        name: Its key in the results and its folder under `saes/`.
        architecture: The SAELens architecture it trains as.
        label: Its column in the report.
        start_from: None: its architecture's own init; an alignment form: the
            weights the aligned variant starts from in that form (the balanced
            init for `BALANCED_FORM`).
    """

    name: str
    architecture: str
    label: str
    start_from: AlignmentForm | None = None


def demo_arms(config: DemoConfig, baseline: str) -> list[DemoArm]:
    """The aligned SAE, its baseline and, when the aligned architecture has a
    stock base, the fair control: that base from the balanced init."""
    arms = [
        DemoArm(config.architecture, config.architecture, f"`{config.architecture}`"),
        DemoArm(baseline, baseline, f"`{baseline}`"),
    ]
    if config.architecture in aligned_architectures():
        base = base_architecture(SAE_TRAINING_CLASS_REGISTRY[config.architecture][1])
        arms.append(
            DemoArm(
                f"{base}_balanced_init",
                base,
                f"fair control ({base} from the balanced init)",
                start_from=BALANCED_FORM,
            )
        )
    return arms


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


def resolve_pretrained(config: DemoConfig) -> tuple[DemoConfig, Path]:
    """The config at the released SAE's own hook, and the SAE's local folder
    (packaged releases are expanded into the cache here)."""
    from saelens_aligned.io.pretrained import resolve_sae_dir

    assert config.pretrained is not None
    release, _, sae_id = config.pretrained.partition("/")
    if not release or not sae_id:
        raise DemoInputError(
            f"--pretrained {config.pretrained!r}: give RELEASE/SAE_ID, e.g. "
            "smollm2-135m-instruct-res-aligned-topk-8x/layer_3."
        )
    try:
        sae_dir = resolve_sae_dir(release, sae_id)
    except (FileNotFoundError, ValueError) as e:
        raise DemoInputError(f"--pretrained {config.pretrained!r}: {e}") from e
    cfg = json.loads((sae_dir / "cfg.json").read_text())
    hook = cfg.get("metadata", {}).get("hook_name")
    # Releases name TransformerLens' hook; the demo's model may spell it otherwise.
    hook = hook_for_view(hook, config.model_class) if hook else config.hook
    return replace(config, hook=hook), sae_dir


def validate(config: DemoConfig) -> DemoInputs:
    """Every check that can fail, before the model runs on any text."""
    if config.pretrained is not None:
        output_dir = check_output_dir(config)
        try:
            resolved = resolve_source(config.source())
        except SourceError as e:
            raise DemoInputError(str(e)) from e
        return DemoInputs(config, resolved, "", output_dir)
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
    for name in ("training_tokens", "d_sae", "train_batch_size_tokens"):
        if getattr(config, name) <= 0:
            raise DemoInputError(f"--{name.replace('_', '-')} must be positive.")
    if config.training_tokens < config.context_size:
        raise DemoInputError("--training-tokens must be at least --context-size.")
    output_dir = check_output_dir(config)
    try:
        resolved = resolve_source(config.source())
    except SourceError as e:
        raise DemoInputError(str(e)) from e
    return DemoInputs(config, resolved, baseline, output_dir)


def sae_config(architecture: str, config: DemoConfig, d_in: int) -> Any:
    """The training config of `architecture`, given the demo's shared settings
    (k where the config has k, l1_coefficient where it has that)."""
    return build_sae_config(
        architecture,
        d_in,
        config.d_sae,
        training_steps=config.training().training_steps,
        shared={"k": config.k, "l1_coefficient": config.l1_coefficient},
    )


def evaluate_sae(inputs: DemoInputs, model: Any, sae_dir: Path) -> dict[str, Any]:
    """The one evaluation of the SAE saved in `sae_dir`, as a dict, with its
    alignment scores."""
    config = inputs.config
    sae = load_sae_dir(sae_dir, device=config.device)
    result = evaluate(sae, model, inputs.resolved, config.eval_budget())
    scores = sae_alignment_scores(sae)
    return {**result.to_dict(), "alignment_scores": [float(x) for x in scores]}


@dataclass
class DemoResult:
    """Where the demo wrote its report, and what it measured."""

    output_dir: Path
    activation_cache: Path | None  # None for --pretrained: nothing was cached
    results: dict[str, dict[str, Any]]
    seconds: float


def run_demo(config: DemoConfig) -> DemoResult:
    """Validate, cache, train the three SAEs, evaluate them and write the report."""
    from saelens_aligned.apps.report import write_report

    start = time.monotonic()
    if config.pretrained is not None:
        return run_pretrained(config)
    inputs = validate(config)
    inputs.output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        inputs.output_dir / RUN_FILENAME,
        json.dumps(
            {"config": _jsonable(config.run_identity()), "status": "running"}, indent=2
        ),
    )
    resolved = inputs.resolved
    say(f"Loading {resolved.model_label} ({config.model_class}) on {config.device} ...")
    model = load_source_model(resolved)
    d_in = hook_width(model, config.hook)
    training = config.training()
    cache_dir = ensure_activation_cache(
        resolved,
        model,
        d_in,
        config.training_tokens,
        config.seed,
        config.model_batch_size,
    )
    arms = demo_arms(config, inputs.baseline)
    sae_dirs = {}
    for arm in arms:
        cfg = sae_config(arm.architecture, config, d_in)
        sae_dirs[arm.name] = train_sae(
            resolved,
            cfg,
            training,
            model,
            inputs.output_dir / "saes" / arm.name,
            cached_activations=cache_dir,
            override_sae=initial_sae(cfg, config.seed, arm.start_from),
        )
    results: dict[str, dict[str, Any]] = {}
    for arm in tqdm(arms, desc="SAEBench core eval", unit="SAE"):
        results[arm.name] = evaluate_sae(inputs, model, sae_dirs[arm.name])
    seconds = time.monotonic() - start
    write_report(
        inputs.output_dir,
        results,
        meta={
            **source_meta(config, resolved),
            "d_in": d_in,
            "activation_cache": str(cache_dir),
            "training": training.to_dict(),
            "labels": {arm.name: arm.label for arm in arms},
            "fair_control": next(
                (arm.name for arm in arms if arm.start_from == BALANCED_FORM), None
            ),
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


def run_pretrained(config: DemoConfig) -> DemoResult:
    """`--pretrained`: evaluate a released SAE on held-out text at its own hook and
    write the same report, for one SAE."""
    from saelens_aligned.apps.report import write_report

    start = time.monotonic()
    config, sae_dir = resolve_pretrained(config)
    inputs = validate(config)
    inputs.output_dir.mkdir(parents=True, exist_ok=True)
    resolved = inputs.resolved
    say(f"Loading {resolved.model_label} ({config.model_class}) on {config.device} ...")
    model = load_source_model(resolved)
    results = {config.pretrained or "": evaluate_sae(inputs, model, sae_dir)}
    seconds = time.monotonic() - start
    write_report(
        inputs.output_dir,
        results,
        meta={
            **source_meta(config, resolved),
            "d_in": json.loads((sae_dir / "cfg.json").read_text())["d_in"],
            "pretrained": config.pretrained,
            "sae_dir": str(sae_dir),
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
    return DemoResult(inputs.output_dir, None, results, seconds)


def source_meta(config: DemoConfig, resolved: Any) -> dict[str, Any]:
    """What the report says about the model, hook and text (both demo modes)."""
    return {
        "model": resolved.model_label,
        "model_name": resolved.model_name,
        "model_class": config.model_class,
        "corpus": resolved.corpus.name,
        "corpus_licence": resolved.corpus.licence,
        "eval_text": "held-out documents"
        if resolved.corpus.eval
        else "held-out rows of the dataset",
        "hook": config.hook,
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
