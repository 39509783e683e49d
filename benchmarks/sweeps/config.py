"""What a benchmark sweep trains and evaluates: the dataclass config.

Presets and YAML files become configs through `benchmarks.sweeps.presets`
(`load_sweep_config`), which checks them (`benchmarks.sweeps.config_checks`)
before any model loads; this module only declares the fields.

Each entry of `architectures` is an *arm*: an architecture with its settings (an
aligned form, an init control, SAE fields, a learning rate). `benchmarks.sweeps.runs`
turns a config into its runs: every arm x alignment form x sparsity value x
dictionary size x seed, each with a stable id that names its SAE folder and its
record, so a rerun of the sweep finds what is already done.
"""

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from saelens_aligned.errors import InputError
from saelens_aligned.pipeline.evaluation import EvalBudget
from saelens_aligned.pipeline.source import Source
from saelens_aligned.pipeline.training import TrainingSettings

ALIGNMENT_FORMS = ("tied", "projected")
# Held-out data a saved SAE can be scored on: `eval` (what the reported metrics
# read) or `validation` (held out from training and from eval; the lr grid's).
EVAL_SPLITS = ("eval", "validation")
SWEEP_KINDS = ("lm", "synthetic")
# Where an arm's decoder bias starts besides SAELens' own zero: `mean`, the
# training activations' mean (`benchmarks.records.activation_moments`).
B_DEC_INITS = ("mean",)


class SweepConfigError(InputError):
    """A sweep config is unusable; the message names the field and the fix."""


class SweepError(InputError):
    """A sweep cannot start (executor, workers, output folder); the message names
    the option and the fix."""


@dataclass
class ArchitectureSweep:
    """One arm of the sweep: an architecture, its settings, and the sparsity values
    it is trained at.

    Args:
        architecture: A registered SAELens training architecture (`topk`,
            `aligned_topk`, ...; importing `saelens_aligned` registers the aligned
            ones).
        sparsity_param: The SAE config field that sets sparsity: `k` for the TopK
            family, `l1_coefficient` for ReLU+L1 (standard, gated, p-annealing),
            `l0_coefficient` or `target_l0` for JumpReLU.
        sparsity_values: Values of `sparsity_param`, one training run each; chosen
            so that every architecture's curve spans the same L0 range.
        alignments: Alignment forms to train (`tied`, `projected`); aligned
            architectures only. None means both.
        init_from: The init control: a base architecture (one with an aligned
            variant) started from exactly the initial weights its aligned variant
            has in this form (`tied` or `projected`), then trained without the
            constraint. None: the architecture's own initialisation.
        sae_kwargs: Further SAE config fields shared by every run of this arm
            (e.g. `jumprelu_init_threshold`).
        lr: This arm's learning rate; None means the sweep's (`lr`), or the best
            of `lr_grid` when the sweep has one.
        b_dec_init: `mean`: start the decoder bias at the training activations'
            mean (float64, computed once per sweep) instead of SAELens' zero,
            the centring Simon, Adams & Zou 2026 (arXiv 2605.31518) find removes
            outlier-driven dead latents; the label gains `b_dec=mean`. None:
            the architecture's own start.
    """

    architecture: str
    sparsity_param: str
    sparsity_values: list[float]
    alignments: list[str] | None = None
    init_from: str | None = None
    sae_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None
    b_dec_init: str | None = None


