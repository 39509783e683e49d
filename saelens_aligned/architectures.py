"""The aligned variants of SAELens' training architectures, and their registration.

Each variant is the `AlignedTrainingSAE` mixin in front of a SAELens class, plus a
config that adds only `alignment` (from `AlignedTrainingSAEConfig`) and the name.
p-annealing is the `PAnnealTrainingSAE` mixin, in front of `StandardTrainingSAE`
(`panneal`, the non-aligned baseline) and behind the aligned mixin
(`aligned_panneal`). The TopK family trains with the sparse step
(`sparse_topk.py`): each aligned TopK variant is the aligned mixin in front of the
sparse-step stock class (`sparse_topk`, ...), and its config adds `sparse_training`.
"""

from dataclasses import dataclass
from typing import Any

import torch
from sae_lens.registry import (
    SAE_CLASS_REGISTRY,
    SAE_TRAINING_CLASS_REGISTRY,
    get_sae_class,
)
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAEConfig
from sae_lens.saes.gated_sae import GatedTrainingSAE, GatedTrainingSAEConfig
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
from sae_lens.saes.matryoshka_batchtopk_sae import (
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.sae import SAE, SAEConfig, TrainingSAE, TrainingSAEConfig
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAEConfig
from typing_extensions import override

from saelens_aligned.aligned_sae import AlignedTrainingSAE, AlignedTrainingSAEConfig
from saelens_aligned.p_anneal import PAnnealTrainingSAE, PAnnealTrainingSAEConfig
from saelens_aligned.sparse_bases import (
    SPARSE_TRAINING_CLASSES,
    SparseBatchTopKTrainingSAE,
    SparseMatryoshkaBatchTopKTrainingSAE,
    SparseTopKTrainingSAE,
)
from saelens_aligned.sparse_config import SparseTrainingSAEConfig


@dataclass
class AlignedStandardTrainingSAEConfig(
    AlignedTrainingSAEConfig, StandardTrainingSAEConfig
):
    """ReLU + L1 (SAELens "standard") trained aligned. Fields as in
    StandardTrainingSAEConfig, plus `alignment` (see AlignedTrainingSAEConfig)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned"


class AlignedStandardTrainingSAE(
    AlignedTrainingSAE[AlignedStandardTrainingSAEConfig], StandardTrainingSAE
):
    pass


@dataclass
class AlignedTopKTrainingSAEConfig(
    AlignedTrainingSAEConfig, SparseTrainingSAEConfig, TopKTrainingSAEConfig
):
    """TopK trained aligned. Fields as in TopKTrainingSAEConfig, plus `alignment`
    and `sparse_training` (see SparseTrainingSAEConfig)."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned_topk"


class AlignedTopKTrainingSAE(
    AlignedTrainingSAE[AlignedTopKTrainingSAEConfig], SparseTopKTrainingSAE
):
    pass


@dataclass
class AlignedBatchTopKTrainingSAEConfig(
    AlignedTrainingSAEConfig, SparseTrainingSAEConfig, BatchTopKTrainingSAEConfig
):
    """BatchTopK trained aligned (exported as JumpReLU, like BatchTopK). Fields as in
    BatchTopKTrainingSAEConfig, plus `alignment` and `sparse_training`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned_batchtopk"


class AlignedBatchTopKTrainingSAE(
    AlignedTrainingSAE[AlignedBatchTopKTrainingSAEConfig], SparseBatchTopKTrainingSAE
):
    pass


@dataclass
class AlignedMatryoshkaBatchTopKTrainingSAEConfig(
    AlignedTrainingSAEConfig,
    SparseTrainingSAEConfig,
    MatryoshkaBatchTopKTrainingSAEConfig,
):
    """Matryoshka BatchTopK trained aligned. Fields as in
    MatryoshkaBatchTopKTrainingSAEConfig, plus `alignment` and `sparse_training`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned_matryoshka_batchtopk"


class AlignedMatryoshkaBatchTopKTrainingSAE(
    AlignedTrainingSAE[AlignedMatryoshkaBatchTopKTrainingSAEConfig],
    SparseMatryoshkaBatchTopKTrainingSAE,
):
    pass


@dataclass
class AlignedJumpReLUTrainingSAEConfig(
    AlignedTrainingSAEConfig, JumpReLUTrainingSAEConfig
):
    """JumpReLU trained aligned. Fields as in JumpReLUTrainingSAEConfig, plus
    `alignment`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned_jumprelu"


class AlignedJumpReLUTrainingSAE(
    AlignedTrainingSAE[AlignedJumpReLUTrainingSAEConfig], JumpReLUTrainingSAE
):
    pass


@dataclass
class AlignedGatedTrainingSAEConfig(AlignedTrainingSAEConfig, GatedTrainingSAEConfig):
    """Gated trained aligned. Fields as in GatedTrainingSAEConfig, plus `alignment`.

    The constraint is put on the magnitude path, the one that produces feature
    values: its encoder is W_enc * exp(r_mag), so `tied` derives d_i from that
    column and `projected` targets <e_i, d_i> = exp(-r_mag_i). The gate path shares
    the direction of W_enc and keeps deciding which features fire.
    """

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned_gated"


class AlignedGatedTrainingSAE(
    AlignedTrainingSAE[AlignedGatedTrainingSAEConfig], GatedTrainingSAE
):
    @override
    def magnitude_scale(self) -> torch.Tensor:
        return self.r_mag.exp()


@dataclass
class PAnnealStandardTrainingSAEConfig(
    PAnnealTrainingSAEConfig, StandardTrainingSAEConfig
):
    """ReLU + L1 with p-annealing (not aligned); exported as SAELens "standard".
    Fields as in StandardTrainingSAEConfig, plus those of PAnnealTrainingSAEConfig."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "panneal"


class PAnnealStandardTrainingSAE(
    PAnnealTrainingSAE[PAnnealStandardTrainingSAEConfig], StandardTrainingSAE
):
    pass


@dataclass
class AlignedPAnnealStandardTrainingSAEConfig(
    AlignedTrainingSAEConfig, PAnnealStandardTrainingSAEConfig
):
    """`aligned` with p-annealing; its base architecture is `panneal`. Fields as in
    PAnnealStandardTrainingSAEConfig, plus `alignment`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "aligned_panneal"


class AlignedPAnnealStandardTrainingSAE(
    AlignedTrainingSAE[AlignedPAnnealStandardTrainingSAEConfig],
    PAnnealStandardTrainingSAE,
):
    pass


# Non-aligned architectures this package adds, as baselines for aligned ones.
# Registered before the aligned ones, which may name them as their base.
BASELINE_TRAINING_CLASSES: tuple[
    tuple[type[TrainingSAE[Any]], type[TrainingSAEConfig]], ...
] = (
    (PAnnealStandardTrainingSAE, PAnnealStandardTrainingSAEConfig),
    *SPARSE_TRAINING_CLASSES,
)

ALIGNED_TRAINING_CLASSES: tuple[
    tuple[type[AlignedTrainingSAE[Any]], type[AlignedTrainingSAEConfig]], ...
] = (
    (AlignedStandardTrainingSAE, AlignedStandardTrainingSAEConfig),
    (AlignedTopKTrainingSAE, AlignedTopKTrainingSAEConfig),
    (AlignedBatchTopKTrainingSAE, AlignedBatchTopKTrainingSAEConfig),
    (
        AlignedMatryoshkaBatchTopKTrainingSAE,
        AlignedMatryoshkaBatchTopKTrainingSAEConfig,
    ),
    (AlignedJumpReLUTrainingSAE, AlignedJumpReLUTrainingSAEConfig),
    (AlignedGatedTrainingSAE, AlignedGatedTrainingSAEConfig),
    (AlignedPAnnealStandardTrainingSAE, AlignedPAnnealStandardTrainingSAEConfig),
)


def _base_config_class(
    config_class: type[TrainingSAEConfig],
) -> type[TrainingSAEConfig]:
    # The first non-aligned ancestor that names an architecture of its own (config
    # mixins such as CheckedTrainingSAEConfig name none).
    for parent in config_class.__mro__[1:]:
        if (
            issubclass(parent, TrainingSAEConfig)
            and not issubclass(parent, AlignedTrainingSAEConfig)
            and parent.__dict__.get("architecture") is not None
        ):
            return parent
    raise ValueError(f"{config_class.__name__} extends no SAELens architecture.")


def base_architecture(config_class: type[TrainingSAEConfig]) -> str:
    """The SAELens architecture an aligned config extends ("aligned_topk" -> "topk")."""
    return _base_config_class(config_class).architecture()


def _inference_classes(
    config_class: type[TrainingSAEConfig],
) -> tuple[type[SAE[Any]], type[SAEConfig]]:
    # The export is the base's inference architecture (standard, topk, jumprelu or
    # gated). BatchTopK-style bases name theirs by overriding
    # get_inference_config_class; the rest use their own name.
    base_config = _base_config_class(config_class)
    override_fn = getattr(base_config, "get_inference_config_class")
    if override_fn is not TrainingSAEConfig.get_inference_config_class:
        return get_sae_class(override_fn(base_config).architecture())  # type: ignore[arg-type]
    return get_sae_class(base_config.architecture())


def aligned_architectures() -> list[str]:
    """Names of every aligned architecture currently in SAELens' training registry."""
    return [
        name
        for name, (_, config_class) in SAE_TRAINING_CLASS_REGISTRY.items()
        if issubclass(config_class, AlignedTrainingSAEConfig)
    ]


def aligned_variant(base: str) -> str:
    """The aligned architecture whose base is `base` ("topk" -> "aligned_topk")."""
    for name in aligned_architectures():
        if base_architecture(SAE_TRAINING_CLASS_REGISTRY[name][1]) == base:
            return name
    bases = sorted(
        base_architecture(SAE_TRAINING_CLASS_REGISTRY[n][1])
        for n in aligned_architectures()
    )
    raise ValueError(
        f"No aligned variant of architecture {base!r}; aligned variants exist for "
        f"{bases}."
    )


def sparse_step_variant(base: str) -> str | None:
    """The stock architecture that trains `base` with the sparse TopK step
    ("topk" -> "sparse_topk"); None if `base` has none. An architecture that
    already trains with it is its own variant."""
    config_class = SAE_TRAINING_CLASS_REGISTRY[base][1]
    if issubclass(config_class, SparseTrainingSAEConfig):
        return base
    for name, (_, candidate) in SAE_TRAINING_CLASS_REGISTRY.items():
        if (
            issubclass(candidate, SparseTrainingSAEConfig)
            and not issubclass(candidate, AlignedTrainingSAEConfig)
            and base_architecture(candidate) == base
        ):
            return name
    return None


def same_step_base(cfg: TrainingSAEConfig) -> str:
    """The stock architecture that trains as `cfg`'s SAE does, without the
    constraint: its base, on the sparse TopK step where `cfg` uses it
    (`aligned_topk` -> `sparse_topk`, or `topk` with sparse_training=False)."""
    base = base_architecture(type(cfg))
    if isinstance(cfg, SparseTrainingSAEConfig) and cfg.uses_sparse_step():
        return sparse_step_variant(base) or base
    return base


def get_aligned_training_class(
    architecture: str,
) -> tuple[type[AlignedTrainingSAE[Any]], type[AlignedTrainingSAEConfig]]:
    """Registry lookup with an error that lists the valid names."""
    entry = SAE_TRAINING_CLASS_REGISTRY.get(architecture)
    if entry is None or not issubclass(entry[1], AlignedTrainingSAEConfig):
        raise ValueError(
            f"architecture={architecture!r} is not an aligned architecture. "
            f"Valid aligned architectures: {sorted(aligned_architectures())}."
        )
    return entry  # type: ignore[return-value]


def _same_class(registered: type, ours: type) -> bool:
    return (registered.__module__, registered.__qualname__) == (
        ours.__module__,
        ours.__qualname__,
    )


def register_aligned_architectures() -> None:
    """Register every aligned variant, and the baselines in
    BASELINE_TRAINING_CLASSES, in SAELens' registries. Idempotent.

    SAELens' register functions refuse a name twice, so a repeated import or an
    `importlib.reload` (which creates new class objects) replaces our own earlier
    entries in place; a name taken by some other package is an error.
    """
    for sae_class, config_class in (
        *BASELINE_TRAINING_CLASSES,
        *ALIGNED_TRAINING_CLASSES,
    ):
        name = config_class.architecture()
        inference_entry = _inference_classes(config_class)
        existing = SAE_TRAINING_CLASS_REGISTRY.get(name)
        if existing is not None and not _same_class(existing[0], sae_class):
            raise ValueError(
                f"SAELens architecture {name!r} is already registered by "
                f"{existing[0].__module__}.{existing[0].__qualname__}; "
                "saelens_aligned cannot register its own class under that name."
            )
        SAE_TRAINING_CLASS_REGISTRY[name] = (sae_class, config_class)
        SAE_CLASS_REGISTRY[name] = inference_entry


def is_aligned(sae: TrainingSAE[Any] | SAE[Any]) -> bool:
    return isinstance(sae, AlignedTrainingSAE)
