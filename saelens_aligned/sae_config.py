"""SAE training configs, read from their dataclasses: which fields an architecture
takes, the values it needs besides d_in and d_sae, and the checks every config of
ours runs on construction.

Which knob sets sparsity, whether a run length must be passed, whether Matryoshka
widths are needed: all of it is read from the config dataclass's fields, never from
the architecture's name, so a newly registered architecture is handled the moment
its config class exists.
"""

import math
from dataclasses import dataclass, fields
from typing import Any

from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY, get_sae_training_class
from sae_lens.saes.sae import TrainingSAEConfig
from sae_lens.util import str_to_dtype
from typing_extensions import override

from saelens_aligned.errors import InputError

# The fields that set sparsity, in the order they are looked for: TopK-family k,
# ReLU+L1 / Gated / p-annealing coefficient, JumpReLU's L0 coefficient.
SPARSITY_FIELDS = ("k", "l1_coefficient", "l0_coefficient")
# Coefficient fields of SAELens' training configs (and ours) that must be >= 0.
COEFFICIENT_FIELDS = (
    "l1_coefficient",
    "l0_coefficient",
    "aux_loss_coefficient",
    "pre_act_loss_coefficient",
    "topk_threshold_lr",
)
# p-annealing starts changing p a tenth of the way into the run (SAEBench's sweep
# starts at 10k of 100k steps).
ANNEAL_START_FRACTION = 0.1


class ConfigError(InputError):
    """An invalid configuration value, raised before any expensive work."""

    def __init__(self, field: str, value: Any, accepted: str, hint: str = ""):
        self.field = field
        message = f"{field}={value!r} is invalid: expected {accepted}."
        super().__init__(f"{message} {hint}".strip())


def config_field_names(config_class: type[TrainingSAEConfig]) -> frozenset[str]:
    """Every field of a training config dataclass."""
    return frozenset(f.name for f in fields(config_class))


def config_class_of(architecture: str) -> type[TrainingSAEConfig]:
    """The training config class registered under `architecture`."""
    check_architecture(architecture)
    return get_sae_training_class(architecture)[1]


def sparsity_field(config_class: type[TrainingSAEConfig]) -> str:
    """The field that sets sparsity: the first of SPARSITY_FIELDS the config has."""
    names = config_field_names(config_class)
    for name in SPARSITY_FIELDS:
        if name in names:
            return name
    raise ValueError(
        f"{config_class.__name__} has none of the sparsity fields {SPARSITY_FIELDS}."
    )


def architecture_defaults(
    config_class: type[TrainingSAEConfig],
    d_sae: int,
    training_steps: int | None = None,
) -> dict[str, Any]:
    """Fields an architecture needs beyond d_in, d_sae and its sparsity knob:
    Matryoshka widths (a quarter of the dictionary, then all of it) and, for
    p-annealing, the run length and the first step at which p changes."""
    names = config_field_names(config_class)
    out: dict[str, Any] = {}
    if "matryoshka_widths" in names:
        out["matryoshka_widths"] = [d_sae // 4, d_sae]
    if "p_anneal_total_steps" in names:
        if training_steps is None:
            raise ValueError(
                f"{config_class.__name__} anneals over the run: pass training_steps."
            )
        out["p_anneal_total_steps"] = training_steps
        out["anneal_start"] = int(training_steps * ANNEAL_START_FRACTION)
    return out


def build_sae_config(
    architecture: str,
    d_in: int,
    d_sae: int,
    training_steps: int | None = None,
    shared: dict[str, Any] | None = None,
    **overrides: Any,
) -> TrainingSAEConfig:
    """`architecture`'s training config.

    Args:
        architecture: A registered SAELens training architecture.
        d_in: Activation width.
        d_sae: Dictionary size.
        training_steps: Run length, for architectures that schedule over it.
        shared: Settings given to every architecture of a comparison (e.g. both
            `k` and `l1_coefficient`); each is applied where the config has that
            field and ignored elsewhere.
        overrides: Fields of this config; one it lacks is an error.
    """
    config_class = config_class_of(architecture)
    names = config_field_names(config_class)
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(
            unknown[0],
            overrides[unknown[0]],
            f"a field of {config_class.__name__}",
            f"{architecture!r} has no field(s) {unknown}.",
        )
    kwargs = {
        **architecture_defaults(config_class, d_sae, training_steps),
        **{k: v for k, v in (shared or {}).items() if k in names},
        **overrides,
    }
    return config_class(d_in=d_in, d_sae=d_sae, **kwargs)


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #


def check_architecture(architecture: str) -> None:
    if architecture not in SAE_TRAINING_CLASS_REGISTRY:
        raise ConfigError(
            "architecture",
            architecture,
            f"one of {sorted(SAE_TRAINING_CLASS_REGISTRY)}",
            "Import saelens_aligned to register the aligned variants.",
        )


def check_positive(field: str, value: Any, integer: bool = False) -> None:
    kind = "a positive integer" if integer else "a positive number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConfigError(field, value, kind)


def check_nonnegative(field: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(field, value, "a finite number >= 0")


def check_dtype(field: str, value: Any) -> None:
    try:
        str_to_dtype(value)
    except (ValueError, KeyError) as e:
        raise ConfigError(
            field, value, "one of float32, float64, float16, bfloat16"
        ) from e


def validate_sae_config(sae_cfg: TrainingSAEConfig) -> None:
    """The SAE-level checks: sizes, k, coefficients, dtype. Our config classes
    run them on construction (`CheckedTrainingSAEConfig`), so SAELens' own
    runners get the same errors as `saelens-aligned train`."""
    check_positive("d_in", sae_cfg.d_in, integer=True)
    check_positive("d_sae", sae_cfg.d_sae, integer=True)
    k = getattr(sae_cfg, "k", None)
    if k is not None and not (
        isinstance(k, (int, float)) and math.isfinite(k) and 0 < k <= sae_cfg.d_sae
    ):
        raise ConfigError(
            "k",
            k,
            f"a number in (0, d_sae] = (0, {sae_cfg.d_sae}]",
            "Lower k or raise d_sae.",
        )
    for name in COEFFICIENT_FIELDS:
        value = getattr(sae_cfg, name, None)
        if value is not None:
            check_nonnegative(name, value)
    check_dtype("dtype", sae_cfg.dtype)


@dataclass(kw_only=True)
class CheckedTrainingSAEConfig(TrainingSAEConfig):
    """Config mixin that runs `validate_sae_config` when the config is built, before
    SAELens' own post-init; the config mixins of this package derive from it."""

    @override
    def __post_init__(self) -> None:
        validate_sae_config(self)
        super().__post_init__()