@dataclass(frozen=True)
class EvalSettings(EvalBudget):
    """How each trained SAE is evaluated: SAEBench core's budget (the fields of
    `saelens_aligned.pipeline.evaluation.EvalBudget`), and the evals beyond it.

    Args:
        meta_structure: Run SAEBench's meta_structure eval (decoder weights only,
            works offline).
        meta_structure_train_steps: Training steps of the meta-SAE
            (SAEBench's default is 1500).
        absorption: Run SAEBench's absorption eval (`pipeline.absorption`) on a
            TransformerLens view of the model; it costs far more than the core
            eval. When it cannot run, the record says why.
        absorption_vocab_size: Words of SAEBench's vocabulary the absorption eval
            draws (seeded, every first letter kept); None: all of them
            (SAEBench's default eval).
        absorption_sparsity_values: Run absorption only at these sparsity values
            (`k`, `l1_coefficient`, ...), e.g. one sparsity for every arm; None: at
            every point.
        sparse_probing: Run SAEBench's `sparse_probing` on local multi-class
            labelled text (`pipeline.local_probing`: news topics, code language,
            Brown genres), with the residual-stream probe baseline beside it.
        sae_probes: Run SAEBench's `sparse_probing_sae_probes` on a CPU subset of
            the datasets in the sae-probes wheel (`pipeline.sae_probes_eval`), with
            sae-probes' residual-stream baseline.
        tpp: Run SAEBench's TPP (`scr_and_tpp` with SCR off: no local text carries
            two correlated labels) on the same local sets as `sparse_probing`.
        probing_size: The three evals' settings: `cpu` (their `.cpu()`: about a
            minute each per SAE once activations are cached) or `tiny` (tests:
            the numbers mean nothing).
        probing_sparsity_values: Run the three evals above only at these sparsity
            values; None: at every point. Model activations of their datasets
            are computed once per sweep and reused by every SAE.
        dead_window_tokens: Tokens of held-out text whose activations are cached
            once per sweep; every SAE's dead fraction and feature densities are
            also measured over all of them (no model pass per SAE). 0: off.
        synthetic_eval_samples: Samples for the ground-truth metrics (synthetic
            sweeps).
        split: The held-out data the metrics read: `eval` (the reported
            metrics') or `validation` (held out from training and from eval;
            the learning-rate grid scores on it: `SweepConfig.lr_split`). LM:
            the last tenth of the training split's rows, which the training
            cache never reaches (`benchmarks.sweeps.backends.validation_split`); synthetic:
            samples of their own seed.
    """

    batch_size_prompts: int = 4
    n_eval_reconstruction_batches: int = 2
    n_eval_sparsity_variance_batches: int = 16
    progress: bool = False
    meta_structure: bool = True
    meta_structure_train_steps: int = 300
    absorption: bool = False
    absorption_vocab_size: int | None = 5000
    absorption_sparsity_values: list[float] | None = None
    sparse_probing: bool = False
    sae_probes: bool = False
    tpp: bool = False
    probing_size: str = "cpu"
    probing_sparsity_values: list[float] | None = None
    dead_window_tokens: int = 0
    synthetic_eval_samples: int = 50_000
    split: str = "eval"


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
        dataset: Local text files or folders, a named corpus (`python-stdlib`,
            `brown`, `packaged-english`: docs/corpora.md), or a Hugging Face
            dataset when online; None means the embedded corpus. (`lm` only.)
        context_size: Tokens per sequence. (`lm` only.)
        synthetic_model: A `sae_lens.synthetic.SyntheticModelConfig` as a dict
            (its `from_dict` form). (`synthetic` only.)
        architectures: The arms (architectures with their settings) and their
            sparsity values.
        d_sae: Dictionary sizes; every architecture is trained at each.
        seeds: SAE seeds; at least 3 for the claim table (2 suffice for
            stability). A seed sets the initialisation only: every run sees the
            same batches in the same order unless `seed_varies_data`.
        seed_varies_data: Let the seed also set the data order: the batch
            order (synthetic), and the order of the cached activation rows
            and SAELens' buffer shuffle (`lm`).
        training_tokens: Tokens (or synthetic samples) each SAE trains on.
        activation_tokens: Tokens of activations cached for training (`lm`);
            None means `training_tokens`. Fewer means several passes over them
            (SAELens' runner starts a new epoch when the cache runs out).
        train_batch_size_tokens: Tokens per optimizer step.
        lr_decay_steps: SAELens' linear learning-rate decay over the last this
            many steps (to lr / 10); 0 for a constant rate.
        checkpoint_every_steps: Learning curves: save a checkpoint every this
            many steps; 0 for none.
        eval_at_steps: Learning curves: the checkpoints evaluated (multiples of
            `checkpoint_every_steps`), besides the final SAE. Their records go
            to `records/checkpoints/`.
        checkpoint_core_only: Evaluate those checkpoints with the core metrics
            only (CE/KL, explained variance, L0, dead fraction over the long
            window: what learning curves and tokens-to-target read), leaving
            meta_structure, absorption and the probing evals to the final SAE.
            False: every checkpoint gets the sweep's whole `eval`.
        lr: Adam learning rate of every arm without its own `lr`, when the sweep
            has no `lr_grid`.
        lr_grid: Learning rates to try (at least 3, spanning at least 10x), or
            empty. Each arm is first trained at each of them with the first seed
            at its middle sparsity value; the multi-seed runs then use the best.
        lr_metric: What picks the best learning rate of the grid (a metric of
            `benchmarks.records.layout.FLAT_METRICS`, higher is better; for arms whose
            L0 is set by a penalty, near-ties go to the sparser rate:
            `benchmarks.sweeps.lr_grid.best_learning_rate`).
        lr_split: The data the grid's runs are scored on: `validation` (held
            out from training and from the reported metrics' eval data, so the
            choice does not select on the numbers it reports) or `eval` (how
            sweeps before the validation split chose).
        lr_floor: The lowest rate the grid may be extended to. An arm whose
            best rate is its grid's lowest gets the next lower rate (one grid
            step down) and is scored again, until the best is interior or
            this bound is reached (`benchmarks.sweeps.lr_grid`).
        lr_ceiling: The highest rate the grid may be extended to (the same
            rule upwards).
        target_l0: Target L0 values (e.g. the TopK arms' `k` values). When
            set, every arm whose L0 is set by a penalty is calibrated
            (`benchmarks.sweeps.calibration`): its rate is chosen by
            `lr_metric` at the middle target, and its coefficient searched
            for each target; its `sparsity_values` are then the search's
            first guess (the middle one) only.
        l0_tolerance: A calibrated coefficient's L0 is within this fraction
            of its target (0.1: 29-35 for 32) on the validation split.
        calibration_max_trials: Trials per (arm, rate), every target's counted,
            before a target counts as unreachable (the record says the L0
            reached).
        bracket_factor: With `target_l0`, each calibrated reference arm (a
            stock base or fair control: no aligned form) also trains at two
            coefficients beyond its end targets, meant for L0 = the lowest
            target / factor and the highest x factor
            (`ArmCalibration.bracket_coefficients`, no search). Calibration
            fixes coefficients on the first seed; at a fixed coefficient
            another seed's L0 can move 10-20% (JumpReLU on text), past the
            reference seed's curve, where a matched-L0 comparison has no
            result. The brackets carry the reference curves past it. None: no
            brackets.
        activation_seed: Seed of the shared activation cache and of the batch
            order (fixed, so every SAE sees the same activations).
        model_batch_size: Prompts per LM forward pass when caching activations.
        device: `cpu`, `cuda`, ...
        activations_dir: Where activation caches live; None means
            <cache root>/activations (`$SAELENS_ALIGNED_CACHE`). Every worker
            must be able to read it.
        eval: Evaluation settings.
        stability_threshold: Cosine above which matched latents count as shared
            (0.7 after Paulo & Belrose 2025).
        sparse_stock_step: Train the stock TopK-family arms (and their init
            controls) with the sparse step (`sparse_topk`, `sparse_batchtopk`,
            `sparse_matryoshka_batchtopk`), as the aligned arms train by default,
            instead of SAELens' dense step. tests/test_sparse_topk.py shows the two
            compute the same loss, gradients and 50-step weights; records keep the
            base's name. Off for the sweeps recorded before the sparse step.
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
    seed_varies_data: bool = False
    training_tokens: int = 100_000
    activation_tokens: int | None = None
    train_batch_size_tokens: int = 1024
    lr_decay_steps: int = 0
    checkpoint_every_steps: int = 0
    eval_at_steps: list[int] = field(default_factory=list)
    checkpoint_core_only: bool = False
    lr: float = 5e-4
    lr_grid: list[float] = field(default_factory=list)
    lr_metric: str = "explained_variance"
    lr_split: str = "validation"
    lr_floor: float = 1e-5
    lr_ceiling: float = 1e-1
    target_l0: list[float] = field(default_factory=list)
    l0_tolerance: float = 0.1
    calibration_max_trials: int = 12
    bracket_factor: float | None = None
    activation_seed: int = 42
    model_batch_size: int = 16
    device: str = "cpu"
    activations_dir: str | None = None
    eval: EvalSettings = field(default_factory=EvalSettings)
    stability_threshold: float = 0.7
    sparse_stock_step: bool = False

    @property
    def training_steps(self) -> int:
        return self.training_tokens // self.train_batch_size_tokens

    def calibrates(self, arm: ArchitectureSweep) -> bool:
        """Whether the calibration phase sets this arm's rate and coefficients:
        with `target_l0`, every arm whose L0 is set by a penalty (not `k`)."""
        return bool(self.target_l0) and arm.sparsity_param != "k"

    def source(self) -> Source:
        """The model, hook and text of an `lm` sweep."""
        return Source(
            model=self.model,
            model_class=self.model_class,
            hook=self.hook,
            dataset=self.dataset,
            context_size=self.context_size,
            device=self.device,
            activations_dir=self.activations_dir,
        )

    def grid_eval(self) -> EvalSettings:
        """The learning-rate grid's evaluation: enough to rank rates by
        `lr_metric` (explained variance, L0, ground truth), no CE/KL, no long
        window, no meta-SAE, no absorption or probing. The grid run at the chosen
        rate is evaluated again with `eval` as a main run. It reads the
        `lr_split` data."""
        return replace(
            self.eval,
            split=self.lr_split,
            n_eval_reconstruction_batches=0,
            dead_window_tokens=0,
            meta_structure=False,
            absorption=False,
            sparse_probing=False,
            sae_probes=False,
            tpp=False,
        )

    def checkpoint_eval(self) -> EvalSettings:
        """The evaluation of a learning-curve checkpoint: the sweep's `eval`, or
        its core metrics only (`checkpoint_core_only`)."""
        if not self.checkpoint_core_only:
            return self.eval
        return replace(
            self.eval,
            meta_structure=False,
            absorption=False,
            sparse_probing=False,
            sae_probes=False,
            tpp=False,
        )

    def training(self, seed: int, lr: float) -> TrainingSettings:
        """SAELens runner settings of a run with SAE seed `seed`. The runner's own
        seed sets the batch order: the sweep's `activation_seed`, or `seed` when
        `seed_varies_data`."""
        return TrainingSettings(
            training_tokens=self.training_tokens,
            train_batch_size_tokens=self.train_batch_size_tokens,
            lr=lr,
            seed=seed if self.seed_varies_data else self.activation_seed,
            shuffle_cached_rows=self.seed_varies_data,
            model_batch_size=self.model_batch_size,
            lr_decay_steps=self.lr_decay_steps,
            checkpoint_every_steps=self.checkpoint_every_steps,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def restricted_to(self, bases: list[str]) -> "SweepConfig":
        """The arms of these base architectures only: each base, its init controls
        and its aligned variant (`["topk"]` keeps topk and aligned_topk). A sweep
        run in parts this way fills one folder; its report covers what has run."""
        from saelens_aligned.architectures import aligned_variant

        family = {name: name for name in bases}
        for base in bases:
            try:
                family[aligned_variant(base)] = base
            except ValueError as e:
                raise SweepConfigError(f"--bases: {e}") from e
        kept = [arm for arm in self.architectures if arm.architecture in family]
        if not kept:
            present = sorted({arm.architecture for arm in self.architectures})
            raise SweepConfigError(
                f"--bases {bases}: no arm of {self.name!r} belongs to them; its "
                f"architectures are {present}."
            )
        return replace(self, architectures=kept)
