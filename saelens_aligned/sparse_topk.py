"""The sparse training step for SAELens' TopK family: TopK, BatchTopK and
Matryoshka BatchTopK, stock or aligned.

Only the encoder GEMM is dense: the TopK choice needs every pre-activation. After
it, decode, AuxK, the Matryoshka levels and every gradient touch only the active
(token, latent) pairs (`sparse_ops`), and no ``[batch, d_sae]`` tensor is kept for
the backward pass. The step is exact: it makes the same choice with the same
`torch.topk` call and computes the same loss and gradients as SAELens' dense step,
up to floating-point summation order (tests/test_sparse_topk.py checks every
variant, form, AuxK and rescaling case against the dense step).

`SparseTopKTraining` is a mixin put before a SAELens TopK-family training class,
like `PAnnealTrainingSAE`. It does not replace SAELens' `training_forward_pass`:
it re-implements the seams that pass ``[batch, d_sae]`` tensors around
(`encode_with_hidden_pre`, `decode`, `calculate_topk_aux_loss`, and for the
BatchTopK family the threshold update and the Matryoshka levels), so SAELens'
own step still assembles the losses, metrics and the trainer's statistics.
`feature_acts` is a coalesced sparse COO tensor during the step, a form SAELens'
trainer already reads. Outside `training_forward_pass` (evaluation, `encode`)
nothing changes. The aligned mixin swaps in its aligned matrices around the same
step, so aligned and stock SAEs share this path; with `tied` the decoder the step
reads is only the active rows of d_i = e_i / ||e_i||².

It falls back to the dense step, unchanged, wherever it would not be exact: with
`sparse_training=False`, with hooks on the SAE's hook points (a hook may change
or read a dense ``[batch, d_sae]`` tensor) or with input that is not one row per
token.
"""

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from sae_lens.saes.batchtopk_sae import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
)
from sae_lens.saes.matryoshka_batchtopk_sae import (
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
)
from sae_lens.saes.sae import TrainingSAE, TrainStepInput, TrainStepOutput
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from transformer_lens.hook_points import HookPoint
from typing_extensions import override

from saelens_aligned.sae_config import CheckedTrainingSAEConfig, ConfigError
from saelens_aligned.sparse_ops import (
    ActivePairs,
    batch_topk_pairs,
    dead_topk_pairs,
    gathered_pre_acts,
    pairs_of_sparse,
    sparse_decode,
    topk_pairs,
)


@dataclass(kw_only=True)
class SparseTrainingSAEConfig(CheckedTrainingSAEConfig):
    """
    Config mixin for TopK-family SAEs trained with the sparse step.

    Args:
        sparse_training (bool): Train with the sparse TopK step (default): the
            encoder GEMM is dense, everything after the TopK choice (decode, AuxK,
            Matryoshka levels, every gradient) runs over the active latents only.
            Same loss and gradients as SAELens' dense step up to float summation
            order, several times faster and with far less memory at large d_sae.
            False trains with SAELens' dense step. Unrelated to SAELens'
            `use_sparse_activations`, which only changes the decode product and
            which this step makes unnecessary.
    """

    sparse_training: bool = True

    @override
    def __post_init__(self) -> None:
        if not isinstance(self.sparse_training, bool):
            raise ConfigError(
                "sparse_training",
                self.sparse_training,
                "true or false",
                "Set sparse_training=False to train with SAELens' dense step.",
            )
        super().__post_init__()


T_SPARSE_CONFIG = TypeVar("T_SPARSE_CONFIG", bound=SparseTrainingSAEConfig)


