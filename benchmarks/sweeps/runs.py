"""The runs of a sweep: one `RunSpec` per SAE, with ids that name its folder and
record, so a rerun of the sweep finds what is already done.

An arm's label names its architecture and every setting that tells it apart from
the other arms of that architecture: the alignment form of an aligned arm always
(`aligned_topk[tied]`), an init control's form (`topk[init=tied]`), a decoder bias
started at the activations' mean (`topk[b_dec=mean]`), and any SAE field or
learning rate that differs between arms of one architecture
(`jumprelu[jumprelu_sparsity_loss_mode=quadratic]`). Two arms with one label are
a config error naming both. Run ids add the sparsity value, d_sae, learning rate
and seed.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens.saes.sae import TrainingSAE

from benchmarks.records.calibration import read_calibration
from benchmarks.records.layout import read_lr_choice
from benchmarks.sweeps.config import (
    ALIGNMENT_FORMS,
    ArchitectureSweep,
    SweepConfig,
    SweepConfigError,
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
        seed: SAE seed (its initialisation).
        sae_kwargs: Extra SAE config fields, as sorted (name, value) pairs.
        init_from: Init control: start from the aligned variant's initial weights
            in this form (`tied` / `projected`), None otherwise.
        lr: Learning rate.
        label: The arm (curve) this run belongs to (see the module docstring).
        b_dec_init: `mean`: the decoder bias starts at the training
            activations' mean; None: the architecture's own start.
    """

    architecture: str
    alignment: str | None
    sparsity_param: str
    sparsity_value: float
    d_sae: int
    seed: int
    sae_kwargs: tuple[tuple[str, Any], ...] = ()
    init_from: str | None = None
    lr: float = 5e-4
    label: str = ""
    b_dec_init: str | None = None

    @property
    def base_architecture(self) -> str:
        """The architecture an aligned one extends (itself otherwise), as
        SAELens' registry says: `aligned_topk` -> `topk`."""
        from sae_lens.registry import get_sae_training_class

        from saelens_aligned.architectures import (
            aligned_architectures,
            base_architecture,
        )

        if self.architecture not in aligned_architectures():
            return self.architecture
        return base_architecture(get_sae_training_class(self.architecture)[1])

    @property
    def slug(self) -> str:
        """The label as a file-name part: `topk[init=tied]` -> `topk-init-tied`."""
        name = self.label or self.architecture
        for old, new in (("[", "-"), ("]", ""), ("=", "-"), (",", "-"), ("/", "-")):
            name = name.replace(old, new)
        return name

    @property
    def point_id(self) -> str:
        """Run id without the seed: the runs whose seeds are compared."""
        value = _format_value(self.sparsity_value)
        return (
            f"{self.slug}-{self.sparsity_param}{value}-d{self.d_sae}"
            f"-lr{_format_value(self.lr)}"
        )

    @property
    def run_id(self) -> str:
        return f"{self.point_id}-s{self.seed}"

    def sae_fields(self) -> dict[str, Any]:
        """SAE config fields this run sets (besides d_in, d_sae and the fields
        `build_sae_config` derives from the architecture's config dataclass)."""
        value: Any = self.sparsity_value
        if self.sparsity_param == "k":
            value = int(value)
        fields: dict[str, Any] = {self.sparsity_param: value, **dict(self.sae_kwargs)}
        if self.alignment is not None:
            fields["alignment"] = self.alignment
        return fields


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def arm_forms(arm: ArchitectureSweep, aligned: set[str]) -> list[str | None]:
    if arm.architecture in aligned:
        return list(arm.alignments or ALIGNMENT_FORMS)
    return [None]


