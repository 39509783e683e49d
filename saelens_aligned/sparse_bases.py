"""SAELens' TopK family trained with the sparse step, not aligned: `sparse_topk`,
`sparse_batchtopk` and `sparse_matryoshka_batchtopk`, the stock baselines of the
benchmark at the aligned arms' speed (`benchmarks` compares them side by side).
Each is a config subclass adding `sparse_training` and a two-line training class
over `saelens_aligned.sparse_topk`'s step; exported as their SAELens base.
"""

from dataclasses import dataclass
from typing import Any

from sae_lens.saes.batchtopk_sae import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
)
from sae_lens.saes.matryoshka_batchtopk_sae import (
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.sae import TrainingSAE
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from typing_extensions import override

from saelens_aligned.sparse_config import SparseTrainingSAEConfig
from saelens_aligned.sparse_topk import (
    SparseBatchTopKTraining,
    SparseMatryoshkaTraining,
    SparseTopKTraining,
)


@dataclass
class SparseTopKTrainingSAEConfig(SparseTrainingSAEConfig, TopKTrainingSAEConfig):
    """SAELens' `topk` trained with the sparse step; exported as `topk`. Fields as
    in TopKTrainingSAEConfig, plus `sparse_training`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "sparse_topk"


class SparseTopKTrainingSAE(
    SparseTopKTraining[SparseTopKTrainingSAEConfig], TopKTrainingSAE
):
    pass


@dataclass
class SparseBatchTopKTrainingSAEConfig(
    SparseTrainingSAEConfig, BatchTopKTrainingSAEConfig
):
    """SAELens' `batchtopk` trained with the sparse step; exported as `jumprelu`.
    Fields as in BatchTopKTrainingSAEConfig, plus `sparse_training`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "sparse_batchtopk"


class SparseBatchTopKTrainingSAE(
    SparseBatchTopKTraining[SparseBatchTopKTrainingSAEConfig], BatchTopKTrainingSAE
):
    pass


@dataclass
class SparseMatryoshkaBatchTopKTrainingSAEConfig(
    SparseTrainingSAEConfig, MatryoshkaBatchTopKTrainingSAEConfig
):
    """SAELens' `matryoshka_batchtopk` trained with the sparse step; exported as
    `jumprelu`. Fields as in MatryoshkaBatchTopKTrainingSAEConfig, plus
    `sparse_training`."""

    @override
    @classmethod
    def architecture(cls) -> str:
        return "sparse_matryoshka_batchtopk"


class SparseMatryoshkaBatchTopKTrainingSAE(
    SparseMatryoshkaTraining[SparseMatryoshkaBatchTopKTrainingSAEConfig],
    MatryoshkaBatchTopKTrainingSAE,
):
    pass


SPARSE_TRAINING_CLASSES: tuple[
    tuple[type[TrainingSAE[Any]], type[SparseTrainingSAEConfig]], ...
] = (
    (SparseTopKTrainingSAE, SparseTopKTrainingSAEConfig),
    (SparseBatchTopKTrainingSAE, SparseBatchTopKTrainingSAEConfig),
    (SparseMatryoshkaBatchTopKTrainingSAE, SparseMatryoshkaBatchTopKTrainingSAEConfig),
)