@dataclass
class _SparseStepState:
    """What the seams of one sparse step share, set by `encode_with_hidden_pre`.

    Args:
        sae_in_BD: the processed input (x - b_dec, ...), with its graph.
        hidden_pre_BF: the encoder GEMM's output, rescaled by the decoder norms
            where the config says so, without a graph: the TopK and AuxK choices
            and the values at the chosen pairs are read off it.
        decoder_norm_F: ||d_i||, with its graph, when activations are rescaled by
            it (`rescale_acts_by_decoder_norm`); None otherwise.
        feature_acts: the step's activations as the sparse tensor handed to
            SAELens, and `acts_N`, its values with their graph: decode reads
            these instead of differentiating through the sparse tensor.
    """

    sae_in_BD: torch.Tensor
    hidden_pre_BF: torch.Tensor
    decoder_norm_F: torch.Tensor | None
    feature_acts: torch.Tensor | None = None
    acts_N: torch.Tensor | None = None


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # In place where the result keeps a's dtype; under autocast a bf16 GEMM
    # output plus an fp32 bias promotes to fp32, as SAELens' `a + b` does.
    return a.add_(b) if torch.result_type(a, b) == a.dtype else a + b


def _mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.mul_(b) if torch.result_type(a, b) == a.dtype else a * b


