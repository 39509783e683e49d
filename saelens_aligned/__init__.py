"""saelens-aligned: aligned training of sparse autoencoders as a SAELens plugin.

Importing this package registers `aligned`, `aligned_topk`, `aligned_batchtopk`,
`aligned_matryoshka_batchtopk`, `aligned_jumprelu`, `aligned_gated` and
`aligned_panneal` in SAELens' registry, so `architecture="aligned_topk"` works in any
SAELens config. It also registers `panneal` (standard ReLU + L1 with p-annealing),
the non-aligned baseline for `aligned_panneal`.
"""

from importlib.metadata import PackageNotFoundError, version

from saelens_aligned.aligned_sae import AlignedTrainingSAE, AlignedTrainingSAEConfig
from saelens_aligned.alignment import (
    AlignmentSummary,
    alignment_scores,
    projected_encoder,
    summarize_alignment,
    tied_decoder,
)

# The apps, after the layers they use.
from saelens_aligned.apps.align import convert_to_aligned, run_align
from saelens_aligned.apps.align_inputs import AlignConfig
from saelens_aligned.apps.demo import DemoConfig, run_demo
from saelens_aligned.architectures import (
    AlignedBatchTopKTrainingSAE,
    AlignedBatchTopKTrainingSAEConfig,
    AlignedGatedTrainingSAE,
    AlignedGatedTrainingSAEConfig,
    AlignedJumpReLUTrainingSAE,
    AlignedJumpReLUTrainingSAEConfig,
    AlignedMatryoshkaBatchTopKTrainingSAE,
    AlignedMatryoshkaBatchTopKTrainingSAEConfig,
    AlignedPAnnealStandardTrainingSAE,
    AlignedPAnnealStandardTrainingSAEConfig,
    AlignedStandardTrainingSAE,
    AlignedStandardTrainingSAEConfig,
    AlignedTopKTrainingSAE,
    AlignedTopKTrainingSAEConfig,
    PAnnealStandardTrainingSAE,
    PAnnealStandardTrainingSAEConfig,
    aligned_architectures,
    base_architecture,
    get_aligned_training_class,
    register_aligned_architectures,
)
from saelens_aligned.compat import disable_datasets_torchvision_formatter
from saelens_aligned.diagnostics import (
    sae_alignment_cosines,
    sae_alignment_scores,
    sae_alignment_summary,
)
from saelens_aligned.io.pretrained import (
    NotSafetensorsError,
    PretrainedSAE,
    load_sae,
    register_pretrained_releases,
)
from saelens_aligned.p_anneal import (
    PAnnealSchedule,
    PAnnealTrainingSAE,
    PAnnealTrainingSAEConfig,
    sparsity_penalty,
)
from saelens_aligned.pipeline.evaluation import EvalBudget, EvalResult, evaluate
from saelens_aligned.pipeline.models import default_model_dir
from saelens_aligned.pipeline.source import Source, resolve_source
from saelens_aligned.pipeline.text import default_corpus
from saelens_aligned.pipeline.training import TrainingSettings, train_sae
from saelens_aligned.sae_config import ConfigError, build_sae_config

try:
    __version__ = version("saelens-aligned")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

register_aligned_architectures()
disable_datasets_torchvision_formatter()
# Our releases (pretrained_saes.yaml) become visible to SAE.from_pretrained.
register_pretrained_releases()

__all__ = [
    "AlignConfig",
    "ConfigError",
    "DemoConfig",
    "EvalBudget",
    "EvalResult",
    "Source",
    "TrainingSettings",
    "build_sae_config",
    "convert_to_aligned",
    "evaluate",
    "resolve_source",
    "run_align",
    "run_demo",
    "train_sae",
    "AlignedBatchTopKTrainingSAE",
    "AlignedBatchTopKTrainingSAEConfig",
    "AlignedGatedTrainingSAE",
    "AlignedGatedTrainingSAEConfig",
    "AlignedJumpReLUTrainingSAE",
    "AlignedJumpReLUTrainingSAEConfig",
    "AlignedMatryoshkaBatchTopKTrainingSAE",
    "AlignedMatryoshkaBatchTopKTrainingSAEConfig",
    "AlignedPAnnealStandardTrainingSAE",
    "AlignedPAnnealStandardTrainingSAEConfig",
    "AlignedStandardTrainingSAE",
    "AlignedStandardTrainingSAEConfig",
    "AlignedTopKTrainingSAE",
    "AlignedTopKTrainingSAEConfig",
    "AlignedTrainingSAE",
    "AlignedTrainingSAEConfig",
    "AlignmentSummary",
    "NotSafetensorsError",
    "PAnnealSchedule",
    "PAnnealStandardTrainingSAE",
    "PAnnealStandardTrainingSAEConfig",
    "PAnnealTrainingSAE",
    "PAnnealTrainingSAEConfig",
    "PretrainedSAE",
    "__version__",
    "aligned_architectures",
    "alignment_scores",
    "base_architecture",
    "default_corpus",
    "default_model_dir",
    "get_aligned_training_class",
    "load_sae",
    "projected_encoder",
    "register_aligned_architectures",
    "register_pretrained_releases",
    "sae_alignment_cosines",
    "sae_alignment_scores",
    "sae_alignment_summary",
    "sparsity_penalty",
    "summarize_alignment",
    "tied_decoder",
]
