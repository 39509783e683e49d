"""The one mechanism behind every aligned architecture.

`AlignedTrainingSAE` is a mixin placed before a SAELens training architecture in
the MRO. It never re-implements the base's forward logic: for the duration of
`training_forward_pass` it replaces the matrices the base reads (`W_dec` for
`tied`, `W_enc` for `projected`) with their aligned versions and hands control to
the base. Encode, decode, auxiliary losses, TopK's rescaling, thresholds and
Gated's paths therefore all see the same aligned matrices.

Stored parameters keep SAELens' names and always hold the *effective* weights:
- `tied`: `W_enc` is the free parameter; `W_dec` is rematerialised from it and
  has `requires_grad=False`, so it gets no gradient and Adam keeps no state for it.
- `projected`: `W_enc` and `W_dec` are free; `W_enc` is kept on the constraint
  surface, so a checkpoint is both the effective weights and the exact trainer
  state.
After every optimizer step that updates an aligned SAE, a torch optimizer
post-step hook re-aligns the stored weights in place, so `sae.W_dec`,
`sae.state_dict()` or any other reader sees effective weights between steps.
Readers that might follow an update made outside an optimizer (encode, decode,
folds, saving, histograms, the next step) also re-align lazily, keyed on the
parameters' version counters.

What this costs per step, and why it is no more: since the stored weights are
already aligned when a step starts, the aligned matrix the step reads *is* the
stored parameter. `aligned_weights` returns it as it is, through an autograd
function whose backward is the map's gradient in closed form (`alignment.py`): no
pass and no copy in the forward, two or three elementwise passes in the backward,
two or three in the re-alignment, and no full-size buffer the base does not have.
`W_enc` is stored feature-major (each column contiguous, like each row of `W_dec`)
so every one of those passes is unit-stride; the matmuls read either layout at the
same speed.
"""

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from numpy.typing import NDArray
from sae_lens.saes.sae import (
    TrainingSAE,
    TrainStepInput,
    TrainStepOutput,
)
from torch.optim.optimizer import register_optimizer_step_post_hook
from typing_extensions import override

from saelens_aligned.alignment import (
    ALIGNMENT_FORMS,
    DEGENERATE_SQ_NORM,
    AlignmentForm,
    alignment_scores,
    effective_encoder,
    effective_sq_norms,
    feature_major,
    is_feature_major,
    project_encoder_,
    projection_residual,
    stored_projected_encoder,
    stored_tied_decoder,
    summarize_alignment,
    tied_decoder,
    write_tied_decoder_,
)
from saelens_aligned.sae_config import CheckedTrainingSAEConfig, ConfigError

# Stored weights whose scores are this close to 1 count as aligned on load, so a
# saved aligned SAE reloads bit-exact instead of being re-derived.
LOAD_ALIGNMENT_TOLERANCE = 1e-4


@dataclass(kw_only=True)
class AlignedTrainingSAEConfig(CheckedTrainingSAEConfig):
    """
    Config mixin for aligned architectures; put it before the base config class.

    Args:
        alignment (str): How a_i = <e_i, d_i> = 1 is enforced. "tied" (default):
            each decoder row is derived from its encoder column, d_i = e_i/||e_i||²,
            so every feature reads and writes one direction with unit gain; the
            free decoder is removed. "projected": the decoder stays free and each
            encoder column is projected onto the hyperplane <e_i, d_i> = 1, which
            fixes only the gain and lets the encoder turn away from the decoder.
    """

    alignment: AlignmentForm = "tied"

    @override
    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENT_FORMS:
            raise ConfigError(
                "alignment", self.alignment, f"one of {list(ALIGNMENT_FORMS)}"
            )
        super().__post_init__()


T_ALIGNED_CONFIG = TypeVar("T_ALIGNED_CONFIG", bound=AlignedTrainingSAEConfig)


@contextmanager
def _parameters_replaced(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor]
) -> Iterator[None]:
    # Writing into `_parameters` directly is what torch.func.functional_call does:
    # attribute reads (`self.W_dec`) then return the derived tensor, with its graph,
    # while the Parameter objects (and the optimizer's references) stay untouched.
    saved = {name: module._parameters[name] for name in tensors}
    module._parameters.update(tensors)
    try:
        yield
    finally:
        module._parameters.update(saved)


# Every live aligned SAE, so the optimizer hook can find the ones a step updated.
_LIVE_ALIGNED_SAES: "weakref.WeakSet[AlignedTrainingSAE[Any]]" = weakref.WeakSet()


