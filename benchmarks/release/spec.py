"""What the pretrained release holds, how it is trained, and where its build
writes: shared by the build (`benchmarks.release.build`) and its storage-precision
check (`benchmarks.release.precision`)."""

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.sweeps.config import ArchitectureSweep, EvalSettings, SweepConfig
from benchmarks.sweeps.runs import RunSpec, expand_runs
from saelens_aligned.io.pretrained import RELEASES_DIRNAME, default_registry_path
from saelens_aligned.pipeline.models import DEFAULT_MODEL_HUB_ID, EMBEDDED_WEIGHTS
from saelens_aligned.pipeline.transformer_lens_view import transformer_lens_hook_name

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIRNAME = "shipped"


@dataclass(frozen=True)
class ReleasePaths:
    """Where a build writes.

    Args:
        results_dir: The layers' sweep folders (records committed, weights not),
            and `shipped/`, the records of the shipped files.
        releases_dir: The package's folder of compact files (`releases/`).
        registry: The package's pretrained_saes.yaml.
    """

    results_dir: Path = ROOT / "benchmarks" / "results" / "release"
    releases_dir: Path = ROOT / "saelens_aligned" / RELEASES_DIRNAME
    registry: Path = field(default_factory=default_registry_path)


@dataclass(frozen=True)
class ReleaseSpec:
    """What the release holds and how it is trained.

    Args:
        name: Release name, as passed to `SAE.from_pretrained`.
        repo_id: The Hugging Face repo the same SAEs go to with `upload_saes`
            (the registry needs one; the packaged files need no hub).
        model_label: The model named in the registry.
        model_id: The model's hub name, each SAE's metadata `model_name` (the
            build reads the embedded model from a local folder; `model_weights`
            says which weights those are, and our tools load them offline).
        layers: Residual-stream layers (`model.layers.N`, after block N) of the
            30-block SmolLM2-135M-Instruct: early, middle and late.
        d_sae: Latents (8x d_in 576).
        k: Active latents per token.
        dataset: Training and held-out text (Brown: natural English, held-out
            split never trained on).
        context_size: Tokens per sequence.
        activation_tokens: Tokens of cached training activations (Brown's train
            split holds about 1.06M tokens).
        training_tokens: Tokens each SAE trains on: two passes over the cache.
        train_batch_size_tokens: Tokens per step.
        lr: Adam rate of both arms: the best of the cpu sweep's grid for stock
            TopK and inside the flat top of aligned TopK's (1e-3 of 3e-4..1e-2).
        seed: SAE initialisation and activation order.
        dead_window_tokens: Held-out tokens of the long dead-latent window.
        eval: SAEBench core's budget and the other evaluation settings.
        activations_dir: Where activation caches live; None: the cache root's.
    """

    name: str = "smollm2-135m-instruct-res-aligned-topk-8x"
    repo_id: str = "saelens-aligned/smollm2-135m-instruct-res-aligned-topk-8x"
    model_label: str = "SmolLM2-135M-Instruct"
    model_id: str = DEFAULT_MODEL_HUB_ID
    layers: tuple[int, ...] = (3, 15, 27)
    d_sae: int = 4608
    k: int = 32
    dataset: str | None = "brown"
    context_size: int = 128
    activation_tokens: int = 1_000_000
    training_tokens: int = 2_048_000
    train_batch_size_tokens: int = 1024
    lr: float = 1e-3
    seed: int = 42
    dead_window_tokens: int = 262_144
    eval: EvalSettings = field(
        default_factory=lambda: EvalSettings(
            batch_size_prompts=8,
            n_eval_reconstruction_batches=8,
            n_eval_sparsity_variance_batches=32,
            meta_structure=False,
            dead_window_tokens=262_144,
        )
    )

    activations_dir: str | None = None

    def sae_id(self, layer: int) -> str:
        return f"layer_{layer}"

    def hook(self, layer: int) -> str:
        return f"model.layers.{layer}"

    def sae_metadata(self, layer: int) -> dict[str, str]:
        """What a shipped SAE's metadata says instead of the build machine's
        model path and module-path hook: the model's hub name, as a
        HookedTransformer (TransformerLens' hook name, which SAELens' tools
        expect), the module path for `AutoModelForCausalLM`, and the weights."""
        return {
            "model_name": self.model_id,
            "model_class_name": "HookedTransformer",
            "hook_name": transformer_lens_hook_name(self.hook(layer)),
            "hf_hook_name": self.hook(layer),
            "model_weights": EMBEDDED_WEIGHTS,
        }

    def aligned_run(self, layer: int) -> RunSpec:
        """The layer's run that ships."""
        return next(r for r in expand_runs(self.sweep(layer)) if r.alignment)

    def sweep(self, layer: int) -> SweepConfig:
        """The layer's two-arm sweep."""
        return SweepConfig(
            name=f"release-{self.sae_id(layer)}",
            hook=self.hook(layer),
            dataset=self.dataset,
            context_size=self.context_size,
            architectures=[
                ArchitectureSweep("topk", "k", [self.k]),
                ArchitectureSweep("aligned_topk", "k", [self.k], alignments=["tied"]),
            ],
            d_sae=[self.d_sae],
            seeds=[self.seed],
            training_tokens=self.training_tokens,
            activation_tokens=self.activation_tokens,
            train_batch_size_tokens=self.train_batch_size_tokens,
            lr=self.lr,
            activation_seed=self.seed,
            eval=replace(self.eval, dead_window_tokens=self.dead_window_tokens),
            sparse_stock_step=True,
            activations_dir=self.activations_dir,
        )


RELEASE = ReleaseSpec()


def layer_dir(spec: ReleaseSpec, layer: int, paths: ReleasePaths) -> Path:
    return paths.results_dir / spec.sae_id(layer)


def shipped_dir(spec: ReleaseSpec, layer: int, paths: ReleasePaths) -> Path:
    """The layer's folder of shipped-file records."""
    return paths.results_dir / SHIPPED_DIRNAME / spec.sae_id(layer)


def compact_file(spec: ReleaseSpec, layer: int, paths: ReleasePaths) -> Path:
    return paths.releases_dir / spec.name / f"{spec.sae_id(layer)}.safetensors"


def trained_sae_dir(spec: ReleaseSpec, layer: int, paths: ReleasePaths) -> Path:
    """The float32 SAE folder the layer's training wrote (not committed)."""
    return layer_dir(spec, layer, paths) / "saes" / spec.aligned_run(layer).run_id


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
