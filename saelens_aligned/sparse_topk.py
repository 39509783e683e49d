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

It falls back to SAELens' dense step, unchanged and exact, wherever it would not
be exact, and says so once per SAE and reason (`SparseStepFallbackWarning`): any
forward or backward hook, TransformerLens' or torch's, on the SAE or any of its
modules, or registered globally for every module (a hook may change or read a
dense ``[batch, d_sae]`` tensor the sparse step never forms), and input that is
not one row per token. With `sparse_training=False`, and by default on any
device but the CPU (`sparse_step_by_default`), it is SAELens' dense step too.

Under autocast (SAELens' `autocast=True`) the encoder GEMM and its bias run in
the autocast dtype, and the TopK choice is made on those pre-activations (SAELens'
dense autocast step adds its fp32 bias to the bf16 GEMM, so the two choices can
differ where two pre-activations are within a bf16 rounding); everything after the
choice, and every gradient, is fp32.
"""

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from sae_lens.saes.sae import TrainingSAE, TrainStepInput, TrainStepOutput
from typing_extensions import override

from saelens_aligned.alignment import feature_major, is_feature_major
from saelens_aligned.sparse_config import (
    SparseTrainingSAEConfig,
    fallback_reason,
    warn_fallback_once,
)
from saelens_aligned.sparse_ops import (
    ActivePairs,
    batch_topk_pairs,
    dead_block_decode,
    dead_columns,
    dead_topk_pairs,
    gathered_pre_acts,
    pairs_of_sparse,
    sparse_decode,
    topk_pairs,
)

# AuxK decodes its dead latents as one dense product over the dead sub-block
# while there are at most this many dead latents per AuxK pair of a token
# (k_aux = d_in / 2), as a sparse decode beyond: where the two cost the same,
# measured by `python -m benchmarks sparse-perf` (`auxk_crossover`,
# docs/performance.md).
AUXK_DENSE_MAX_DEAD_PER_PAIR = 5.0
# BatchTopK's candidates are the pre-activations above this fraction of the last
# step's smallest chosen value; the choice is exact whatever it is (fewer
# candidates than needed fall back to the full top-k), it only sets the speed.
BATCH_TOPK_CANDIDATE_FLOOR = 0.9


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
        pairs: the step's active pairs.
        pre_acts_N: the (rescaled) pre-activations at `pairs`, with their graph.
        feature_acts: the step's activations as the sparse tensor handed to
            SAELens, and `acts_N`, its values with their graph: decode reads
            these instead of differentiating through the sparse tensor.
    """

    sae_in_BD: torch.Tensor
    hidden_pre_BF: torch.Tensor
    decoder_norm_F: torch.Tensor | None
    pairs: ActivePairs | None = None
    pre_acts_N: torch.Tensor | None = None
    feature_acts: torch.Tensor | None = None
    acts_N: torch.Tensor | None = None


class SparseTopKTraining(TrainingSAE[T_SPARSE_CONFIG]):
    """Mixin that trains a SAELens TopK SAE with the sparse step (module doc)."""

    _sparse_step_enabled: bool = False
    _sparse_step: _SparseStepState | None = None

    @override
    def initialize_weights(self) -> None:
        super().initialize_weights()
        self._use_feature_major_encoder()

    def _use_feature_major_encoder(self) -> None:
        # W_enc feature-major (`alignment.feature_major`), as aligned SAEs store
        # it: the input gradient's embedding_bag reads W_enc^T rows, which are
        # then contiguous instead of copied every step. `.data` keeps the
        # Parameter object; the GEMM reads either layout at the same speed.
        W_enc = self._parameters.get("W_enc")
        if (
            W_enc is not None
            and W_enc.device.type != "meta"
            and not is_feature_major(W_enc)
        ):
            W_enc.data = feature_major(W_enc.data)

    @override
    def process_state_dict_for_saving(self, state_dict: dict[str, Any]) -> None:
        # Contiguous: safetensors stores no strides.
        state_dict["W_enc"] = state_dict["W_enc"].contiguous()
        super().process_state_dict_for_saving(state_dict)

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        if not self._sparse_step_applies(step_input):
            return super().training_forward_pass(step_input)
        self._sparse_step_enabled = True
        try:
            output = super().training_forward_pass(step_input)
            step = self._sparse_step
            assert step is not None and step.pairs is not None
            assert step.pre_acts_N is not None
            # SAELens' trainer keeps the step's output alive into the next step;
            # the dense [B, F] pre-activations would then be two such buffers at
            # once. Nothing in SAELens reads them after the step, so the output
            # holds them at the active pairs only, as a sparse tensor.
            output.hidden_pre = step.pairs.to_sparse(step.pre_acts_N.detach())
            return output
        finally:
            self._sparse_step_enabled = False
            self._sparse_step = None

    def _sparse_step_applies(self, step_input: TrainStepInput) -> bool:
        if not self.cfg.uses_sparse_step(step_input.sae_in.device.type):
            return False
        reason = fallback_reason(self, step_input.sae_in)
        if reason is not None:
            warn_fallback_once(self, reason)
        return reason is None

    def select_active_pairs(self, hidden_pre_BF: torch.Tensor) -> ActivePairs:
        """The active pairs of this step, from the (rescaled) pre-activations."""
        return topk_pairs(hidden_pre_BF, int(self.cfg.k))  # type: ignore[attr-defined]

    def _encoder_gemm(self, sae_in_BD: torch.Tensor) -> torch.Tensor:
        """sae_in @ W_enc + b_enc, without a graph, written into the step's
        [B, F] scratch buffer."""
        device_type = sae_in_BD.device.type
        if torch.is_autocast_enabled(device_type):
            # The GEMM and its bias in the autocast dtype, one fused product:
            # an fp32 bias would promote the output to a fresh fp32 [B, F].
            low = torch.get_autocast_dtype(device_type)
            out_BF = self._scratch(sae_in_BD.shape[0], low, sae_in_BD.device)
            return torch.addmm(
                self.b_enc.to(low), sae_in_BD.to(low), self.W_enc.to(low), out=out_BF
            )
        # SAELens' GEMM, then its bias add in place: the same values, hence
        # the same choice (addmm would round differently).
        out_BF = self._scratch(sae_in_BD.shape[0], self.W_enc.dtype, sae_in_BD.device)
        return torch.mm(sae_in_BD, self.W_enc, out=out_BF).add_(self.b_enc)

    def _scratch(
        self, batch: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        # One [B, F] buffer reused by every step while the SAE trains: on the
        # CPU a fresh one costs a page fault per 4 KiB each step (about 0.1 s
        # at B 4096, F 18432), and nothing outside the step holds it (the
        # step's output carries sparse pre-activations). `train(False)` frees it.
        scratch = self.__dict__.get("_hidden_pre_scratch")
        shape = (batch, self.cfg.d_sae)
        if (
            scratch is None
            or scratch.shape != shape
            or scratch.dtype != dtype
            or scratch.device != device
        ):
            self.__dict__["_hidden_pre_scratch"] = None  # free before allocating
            scratch = torch.empty(shape, dtype=dtype, device=device)
            self.__dict__["_hidden_pre_scratch"] = scratch
        return scratch

    @override
    def train(self, mode: bool = True) -> "SparseTopKTraining[T_SPARSE_CONFIG]":
        if not mode:
            self.__dict__.pop("_hidden_pre_scratch", None)
        return super().train(mode)

    @override
    def encode_with_hidden_pre(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._sparse_step_enabled:
            return super().encode_with_hidden_pre(x)
        sae_in_BD = self.process_sae_in(x)
        rescale = bool(getattr(self.cfg, "rescale_acts_by_decoder_norm", False))
        decoder_norm_F = self.W_dec.norm(dim=-1) if rescale else None
        with torch.no_grad():
            hidden_pre_BF = self.hook_sae_acts_pre(self._encoder_gemm(sae_in_BD))
            if decoder_norm_F is not None:
                hidden_pre_BF = hidden_pre_BF.mul_(
                    decoder_norm_F.to(hidden_pre_BF.dtype)
                )
            pairs = self.select_active_pairs(hidden_pre_BF)
        step = _SparseStepState(sae_in_BD, hidden_pre_BF, decoder_norm_F, pairs)
        self._sparse_step = step
        step.pre_acts_N = self._pre_acts_at(pairs)
        step.acts_N = step.pre_acts_N.relu()
        step.feature_acts = self.hook_sae_acts_post(pairs.to_sparse(step.acts_N))
        return step.feature_acts, hidden_pre_BF

    def _pre_acts_at(self, pairs: ActivePairs) -> torch.Tensor:
        """The (rescaled) pre-activations at `pairs`, differentiable w.r.t. the
        input, the encoder, its bias and the decoder norms, in the parameters'
        dtype (fp32 under autocast). [N]"""
        step = self._sparse_step
        assert step is not None
        values_N = step.hidden_pre_BF[pairs.rows_N, pairs.cols_N].to(self.b_enc.dtype)
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
        if feature_acts is step.feature_acts:
            assert step.pairs is not None and step.acts_N is not None
            pairs, acts_N = step.pairs, step.acts_N
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
        self, hidden_pre_BF: torch.Tensor, dead_cols_K: torch.Tensor, k_aux: int
    ) -> torch.Tensor:
        """AuxK's reconstruction from the `k_aux` top dead latents of each token
        (no bias, no ReLU, as SAELens' `calculate_topk_aux_acts`), by the cheaper
        of a dense product over the dead sub-block and a sparse decode. [B, D]"""
        pairs, local_N = dead_topk_pairs(hidden_pre_BF, dead_cols_K, k_aux)
        coefficients_N = self._decode_coefficients(pairs, self._pre_acts_at(pairs))
        if auxk_decodes_dense(dead_cols_K.numel(), k_aux):
            return dead_block_decode(
                self.W_dec, dead_cols_K, pairs, local_N, coefficients_N
            )
        return sparse_decode(self.W_dec, pairs, coefficients_N)

    @override
    def calculate_topk_aux_loss(  # type: ignore[misc]
        self,
        sae_in: torch.Tensor,
        sae_out: torch.Tensor,
        hidden_pre: torch.Tensor,
        dead_neuron_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.cfg.aux_loss_coefficient == 0:  # type: ignore[attr-defined]
            # AuxK off (`aux_loss_coefficient: 0`): SAELens would return 0 times
            # the loss; skip computing it. Same loss and gradients.
            return sae_out.new_tensor(0.0)
        if not self._in_sparse_step():
            return super().calculate_topk_aux_loss(  # type: ignore[misc]
                sae_in, sae_out, hidden_pre, dead_neuron_mask
            )
        # SAELens' AuxK (TopKTrainingSAE.calculate_topk_aux_loss), with the
        # reconstruction made from the chosen dead latents only. The dead count
        # is one host sync, as in SAELens' own AuxK.
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
            hidden_pre, dead_columns(dead_neuron_mask, num_dead), k_aux
        )
        recons_BD = self.reshape_fn_out(recons_BD, self.d_head)
        auxk_loss = (recons_BD - residual_BD).pow(2).sum(dim=-1).mean()
        return self.cfg.aux_loss_coefficient * scale * auxk_loss  # type: ignore[attr-defined]


def auxk_decodes_dense(num_dead: int, k_aux: int) -> bool:
    """Whether AuxK's reconstruction is cheaper as a dense product over the
    `num_dead` dead decoder rows than as a sparse decode of `k_aux` rows per
    token (`AUXK_DENSE_MAX_DEAD_PER_PAIR`)."""
    return num_dead <= AUXK_DENSE_MAX_DEAD_PER_PAIR * k_aux


class SparseBatchTopKTraining(SparseTopKTraining[T_SPARSE_CONFIG]):
    """`SparseTopKTraining` for BatchTopK: the batch-wide choice, and the threshold
    update read off the active values."""

    # Candidates for the next step's choice lie above this value (a plain
    # float, not state: it only makes the exact choice faster).
    _candidate_floor: float | None = None

    @override
    def select_active_pairs(self, hidden_pre_BF: torch.Tensor) -> ActivePairs:
        return batch_topk_pairs(
            hidden_pre_BF,
            self.cfg.k,  # type: ignore[attr-defined]
            floor=self._candidate_floor,
        )

    @torch.no_grad()
    def update_topk_threshold(self, acts_topk: torch.Tensor) -> None:
        # SAELens' rule needs only the positive values, which a sparse tensor
        # lists; its `acts > 0` does not accept one.
        values = acts_topk.values() if acts_topk.is_sparse else acts_topk
        super().update_topk_threshold(values)  # type: ignore[misc]
        if acts_topk.is_sparse and bool((positive := values[values > 0]).numel()):
            # SAELens' running threshold tracks this value slowly; the last
            # step's own smallest choice is the closer guess for the next.
            smallest = float(positive.min())
            self._candidate_floor = BATCH_TOPK_CANDIDATE_FLOOR * smallest


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
            # A boolean select: one host sync per level on CUDA (BatchTopK's
            # choice already needs its candidate count).
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
                hidden_pre,
                dead_columns(level_dead_F, partial_num_dead),
                min(k_aux, partial_num_dead),
            )
            auxk_loss = (recons_BD - residual_BD).pow(2).sum(dim=-1).mean()
            aux_losses.append(scale * auxk_loss)
        return self.cfg.aux_loss_coefficient * torch.stack(aux_losses).sum()  # type: ignore[attr-defined]