def arm_labels(config: SweepConfig) -> list[list[str]]:
    """The labels of each arm's curves (one per alignment form), in config order;
    a SweepConfigError names two arms that would share a label."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    # Settings that tell arms of one architecture apart: those that differ.
    by_arch: dict[str, list[ArchitectureSweep]] = defaultdict(list)
    for arm in config.architectures:
        by_arch[arm.architecture].append(arm)
    labels: list[list[str]] = []
    seen: dict[str, int] = {}
    for i, arm in enumerate(config.architectures):
        siblings = by_arch[arm.architecture]
        extra = []
        keys = sorted({k for s in siblings for k in s.sae_kwargs})
        for key in keys:
            values = {repr(s.sae_kwargs.get(key)) for s in siblings}
            if len(values) > 1 and key in arm.sae_kwargs:
                extra.append(f"{key}={arm.sae_kwargs[key]}")
        if len({s.lr for s in siblings}) > 1 and arm.lr is not None:
            extra.append(f"lr={arm.lr:g}")
        arm_labels_ = []
        for form in arm_forms(arm, aligned):
            parts = [form] if form else []
            if arm.init_from:
                parts.append(f"init={arm.init_from}")
            if arm.b_dec_init:
                parts.append(f"b_dec={arm.b_dec_init}")
            parts += extra
            label = arm.architecture + (f"[{','.join(parts)}]" if parts else "")
            if label in seen:
                raise SweepConfigError(
                    f"architectures[{seen[label]}] and architectures[{i}] are the "
                    f"same arm {label!r}: give them a setting that differs "
                    "(alignments, init_from, b_dec_init, sae_kwargs or lr), or "
                    "remove one."
                )
            seen[label] = i
            arm_labels_.append(label)
        labels.append(arm_labels_)
    return labels


def middle_value(values: list[float]) -> float:
    """The sparsity value an arm's learning rate is chosen at."""
    return sorted(values)[(len(values) - 1) // 2]


def expand_runs(
    config: SweepConfig,
    chosen_lr: dict[str, float] | None = None,
    coefficients: dict[str, list[float]] | None = None,
) -> list[RunSpec]:
    """Every run of the sweep, seeds innermost (a point's seeds finish together,
    so stability can be computed as soon as they are done).

    An arm's learning rate is its own `lr`, else `chosen_lr[label]` (the best of
    the sweep's grid), else the sweep's `lr`; its sparsity values are
    `coefficients[label]` (a calibrated arm's, `benchmarks.sweeps.calibration`),
    else its own.
    """
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    runs = []
    for arm, labels in zip(config.architectures, arm_labels(config)):
        for form, label in zip(arm_forms(arm, aligned), labels):
            lr = arm.lr or (chosen_lr or {}).get(label, config.lr)
            for d_sae in config.d_sae:
                for value in (coefficients or {}).get(label, arm.sparsity_values):
                    for seed in config.seeds:
                        runs.append(make_run(arm, form, label, value, d_sae, seed, lr))
    return runs


def make_run(
    arm: ArchitectureSweep,
    form: str | None,
    label: str,
    value: float,
    d_sae: int,
    seed: int,
    lr: float,
) -> RunSpec:
    return RunSpec(
        architecture=arm.architecture,
        alignment=form,
        sparsity_param=arm.sparsity_param,
        sparsity_value=float(value),
        d_sae=int(d_sae),
        seed=int(seed),
        sae_kwargs=tuple(sorted(arm.sae_kwargs.items())),
        init_from=arm.init_from,
        lr=float(lr),
        label=label,
        b_dec_init=arm.b_dec_init,
    )


def initial_sae(
    run: RunSpec,
    d_in: int,
    training_steps: int,
    sparse_stock_step: bool = False,
    activation_mean: torch.Tensor | None = None,
) -> TrainingSAE[Any]:
    """The run's SAE before its first step, seeded by `run.seed`.

    An init control (`run.init_from`) is its base architecture holding exactly the
    weights its aligned variant starts from in that form (same seed, same config
    otherwise): the two compute the same function at step 0 and differ only in
    the constraint during training. With `sparse_stock_step`, a stock TopK-family
    arm is its sparse-step class (`sparse_topk` for `topk`, ...): same weights,
    same loss and gradients, SAELens' export. A run with `b_dec_init: mean`
    then has its decoder bias set to `activation_mean` ([d_in], the backend's
    `activation_mean()`), every other weight as its arm without it.
    """
    from sae_lens.registry import get_sae_training_class

    from saelens_aligned.architectures import aligned_variant, sparse_step_variant
    from saelens_aligned.sae_config import build_sae_config

    def build(architecture: str, **extra: Any) -> TrainingSAE[Any]:
        torch.manual_seed(run.seed)
        sae_class, _ = get_sae_training_class(architecture)
        cfg = build_sae_config(
            architecture,
            d_in,
            run.d_sae,
            training_steps=training_steps,
            **run.sae_fields(),
            **extra,
        )
        return sae_class(cfg)

    architecture = run.architecture
    if sparse_stock_step:
        architecture = sparse_step_variant(architecture) or architecture
    sae = build(architecture)
    if run.init_from is not None:
        start = build(aligned_variant(run.architecture), alignment=run.init_from)
        sae.load_state_dict(
            {k: v.detach().clone() for k, v in start.state_dict().items()}
        )
    if run.b_dec_init == "mean":
        if activation_mean is None:
            raise ValueError(
                f"{run.run_id}: b_dec_init is 'mean' but no activation mean was "
                "given; the backend computes it (activation_mean())."
            )
        with torch.no_grad():
            sae.b_dec.copy_(activation_mean.to(sae.b_dec.dtype))
    return sae


def point_runs(runs: Iterable[RunSpec]) -> dict[str, list[RunSpec]]:
    points: dict[str, list[RunSpec]] = {}
    for run in runs:
        points.setdefault(run.point_id, []).append(run)
    return points


def main_runs(config: SweepConfig, out_dir: Path) -> list[RunSpec]:
    """The multi-seed runs: every arm at its chosen learning rate (the grid-only
    runs at other rates are left out), a calibrated arm at its calibrated
    coefficients."""
    choice = read_lr_choice(out_dir)
    chosen = dict(choice["chosen"]) if choice else {}
    calibration = read_calibration(out_dir)
    # An arm still to be calibrated has no main runs yet.
    coefficients: dict[str, list[float]] = {
        label: []
        for arm, labels in zip(config.architectures, arm_labels(config))
        if config.calibrates(arm)
        for label in labels
    }
    references = bracketed_labels(config)
    for arm in calibration.values():
        if arm.label in coefficients:
            chosen[arm.label] = arm.lr
            coefficients[arm.label] = arm.coefficients
            if arm.label in references and config.bracket_factor:
                coefficients[arm.label] += arm.bracket_coefficients(
                    config.bracket_factor
                )
    return middle_sparsity_first(expand_runs(config, chosen, coefficients))


def bracketed_labels(config: SweepConfig) -> set[str]:
    """The calibrated reference arms (stock bases and fair controls: arms with
    no aligned form) that `bracket_factor` extends past the end targets."""
    from saelens_aligned.architectures import aligned_architectures

    aligned = set(aligned_architectures())
    if not config.bracket_factor:
        return set()
    return {
        label
        for arm, labels in zip(config.architectures, arm_labels(config))
        if config.calibrates(arm)
        for form, label in zip(arm_forms(arm, aligned), labels)
        if form is None
    }


def planned_main_runs(config: SweepConfig) -> list[RunSpec]:
    """The main runs the sweep makes once every arm is calibrated: a calibrated
    arm has one coefficient per target L0 (the targets stand in for them)."""
    references, factor = bracketed_labels(config), config.bracket_factor or 1.0
    lowest, highest = min(config.target_l0, default=0), max(config.target_l0, default=0)
    # The brackets' L0 stand in for their coefficients, as the targets do.
    one_per_target = {
        label: [float(t) for t in config.target_l0]
        + ([lowest / factor, highest * factor] if label in references else [])
        for arm, labels in zip(config.architectures, arm_labels(config))
        if config.calibrates(arm)
        for label in labels
    }
    return expand_runs(config, coefficients=one_per_target)


def planned_main_run_count(config: SweepConfig) -> int:
    """How many main runs the sweep makes once every arm is calibrated."""
    return len(planned_main_runs(config))


def middle_sparsity_first(runs: list[RunSpec]) -> list[RunSpec]:
    """`runs` with every arm's middle sparsity first, then the values next to it,
    and within one sparsity seed by seed (every arm's seed 0, then every arm's
    seed 1, ...): a sweep cut short (or watched while it runs) already compares
    every arm at one sparsity, paired by seed, and a learning-curve sweep has
    every arm's curve for the seeds it reached."""
    values: dict[str, list[float]] = {}
    seeds: list[int] = []
    for run in runs:
        values.setdefault(run.label, [])
        if run.sparsity_value not in values[run.label]:
            values[run.label].append(run.sparsity_value)
        if run.seed not in seeds:
            seeds.append(run.seed)

    def distance(run: RunSpec) -> tuple[float, int]:
        ordered = sorted(values[run.label])
        middle = abs(ordered.index(run.sparsity_value) - (len(ordered) - 1) / 2)
        return middle, seeds.index(run.seed)

    return sorted(runs, key=distance)
