"""What a benchmark sweep trains and evaluates: a dataclass config, YAML presets.

    from benchmarks.config import load_sweep_config
    config = load_sweep_config("cpu")              # benchmarks/configs/cpu.yaml
    config = load_sweep_config("my_sweep.yaml")    # any YAML file of the same shape

`expand_runs` turns a config into its runs: every architecture x alignment form x
sparsity value x dictionary size x seed. Each run has a stable id, which names its
SAE folder and its record, so a rerun of the sweep finds what is already done.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"
PRESETS = ("ci", "cpu", "synthetic", "synthetic_cpu", "gpu")
ALIGNMENT_FORMS = ("tied", "projected")
SWEEP_KINDS = ("lm", "synthetic")


class SweepConfigError(ValueError):
    """A sweep config is unusable; the message names the field and the fix."""


@dataclass
class ArchitectureSweep:
    """One architecture of the sweep and the sparsity values it is trained at.

    Args:
        architecture: A registered SAELens training architecture (`topk`,
            `aligned_topk`, ...; importing `saelens_aligned` registers the aligned
            ones).
        sparsity_param: The SAE config field that sets sparsity: `k` for the TopK
            family, `l1_coefficient` for ReLU+L1 (standard, gated, p-annealing),
            `l0_coefficient` for JumpReLU.
        sparsity_values: Values of `sparsity_param`, one training run each; chosen
            so that every architecture's curve spans the same L0 range.
        alignments: Alignment forms to train (`tied`, `projected`); aligned
            architectures only. None means both.
        sae_kwargs: Further SAE config fields shared by every run of this
            architecture (e.g. `jumprelu_init_threshold`).
    """

    architecture: str
    sparsity_param: str
    sparsity_values: list[float]
    alignments: list[str] | None = None
    sae_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSettings:
    """How each trained SAE is evaluated.

    Args:
        batch_size_prompts: Prompts per model pass in SAEBench's core eval.
        n_eval_reconstruction_batches: Batches for the CE-loss and KL scores.
        n_eval_sparsity_variance_batches: Batches for L0, explained variance,
            densities, cosine similarity and L2 ratio.
        meta_structure: Run SAEBench's meta_structure eval (decoder weights only,
            works offline).
        meta_structure_train_steps: Training steps of the meta-SAE
            (SAEBench's default is 1500).
        absorption: Run SAEBench's absorption eval. It needs a HookedTransformer
            model and costs far more than the core eval; when it cannot run, the
            record says why.
        synthetic_eval_samples: Samples for the ground-truth metrics (synthetic
            sweeps).
    """

    batch_size_prompts: int = 4
    n_eval_reconstruction_batches: int = 2
    n_eval_sparsity_variance_batches: int = 16
    meta_structure: bool = True
    meta_structure_train_steps: int = 300
    absorption: bool = False
    synthetic_eval_samples: int = 50_000


@dataclass
class SweepConfig:
    """A benchmark sweep: the data, the SAEs, the budget and the evaluation.

    Args:
        name: Label of the sweep in records and reports.
        kind: `lm` (activations of a language model) or `synthetic` (SAELens'
            synthetic ground-truth model).
        model: LM directory or Hugging Face name; None means the embedded
            SmolLM2-135M-Instruct. (`lm` only.)
        model_class: `AutoModelForCausalLM` (hooks are module paths such as
            `model.layers.3`) or `HookedTransformer`. (`lm` only.)
        hook: The hook whose activations every SAE reconstructs. (`lm` only.)
        dataset: Local text files or folders, or a Hugging Face dataset when
            online; None means the embedded corpus. (`lm` only.)
        context_size: Tokens per sequence. (`lm` only.)
        synthetic_model: A `sae_lens.synthetic.SyntheticModelConfig` as a dict
            (its `from_dict` form). (`synthetic` only.)
        architectures: The architectures and their sparsity values.
        d_sae: Dictionary sizes; every architecture is trained at each.
        seeds: SAE seeds (initialisation and batch order); at least 2 for
            stability, 3 for error bars.
        training_tokens: Tokens (or synthetic samples) each SAE trains on.
        train_batch_size_tokens: Tokens per optimizer step.
        lr: Adam learning rate, shared by every architecture.
        activation_seed: Seed of the shared activation cache (fixed, so every SAE
            sees the same activations).
        model_batch_size: Prompts per LM forward pass when caching activations.
        device: `cpu`, `cuda`, ...
        activations_dir: Where activation caches live; None means
            <cache root>/activations (`$SAELENS_ALIGNED_CACHE`). Every worker
            must be able to read it.
        eval: Evaluation settings.
        stability_threshold: Cosine above which matched latents count as shared
            (0.7 after Paulo & Belrose 2025).
    """

    name: str
    kind: str = "lm"
    model: str | None = None
    model_class: str = "AutoModelForCausalLM"
    hook: str = "model.layers.3"
    dataset: str | None = None
    context_size: int = 128
    synthetic_model: dict[str, Any] | None = None
    architectures: list[ArchitectureSweep] = field(default_factory=list)
    d_sae: list[int] = field(default_factory=lambda: [1152])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    training_tokens: int = 100_000
    train_batch_size_tokens: int = 1024
    lr: float = 5e-4
    activation_seed: int = 42
    model_batch_size: int = 16
    device: str = "cpu"
    activations_dir: str | None = None
    eval: EvalSettings = field(default_factory=EvalSettings)
    stability_threshold: float = 0.7

    @property
    def training_steps(self) -> int:
        return self.training_tokens // self.train_batch_size_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "SweepConfig":
        data = dict(data)
        _reject_unknown(cls, data, source)
        architectures = []
        for i, arch in enumerate(data.pop("architectures", [])):
            where = f"{source}: architectures[{i}]"
            if not isinstance(arch, dict):
                raise SweepConfigError(f"{where} must be a mapping, got {arch!r}.")
            _reject_unknown(ArchitectureSweep, arch, where)
            try:
                architectures.append(ArchitectureSweep(**arch))
            except TypeError as e:
                raise SweepConfigError(f"{where}: {e}") from e
        eval_data = data.pop("eval", {}) or {}
        _reject_unknown(EvalSettings, eval_data, f"{source}: eval")
        config = cls(
            architectures=architectures, eval=EvalSettings(**eval_data), **data
        )
        validate_sweep_config(config, source)
        return config


def _reject_unknown(cls: type, data: dict[str, Any], where: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SweepConfigError(
            f"{where}: unknown field(s) {unknown}. Known fields: {sorted(known)}."
        )


def load_sweep_config(preset_or_path: str | Path) -> SweepConfig:
    """A preset name (`ci`, `cpu`, `synthetic`, `synthetic_cpu`, `gpu`) or a YAML
    file path."""
    path = Path(preset_or_path)
    if str(preset_or_path) in PRESETS:
        path = CONFIG_DIR / f"{preset_or_path}.yaml"
    elif not path.exists():
        raise SweepConfigError(
            f"--preset {str(preset_or_path)!r} is neither a preset ({list(PRESETS)}) "
            "nor an existing YAML file."
        )
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SweepConfigError(f"{path}: expected a mapping of config fields.")
    return SweepConfig.from_dict(data, source=str(path))


def validate_sweep_config(config: SweepConfig, source: str = "config") -> None:
    """Cheap checks, before any model loads; each error names the field and fix."""
    from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY

    import saelens_aligned  # noqa: F401  (registers the aligned architectures)
    from saelens_aligned.architectures import aligned_architectures

    def fail(field_name: str, message: str) -> None:
        raise SweepConfigError(f"{source}: {field_name} {message}")

    if config.kind not in SWEEP_KINDS:
        fail("kind", f"is {config.kind!r}; choose one of {list(SWEEP_KINDS)}.")
    if config.kind == "synthetic" and not config.synthetic_model:
        fail("synthetic_model", "is required when kind is 'synthetic'.")
    if not config.architectures:
        fail("architectures", "is empty; list at least one architecture.")
    if not config.seeds:
        fail("seeds", "is empty; list at least one seed (2 or more for stability).")
    if len(set(config.seeds)) != len(config.seeds):
        fail("seeds", f"{config.seeds} repeats a seed.")
    if not config.d_sae or any(int(d) <= 0 for d in config.d_sae):
        fail("d_sae", f"{config.d_sae} must be a list of positive sizes.")
    if not (isinstance(config.lr, int | float) and config.lr > 0):
        fail("lr", f"is {config.lr!r}; it must be a positive number.")
    if config.train_batch_size_tokens <= 0:
        fail("train_batch_size_tokens", "must be positive.")
    if config.training_tokens < config.train_batch_size_tokens:
        fail(
            "training_tokens",
            f"({config.training_tokens}) is smaller than one batch "
            f"(train_batch_size_tokens = {config.train_batch_size_tokens}); raise it.",
        )
    if not 0 < config.stability_threshold < 1:
        fail("stability_threshold", "must lie strictly between 0 and 1.")
    aligned = set(aligned_architectures())
    for i, arch in enumerate(config.architectures):
        where = f"architectures[{i}]"
        if arch.architecture not in SAE_TRAINING_CLASS_REGISTRY:
            fail(
                f"{where}.architecture",
                f"{arch.architecture!r} is not a registered SAELens architecture. "
                f"Valid: {sorted(SAE_TRAINING_CLASS_REGISTRY)}.",
            )
        config_class = SAE_TRAINING_CLASS_REGISTRY[arch.architecture][1]
        config_fields = {f.name for f in fields(config_class)}
        if arch.sparsity_param not in config_fields:
            fail(
                f"{where}.sparsity_param",
                f"{arch.sparsity_param!r} is not a field of {arch.architecture}'s "
                f"config; use k (TopK family), l1_coefficient or l0_coefficient.",
            )
        for name in arch.sae_kwargs:
            if name not in config_fields:
                fail(f"{where}.sae_kwargs", f"{name!r} is not a config field.")
        if not arch.sparsity_values:
            fail(f"{where}.sparsity_values", "is empty.")
        for value in arch.sparsity_values:
            bad = not isinstance(value, int | float) or math.isnan(value) or value <= 0
            if arch.sparsity_param == "k":
                bad = bad or value != int(value) or value > min(config.d_sae)
            if bad:
                fail(
                    f"{where}.sparsity_values",
                    f"holds {value!r}; {arch.sparsity_param} must be positive"
                    + (
                        " and an integer <= d_sae."
                        if arch.sparsity_param == "k"
                        else "."
                    ),
                )
        if arch.alignments is not None:
            if arch.architecture not in aligned:
                fail(
                    f"{where}.alignments",
                    f"is set but {arch.architecture!r} is not aligned; remove it.",
                )
            for form in arch.alignments:
                if form not in ALIGNMENT_FORMS:
                    fail(
                        f"{where}.alignments",
                        f"holds {form!r}; choose from {list(ALIGNMENT_FORMS)}.",
                    )


@dataclass(frozen=True)
class RunSpec:
    """One SAE of the sweep.

    Args:
        architecture: Registered training architecture.
        alignment: `tied` / `projected` for aligned architectures, else None.
        sparsity_param: The sparsity field (`k`, `l1_coefficient`, ...).
        sparsity_value: Its value for this run.
        d_sae: Dictionary size.
        seed: SAE seed.
        sae_kwargs: Extra SAE config fields, as sorted (name, value) pairs.
    """

    architecture: str
    alignment: str | None
    sparsity_param: str
    sparsity_value: float
    d_sae: int
    seed: int
    sae_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """The curve this run belongs to: architecture and alignment form."""
        if self.alignment is None:
            return self.architecture
        return f"{self.architecture}[{self.alignment}]"

    @property
    def point_id(self) -> str:
        """Run id without the seed: the runs whose seeds are compared."""
        value = _format_value(self.sparsity_value)
        form = f"-{self.alignment}" if self.alignment else ""
        return f"{self.architecture}{form}-{self.sparsity_param}{value}-d{self.d_sae}"

    @property
    def run_id(self) -> str:
        return f"{self.point_id}-s{self.seed}"

    def sae_config_kwargs(self, training_steps: int) -> dict[str, Any]:
        """SAE config fields of this run (besides d_in)."""
        value: Any = self.sparsity_value
        if self.sparsity_param == "k":
            value = int(value)
        kwargs: dict[str, Any] = {
            "d_sae": self.d_sae,
            self.sparsity_param: value,
            **dict(self.sae_kwargs),
        }
        if self.alignment is not None:
            kwargs["alignment"] = self.alignment
        if "panneal" in self.architecture:
            # p-annealing schedules over the run; SAEBench starts at a tenth of it.
            kwargs.setdefault("p_anneal_total_steps", training_steps)
            kwargs.setdefault("anneal_start", training_steps // 10)
        if "matryoshka" in self.architecture:
            kwargs.setdefault("matryoshka_widths", [self.d_sae // 4, self.d_sae])
        return kwargs


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def expand_runs(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, seeds innermost (a point's seeds finish together,
    so stability can be computed as soon as they are done)."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    runs = []
    for arch in config.architectures:
        if arch.architecture in aligned:
            forms: list[str | None] = list(arch.alignments or ALIGNMENT_FORMS)
        else:
            forms = [None]
        for form in forms:
            for d_sae in config.d_sae:
                for value in arch.sparsity_values:
                    for seed in config.seeds:
                        runs.append(
                            RunSpec(
                                architecture=arch.architecture,
                                alignment=form,
                                sparsity_param=arch.sparsity_param,
                                sparsity_value=float(value),
                                d_sae=int(d_sae),
                                seed=int(seed),
                                sae_kwargs=tuple(sorted(arch.sae_kwargs.items())),
                            )
                        )
    return runs