class SparseTopKTraining(TrainingSAE[T_SPARSE_CONFIG]):
    """Mixin that trains a SAELens TopK SAE with the sparse step (module doc)."""

    _sparse_step_enabled: bool = False
    _sparse_step: _SparseStepState | None = None

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        if not self._sparse_step_applies(step_input):
            return super().training_forward_pass(step_input)
        self._sparse_step_enabled = True
        try:
            return super().training_forward_pass(step_input)
        finally:
            self._sparse_step_enabled = False
            self._sparse_step = None

    def _sparse_step_applies(self, step_input: TrainStepInput) -> bool:
        return (
            self.cfg.sparse_training
            and step_input.sae_in.ndim == 2
            and not any(
                module.fwd_hooks or module.bwd_hooks
                for module in self.modules()
                if isinstance(module, HookPoint)
            )
        )

    def select_active_pairs(self, hidden_pre_BF: torch.Tensor) -> ActivePairs:
        """The active pairs of this step, from the (rescaled) pre-activations."""
        return topk_pairs(hidden_pre_BF, int(self.cfg.k))  # type: ignore[attr-defined]

    @override
    def encode_with_hidden_pre(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._sparse_step_enabled:
            return super().encode_with_hidden_pre(x)
        sae_in_BD = self.process_sae_in(x)
        if sae_in_BD.ndim != 2:  # a reshape made more than one row per token
            return super().encode_with_hidden_pre(x)
        rescale = bool(getattr(self.cfg, "rescale_acts_by_decoder_norm", False))
        decoder_norm_F = self.W_dec.norm(dim=-1) if rescale else None
        with torch.no_grad():
            # SAELens' GEMM, bias add and rescaling, in place: the same values,
            # hence the same choice, in one [B, F] buffer.
            hidden_pre_BF = _add(sae_in_BD @ self.W_enc, self.b_enc)
            hidden_pre_BF = self.hook_sae_acts_pre(hidden_pre_BF)
            if decoder_norm_F is not None:
                hidden_pre_BF = _mul(hidden_pre_BF, decoder_norm_F)
            pairs = self.select_active_pairs(hidden_pre_BF)
        step = _SparseStepState(sae_in_BD, hidden_pre_BF, decoder_norm_F)
        self._sparse_step = step
        step.acts_N = self._pre_acts_at(pairs).relu()
        step.feature_acts = self.hook_sae_acts_post(pairs.to_sparse(step.acts_N))
        return step.feature_acts, hidden_pre_BF

    def _pre_acts_at(self, pairs: ActivePairs) -> torch.Tensor:
        """The (rescaled) pre-activations at `pairs`, differentiable w.r.t. the
        input, the encoder, its bias and the decoder norms. [N]"""
        step = self._sparse_step
        assert step is not None
        values_N = step.hidden_pre_BF[pairs.rows_N, pairs.cols_N]
        return gathered_pre_acts(
            step.sae_in_BD,
            self.W_enc,
            self.b_enc,
            pairs,
            values_N,
            step.decoder_norm_F,
        )

    def _active(self, feature_acts: torch.Tensor) -> tuple[ActivePairs, torch.Tensor]:
        """The pairs and decode coefficients (activations over the decoder norms
        where rescaled) of this step's sparse `feature_acts`."""
        step = self._sparse_step
        assert step is not None
        if feature_acts is step.feature_acts and step.acts_N is not None:
            indices = feature_acts.indices()
            pairs = ActivePairs(indices[0], indices[1], *feature_acts.shape)
            acts_N = step.acts_N
        else:
            pairs, acts_N = pairs_of_sparse(feature_acts)
        return pairs, self._decode_coefficients(pairs, acts_N)

    def _decode_coefficients(
        self, pairs: ActivePairs, acts_N: torch.Tensor
    ) -> torch.Tensor:
        step = self._sparse_step
        assert step is not None
        if step.decoder_norm_F is None:
            return acts_N
        # As SAELens: times 1 / ||d|| (it cannot divide a sparse tensor).
        return acts_N * (1 / step.decoder_norm_F)[pairs.cols_N]

    def _in_sparse_step(self, feature_acts: torch.Tensor | None = None) -> bool:
        return self._sparse_step is not None and (
            feature_acts is None or feature_acts.is_sparse
        )

    @override
    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        if not self._in_sparse_step(feature_acts):
            return super().decode(feature_acts)
        pairs, coefficients_N = self._active(feature_acts)
        sae_out_pre = sparse_decode(self.W_dec, pairs, coefficients_N) + self.b_dec
        sae_out_pre = self.hook_sae_recons(sae_out_pre)
        sae_out_pre = self.run_time_activation_norm_fn_out(sae_out_pre)
        return self.reshape_fn_out(sae_out_pre, self.d_head)

    def _dead_latent_reconstruction(
        self, hidden_pre_BF: torch.Tensor, dead_F: torch.Tensor, k_aux: int
    ) -> torch.Tensor:
        """AuxK's reconstruction from the `k_aux` top dead latents of each token
        (no bias, no ReLU, as SAELens' `calculate_topk_aux_acts`). [B, D]"""
        pairs = dead_topk_pairs(hidden_pre_BF, dead_F, k_aux)
        aux_acts_N = self._pre_acts_at(pairs)
        return sparse_decode(
            self.W_dec, pairs, self._decode_coefficients(pairs, aux_acts_N)
        )

    @override
    def calculate_topk_aux_loss(  # type: ignore[misc]
        self,
        sae_in: torch.Tensor,
        sae_out: torch.Tensor,
        hidden_pre: torch.Tensor,
        dead_neuron_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if not self._in_sparse_step():
            return super().calculate_topk_aux_loss(  # type: ignore[misc]
                sae_in, sae_out, hidden_pre, dead_neuron_mask
            )
        # SAELens' AuxK (TopKTrainingSAE.calculate_topk_aux_loss), with the
        # reconstruction made from the chosen dead latents only.
        if dead_neuron_mask is None or (num_dead := int(dead_neuron_mask.sum())) == 0:
            return sae_out.new_tensor(0.0)
        if self.cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
            # Delegate, for SAELens' own error message.
            return super().calculate_topk_aux_loss(  # type: ignore[misc]
                sae_in, sae_out, hidden_pre, dead_neuron_mask
            )
        residual_BD = (sae_in - sae_out).detach()
        k_aux = sae_in.shape[-1] // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        recons_BD = self._dead_latent_reconstruction(
            hidden_pre, dead_neuron_mask, k_aux
        )
        recons_BD = self.reshape_fn_out(recons_BD, self.d_head)
        auxk_loss = (recons_BD - residual_BD).pow(2).sum(dim=-1).mean()
        return self.cfg.aux_loss_coefficient * scale * auxk_loss  # type: ignore[attr-defined]


class SparseBatchTopKTraining(SparseTopKTraining[T_SPARSE_CONFIG]):
    """`SparseTopKTraining` for BatchTopK: the batch-wide choice, and the threshold
    update read off the active values."""

    @override
    def select_active_pairs(self, hidden_pre_BF: torch.Tensor) -> ActivePairs:
        return batch_topk_pairs(hidden_pre_BF, self.cfg.k)  # type: ignore[attr-defined]

    @torch.no_grad()
    def update_topk_threshold(self, acts_topk: torch.Tensor) -> None:
        # SAELens' rule needs only the positive values, which a sparse tensor
        # lists; its `acts > 0` does not accept one.
        values = acts_topk.values() if acts_topk.is_sparse else acts_topk
        super().update_topk_threshold(values)  # type: ignore[misc]


class SparseMatryoshkaTraining(SparseBatchTopKTraining[T_SPARSE_CONFIG]):
    """`SparseBatchTopKTraining` for Matryoshka BatchTopK: each nested level
    decodes its own active pairs, and the per-level AuxK searches its own dead
    latents."""

    def _iterable_decode(
        self, feature_acts: torch.Tensor, include_outer_loss: bool = False
    ) -> Generator[tuple[int, torch.Tensor], None, None]:
        if not self._in_sparse_step(feature_acts):
            yield from super()._iterable_decode(  # type: ignore[misc]
                feature_acts, include_outer_loss
            )
            return
        pairs, coefficients_N = self._active(feature_acts)
        widths = list(self.cfg.matryoshka_widths)  # type: ignore[attr-defined]
        if not include_outer_loss:
            widths = widths[:-1]
        decoded = self.b_dec
        prev_width = 0
        for width in widths:
            level_N = (pairs.cols_N >= prev_width) & (pairs.cols_N < width)
            decoded = (
                sparse_decode(
                    self.W_dec, pairs.select(level_N), coefficients_N[level_N]
                )
                + decoded
            )
            prev_width = width
            yield width, self.run_time_activation_norm_fn_out(decoded)

    def calculate_matryoshka_aux_loss(
        self,
        sae_in: torch.Tensor,
        sae_out: torch.Tensor,
        feature_acts: torch.Tensor,
        hidden_pre: torch.Tensor,
        dead_neuron_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if not self._in_sparse_step(feature_acts):
            return super().calculate_matryoshka_aux_loss(  # type: ignore[misc]
                sae_in, sae_out, feature_acts, hidden_pre, dead_neuron_mask
            )
        # SAELens' per-level AuxK (MatryoshkaBatchTopKTrainingSAE
        # .calculate_matryoshka_aux_loss) over each level's own dead latents.
        if dead_neuron_mask is None or int(dead_neuron_mask.sum()) == 0:
            return sae_out.new_tensor(0.0)
        k_aux = sae_in.shape[-1] // 2
        latent_F = torch.arange(self.cfg.d_sae, device=dead_neuron_mask.device)
        aux_losses = []
        prev_width = 0
        for width, partial_sae_out in self._iterable_decode(
            feature_acts, include_outer_loss=True
        ):
            level_dead_F = (
                dead_neuron_mask & (latent_F >= prev_width) & (latent_F < width)
            )
            partial_num_dead = int(level_dead_F.sum())
            prev_width = width
            if partial_num_dead == 0:
                continue
            scale = min(partial_num_dead / k_aux, 1.0)
            residual_BD = (sae_in - partial_sae_out).detach()
            recons_BD = self._dead_latent_reconstruction(
                hidden_pre, level_dead_F, min(k_aux, partial_num_dead)
            )
            auxk_loss = (recons_BD - residual_BD).pow(2).sum(dim=-1).mean()
            aux_losses.append(scale * auxk_loss)
        return self.cfg.aux_loss_coefficient * torch.stack(aux_losses).sum()  # type: ignore[attr-defined]


# SAELens' TopK family trained with the sparse step, not aligned: the stock
# baselines of the benchmark at the aligned arms' speed. Exported as their base.


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