def _realign_after_optimizer_step(
    optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any
) -> None:
    # SAELens builds its optimizer inside SAETrainer, so there is no per-instance
    # seam; torch's global post-step hook is the official one. It costs a set of
    # a few parameter ids per step and touches only aligned SAEs in this optimizer.
    if not _LIVE_ALIGNED_SAES:
        return
    updated = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for sae in list(_LIVE_ALIGNED_SAES):
        if id(sae.W_enc) in updated:
            sae.align_()


# Re-executing this module (importlib.reload) must not stack a second hook.
if "_OPTIMIZER_HOOK" in globals():
    _OPTIMIZER_HOOK.remove()
_OPTIMIZER_HOOK = register_optimizer_step_post_hook(_realign_after_optimizer_step)


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a NaN or inf; raised before the optimizer step, so the
    weights (and every checkpoint already written) are still the last good ones."""


def _non_finite_report(step_input: TrainStepInput, output: TrainStepOutput) -> str:
    if not torch.isfinite(step_input.sae_in).all():
        bad = (~torch.isfinite(step_input.sae_in)).sum().item()
        return f"the input activations ({bad} non-finite values)"
    bad_losses = [
        name for name, value in output.losses.items() if not torch.isfinite(value).all()
    ]
    return f"the loss terms {bad_losses}" if bad_losses else "the total loss"


class AlignedTrainingSAE(TrainingSAE[T_ALIGNED_CONFIG]):
    """Mixin that trains its base architecture under the constraint a_i = 1."""

    def __init__(self, cfg: T_ALIGNED_CONFIG, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        self._in_aligned_step = False
        self._synced_key: tuple[Any, ...] | None = None
        self.W_dec.requires_grad_(cfg.alignment != "tied")
        # What the closed-form gradients of the aligned map need from the last
        # alignment, one number per feature: the squared norm it divided by and,
        # for `projected`, the residual gap it left (0 unless degenerate).
        # Not persistent: rederived from the weights whenever they are aligned.
        cache_F = torch.zeros(
            cfg.d_sae, dtype=self.W_enc.dtype, device=self.W_enc.device
        )
        self.register_buffer("_alignment_sq_norm", cache_F, persistent=False)
        self.register_buffer("_alignment_residual", cache_F.clone(), persistent=False)
        self.align_()
        _LIVE_ALIGNED_SAES.add(self)

    @override
    @torch.no_grad()
    def initialize_weights(self) -> None:
        # SAELens starts from W_enc = W_dec^T at decoder_init_norm (0.1), so
        # a_i = 0.01; an aligned SAE must start at a_i = 1. Adam moves each
        # coordinate by about lr per step, so the scale of the *free* parameters
        # sets how fast they train; each form keeps them as close to SAELens'
        # scale as its constraint allows (docs/method.md, "Initialisation"):
        # - tied: the encoder (the only free matrix) keeps SAELens' init (norm
        #   0.1); the decoder is its tied partner d_i = e_i / ||e_i||² (norm 10).
        # - projected: encoder and decoder are both free and <e_i, d_i> = 1 forces
        #   ||e_i|| ||d_i|| >= 1, so both start at unit norm, e_i = d_i (balanced).
        #   From the tied pair its norm-10 decoder never left its random start in
        #   a run; from SAELens' 0.1 decoder the encoder is at norm 10
        #   (`python -m benchmarks.experiments.projected_init`).
        super().initialize_weights()
        if self.cfg.alignment == "projected":
            unit_FD = self.W_dec / self.W_dec.norm(dim=1, keepdim=True).clamp_min(
                DEGENERATE_SQ_NORM
            )
            self.W_dec.data.copy_(unit_FD)
            scale_F = self.magnitude_scale()
            self.W_enc.data.copy_(unit_FD.T if scale_F is None else unit_FD.T / scale_F)
        else:
            self.W_dec.data.copy_(tied_decoder(self.effective_encoder()))

    def magnitude_scale(self) -> torch.Tensor | None:
        """Per-feature factor between W_enc and the encoder that produces feature
        values (Gated's exp(r_mag)); None when W_enc is that encoder."""
        return None

    def effective_encoder(self) -> torch.Tensor:
        """The encoder that produces feature values, from the stored parameters:
        W_enc, times `magnitude_scale()` where the base has one. [d_in, d_sae]"""
        return effective_encoder(self.W_enc, self.magnitude_scale())

    def aligned_weights(self) -> dict[str, torch.Tensor]:
        """The derived matrix of this step, differentiable w.r.t. the free ones.

        The stored weights are already aligned (`align_if_stale`), so its value is
        the stored parameter itself: no pass and no copy. Only its gradient is
        computed, in closed form (`alignment.stored_tied_decoder`,
        `alignment.stored_projected_encoder`)."""
        scale_F = self.magnitude_scale()
        if self.cfg.alignment == "tied":
            W_dec = stored_tied_decoder(
                self.W_enc, self.W_dec, self._alignment_sq_norm, scale_F
            )
            return {"W_dec": W_dec}
        W_enc = stored_projected_encoder(
            self.W_enc,
            self.W_dec,
            self._alignment_sq_norm,
            self._alignment_residual,
            None if scale_F is None else self._projection_target(scale_F),
        )
        return {"W_enc": W_enc}

    @staticmethod
    def _projection_target(scale_F: torch.Tensor | None) -> torch.Tensor | float:
        # <W_enc * s, d> = 1  <=>  <W_enc, d> = 1 / s: project the stored encoder.
        return 1.0 if scale_F is None else 1.0 / scale_F

    def _use_feature_major_layout(self) -> None:
        # W_enc is stored feature-major (`alignment.feature_major`) so every
        # per-feature pass of the alignment math is unit-stride. `.data` keeps
        # the Parameter object, which the optimizer holds.
        W_enc = self._parameters["W_enc"]
        if (
            W_enc is not None
            and W_enc.device.type != "meta"
            and not torch.compiler.is_compiling()
            and not is_feature_major(W_enc)
        ):
            W_enc.data = feature_major(W_enc.data)

    @torch.no_grad()
    def align_(self) -> None:
        """Write the aligned weights into the stored parameters (in place)."""
        self._use_feature_major_layout()
        scale_F = self.magnitude_scale()
        if self.cfg.alignment == "tied":
            sq_norm_F = write_tied_decoder_(self.W_dec, self.W_enc, scale_F)
            self._set_alignment_cache(sq_norm_F)
        else:
            target_F = self._projection_target(scale_F)
            sq_norm_F, residual_F = project_encoder_(self.W_enc, self.W_dec, target_F)
            self._set_alignment_cache(sq_norm_F, residual_F)
        self._synced_key = self._parameter_versions()

    def _set_alignment_cache(
        self, sq_norm_F: torch.Tensor, residual_F: torch.Tensor | None = None
    ) -> None:
        cache_F = self._alignment_sq_norm
        if cache_F.device != sq_norm_F.device or cache_F.dtype != sq_norm_F.dtype:
            # Weights loaded with assign=True into an SAE built on the meta device.
            self._alignment_sq_norm = torch.empty_like(sq_norm_F)
            self._alignment_residual = torch.zeros_like(sq_norm_F)
        self._alignment_sq_norm.copy_(sq_norm_F)
        if residual_F is not None:
            self._alignment_residual.copy_(residual_F)

    @torch.no_grad()
    def _mark_aligned(self) -> None:
        """Take the stored weights as aligned, as they are (a fold, or a load of
        saved aligned weights), and rederive what the gradients need from them."""
        self._use_feature_major_layout()
        scale_F = self.magnitude_scale()
        if self.cfg.alignment == "tied":
            self._set_alignment_cache(effective_sq_norms(self.W_enc, scale_F))
        else:
            sq_norm_F = self.W_dec.pow(2).sum(dim=-1)
            gap_F = self._projection_target(scale_F) - alignment_scores(
                self.W_enc, self.W_dec
            )
            self._set_alignment_cache(sq_norm_F, projection_residual(gap_F, sq_norm_F))
        self._synced_key = self._parameter_versions()

    def alignment_scores(self) -> torch.Tensor:
        """a_i of the weights the forward pass uses. [d_sae]"""
        self.align_if_stale()
        return alignment_scores(self.effective_encoder().detach(), self.W_dec.detach())

    def _parameter_versions(self) -> tuple[Any, ...]:
        return tuple(
            (name, id(p), p._version)
            for name, p in self._parameters.items()
            if p is not None
        )

    def align_if_stale(self) -> None:
        """Re-align the stored weights if anything changed them since the last
        alignment (an update made outside an optimizer step, a load, a fold)."""
        if not self._in_aligned_step and self._synced_key != self._parameter_versions():
            self.align_()

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        # The optimizer hook has normally aligned the stored weights already; a
        # compiled step cannot read version counters, so it always re-aligns.
        if torch.compiler.is_compiling():
            self.align_()
        else:
            self.align_if_stale()
        self._in_aligned_step = True
        try:
            with _parameters_replaced(self, self.aligned_weights()):
                output = super().training_forward_pass(step_input)
        finally:
            self._in_aligned_step = False
        # One scalar check per step (TopK's aux loss already syncs every step); a
        # NaN caught here never reaches the optimizer or a checkpoint.
        if not torch.isfinite(output.loss.detach()):
            raise NonFiniteTrainingError(
                f"Non-finite loss at training step {step_input.n_training_steps}: "
                f"{_non_finite_report(step_input, output)}. Training stopped before the "
                "optimizer step; the weights and saved checkpoints are the last good ones."
            )
        if step_input.is_logging_step:
            summary = summarize_alignment(self.alignment_scores())
            output.metrics.update(
                {
                    "alignment/mean": summary.mean,
                    "alignment/max_abs_deviation_from_one": summary.max_abs_deviation_from_one,
                    "alignment/frac_below_half": summary.frac_below_half,
                }
            )
        return output

    @override
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.align_if_stale()
        return super().encode(x)

    @override
    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        self.align_if_stale()
        return super().decode(feature_acts)

    @override
    def process_state_dict_for_saving(self, state_dict: dict[str, Any]) -> None:
        self.align_if_stale()
        for name in ("W_enc", "W_dec"):
            # Contiguous: safetensors stores no strides (W_enc is feature-major).
            state_dict[name] = getattr(self, name).detach().contiguous()
        super().process_state_dict_for_saving(state_dict)

    @override
    def process_state_dict_for_loading(self, state_dict: dict[str, Any]) -> None:
        super().process_state_dict_for_loading(state_dict)
        W_dec = state_dict.get("W_dec")
        if W_dec is not None and W_dec.device.type != "meta":
            zero_rows = (W_dec.norm(dim=-1) == 0).nonzero().flatten().tolist()
            if zero_rows:
                raise ValueError(
                    f"W_dec has {len(zero_rows)} zero rows (features "
                    f"{zero_rows[:10]}{'...' if len(zero_rows) > 10 else ''}): their "
                    "alignment score is undefined, so this SAE cannot be loaded as "
                    f"{self.cfg.architecture()!r}. Re-initialise those features or "
                    "load the file as its base architecture."
                )

    @override
    def load_state_dict(
        self, state_dict: Any, strict: bool = True, assign: bool = False
    ) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.W_dec.requires_grad_(self.cfg.alignment != "tied")
        # Saved aligned weights are kept as they are, so a folded export or a
        # checkpoint reloads bit-exact; anything else is aligned now.
        deviation = (self.alignment_scores_of_stored() - 1).abs()
        if deviation.numel() and float(deviation.max()) > LOAD_ALIGNMENT_TOLERANCE:
            self.align_()
        else:
            self._mark_aligned()
        return result

    @torch.no_grad()
    def alignment_scores_of_stored(self) -> torch.Tensor:
        """a_i of the stored parameters as they are, without re-aligning them."""
        if self.W_enc.device.type == "meta":
            return torch.empty(0)
        return alignment_scores(self.effective_encoder().float(), self.W_dec.float())

    # Folds rescale stored weights in place; aligning first makes them act on the
    # effective weights, and marking the result as synced keeps a fold that moves
    # off the tied manifold (whitening) from being undone by the next read.
    @override
    def fold_W_dec_norm(self) -> None:
        self.align_if_stale()
        super().fold_W_dec_norm()
        self._mark_aligned()

    @override
    def fold_activation_norm_scaling_factor(self, scaling_factor: float) -> None:
        self.align_if_stale()
        super().fold_activation_norm_scaling_factor(scaling_factor)
        self._mark_aligned()

    @override
    def fold_activation_whitening(
        self,
        mean: torch.Tensor,
        whitening_matrix: torch.Tensor,
        unwhitening_matrix: torch.Tensor,
    ) -> None:
        self.align_if_stale()
        super().fold_activation_whitening(mean, whitening_matrix, unwhitening_matrix)
        self._mark_aligned()

    @override
    @torch.no_grad()
    def log_histograms(self) -> dict[str, NDArray[Any]]:
        self.align_if_stale()
        return {
            **super().log_histograms(),
            "weights/alignment_scores": self.alignment_scores().float().cpu().numpy(),
        }
