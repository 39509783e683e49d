"""p-annealing for L1-penalised SAEs (Karvonen et al. 2024, arXiv 2408.00113).

The sparsity penalty is the Lp^p (or Lp) norm of the decoder-norm-weighted feature
activations. p stays at `p_start` until `anneal_start`, then takes `n_sparsity_updates`
values linearly spaced from `p_start` (excluded) to `p_end` (included), on steps
spaced evenly from `anneal_start` to the end of training. At each change of p the
sparsity coefficient is multiplied by mean(penalty at old p) / mean(penalty at new p)
over the last `sparsity_queue_length` steps, so the penalty stays continuous.

Layout:
- `PAnnealSchedule` and `sparsity_penalty` are pure functions of their inputs.
- `PAnnealTrainingSAEConfig` adds the documented fields to any L1 config.
- `PAnnealTrainingSAE` is a mixin put before an L1-trained SAELens class
  (`StandardTrainingSAE`); it replaces the `l1` penalty in `calculate_aux_loss`.

Differences from dictionary_learning's `PAnnealTrainer`, on purpose: there the first
"update" re-sets p to p_start and the last one falls on step `steps`, which never
runs, so p_end is never reached and `n_sparsity_updates=1` anneals nothing. Here
every one of the `n_sparsity_updates` changes moves p, and the last one sets p_end.
"""

import bisect
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
from sae_lens.saes.sae import (
    TrainingSAE,
    TrainStepInput,
    TrainStepOutput,
)
from typing_extensions import override

from saelens_aligned.sae_config import CheckedTrainingSAEConfig

SparsityFunction = Literal["Lp^p", "Lp"]
SPARSITY_FUNCTIONS: tuple[SparsityFunction, ...] = ("Lp^p", "Lp")

# Trainer state kept as buffers, so SAELens' own checkpoints carry it and a
# resumed run continues exactly. Inference exports drop them.
P_ANNEAL_BUFFERS = (
    "p_anneal_step",
    "p_anneal_p",
    "p_anneal_coefficient_scale",
    "p_anneal_penalty_history",
)


@dataclass(frozen=True)
class PAnnealSchedule:
    """When p changes and to what. Steps count from 0; `total_steps` is the run length.

    The k-th change (k = 1..n_updates) happens at the start of step
    anneal_start + floor((k-1) * (total_steps - anneal_start) / n_updates) and sets
    p = p_start + k/n_updates * (p_end - p_start).
    """

    p_start: float
    p_end: float
    anneal_start: int
    n_updates: int
    total_steps: int

    @property
    def update_steps(self) -> list[int]:
        span = self.total_steps - self.anneal_start
        return [
            self.anneal_start + (k * span) // self.n_updates
            for k in range(self.n_updates)
        ]

    def p_after(self, n_done: int) -> float:
        """p once `n_done` changes have happened (p_start for 0, p_end for all)."""
        t = n_done / self.n_updates
        return (1 - t) * self.p_start + t * self.p_end

    def updates_done_at(self, step: int) -> int:
        """Number of changes that have happened by the start of `step` (inclusive)."""
        return bisect.bisect_right(self.update_steps, step)

    def p_at(self, step: int) -> float:
        """The p used by training step `step`."""
        return self.p_after(self.updates_done_at(step))


def sparsity_penalty(
    weighted_acts: torch.Tensor, p: float, sparsity_function: SparsityFunction
) -> torch.Tensor:
    """Per-sample Lp^p (sum_i |w_i|^p) or Lp ((sum_i |w_i|^p)^(1/p)). [...]

    Zero activations contribute 0 with gradient 0: |w|^p has an infinite slope at 0
    for p < 1, and inf * 0 would put NaN into the decoder-norm gradient.
    """
    magnitude = weighted_acts.abs()
    active = magnitude > 0
    powered = torch.where(active, torch.where(active, magnitude, 1.0).pow(p), 0.0)
    lpp = powered.sum(dim=-1)
    if sparsity_function == "Lp^p":
        return lpp
    nonzero = lpp > 0
    return torch.where(nonzero, torch.where(nonzero, lpp, 1.0).pow(1 / p), 0.0)


@dataclass(kw_only=True)
class PAnnealTrainingSAEConfig(CheckedTrainingSAEConfig):
    """
    Config mixin for p-annealing; put it before an L1 config (e.g.
    StandardTrainingSAEConfig). Defaults follow the SAEBench p-anneal sweep.
    `l1_coefficient` is the initial coefficient (at p = p_start) and
    `l1_warm_up_steps` still warms it up; `lp_norm` is replaced by the fields below.

    Args:
        p_anneal_total_steps (int): Required. Training steps of the whole run
            (SAELens: total_training_tokens // train_batch_size_tokens). The SAE
            config cannot see the runner's budget, and the schedule is spread over it.
        anneal_start (int): Step at which p first changes; p = p_start before it.
            Default 10_000 (SAEBench); must lie inside the run.
        p_start (float): p until anneal_start. Default 1.0 (plain L1).
        p_end (float): p after the last change. 0 < p_end <= p_start. Default 0.2.
        n_sparsity_updates (int): Number of changes of p, on steps spaced evenly
            from anneal_start to the end of the run, through values linearly spaced
            from p_start to p_end. At least 1 and at most
            p_anneal_total_steps - anneal_start. Default 10.
        sparsity_function (str): "Lp^p" (sum of |w_i|^p, default) or "Lp" (its
            1/p-th power), over the decoder-norm-weighted activations w.
        sparsity_queue_length (int): Number of recent steps whose mean penalty, at
            the old and the new p, sets the coefficient rescale at each change.
            Default 10.
    """

    p_anneal_total_steps: int | None = None
    anneal_start: int = 10_000
    p_start: float = 1.0
    p_end: float = 0.2
    n_sparsity_updates: int = 10
    sparsity_function: SparsityFunction = "Lp^p"
    sparsity_queue_length: int = 10

    @override
    def __post_init__(self) -> None:
        _validate_p_anneal_config(self)
        super().__post_init__()

    def p_anneal_schedule(self) -> PAnnealSchedule:
        assert self.p_anneal_total_steps is not None
        return PAnnealSchedule(
            p_start=self.p_start,
            p_end=self.p_end,
            anneal_start=self.anneal_start,
            n_updates=self.n_sparsity_updates,
            total_steps=self.p_anneal_total_steps,
        )


def _validate_p_anneal_config(cfg: PAnnealTrainingSAEConfig) -> None:
    total = cfg.p_anneal_total_steps
    if not isinstance(total, int) or total <= 0:
        raise ValueError(
            f"p_anneal_total_steps must be the run's number of training steps (a "
            f"positive int), got {total!r}. In SAELens that is "
            "total_training_tokens // train_batch_size_tokens."
        )
    if not 0 <= cfg.anneal_start < total:
        raise ValueError(
            f"anneal_start must lie inside the run, 0 <= anneal_start < "
            f"p_anneal_total_steps = {total}, got anneal_start={cfg.anneal_start}."
        )
    if not cfg.p_start > 0:
        raise ValueError(f"p_start must be > 0, got p_start={cfg.p_start}.")
    if not cfg.p_end > 0:
        raise ValueError(
            f"p_end must be > 0 (|w|^0 is not a usable penalty), got p_end={cfg.p_end}."
        )
    if cfg.p_end > cfg.p_start:
        raise ValueError(
            f"p_end must be <= p_start (p anneals downwards), got p_end={cfg.p_end} "
            f"> p_start={cfg.p_start}."
        )
    if not isinstance(cfg.n_sparsity_updates, int) or cfg.n_sparsity_updates < 1:
        raise ValueError(
            f"n_sparsity_updates must be an int >= 1, got {cfg.n_sparsity_updates!r}."
        )
    if cfg.n_sparsity_updates > total - cfg.anneal_start:
        raise ValueError(
            f"n_sparsity_updates={cfg.n_sparsity_updates} changes do not fit in the "
            f"{total - cfg.anneal_start} steps from anneal_start={cfg.anneal_start} to "
            f"p_anneal_total_steps={total}; lower n_sparsity_updates or anneal_start."
        )
    if cfg.sparsity_function not in SPARSITY_FUNCTIONS:
        raise ValueError(
            f"sparsity_function must be one of {list(SPARSITY_FUNCTIONS)}, got "
            f"{cfg.sparsity_function!r}."
        )
    if not isinstance(cfg.sparsity_queue_length, int) or cfg.sparsity_queue_length < 1:
        raise ValueError(
            f"sparsity_queue_length must be an int >= 1, got "
            f"{cfg.sparsity_queue_length!r}."
        )
    lp_norm = getattr(cfg, "lp_norm", 1.0)
    if lp_norm != 1.0:
        raise ValueError(
            f"lp_norm={lp_norm} is not used with p-annealing; set p_start and p_end "
            "(and sparsity_function) instead."
        )


T_P_ANNEAL_CONFIG = TypeVar("T_P_ANNEAL_CONFIG", bound=PAnnealTrainingSAEConfig)


class PAnnealTrainingSAE(TrainingSAE[T_P_ANNEAL_CONFIG]):
    """Mixin: the `l1` penalty of an L1-trained SAELens SAE, p-annealed.

    Seams used in SAELens (no trainer fork):
    - `calculate_aux_loss` is the one hook that sees the feature activations and the
      `l1` coefficient, so the penalty, the history of recent penalties and the
      coefficient rescale at a change of p all happen there. The rescale is kept as
      a factor on top of the trainer's `l1` coefficient, so `l1_warm_up_steps`
      keeps working.
    - The step count is our own buffer, advanced by every `training_forward_pass`,
      rather than `TrainStepInput.n_training_steps`: SAELens saves a mid-run
      checkpoint before incrementing `n_training_steps`, so a resumed run sees that
      step index twice, and a schedule keyed on it would change p one batch late.
    - The state (step, p, coefficient scale, recent penalties) lives in buffers, so
      `save_model` / `load_weights_from_checkpoint` carry it; inference exports drop
      them and load as the base architecture.
    The current p and coefficient go to W&B through `TrainStepOutput.metrics`.
    """

    p_anneal_step: torch.Tensor
    p_anneal_p: torch.Tensor
    p_anneal_coefficient_scale: torch.Tensor
    p_anneal_penalty_history: torch.Tensor

    def __init__(self, cfg: T_P_ANNEAL_CONFIG, use_error_term: bool = False):
        super().__init__(cfg, use_error_term)
        self.p_anneal_schedule = cfg.p_anneal_schedule()
        device = self.W_enc.device
        self.register_buffer(
            "p_anneal_step", torch.zeros((), dtype=torch.long, device=device)
        )
        self.register_buffer(
            "p_anneal_p", torch.tensor(float(cfg.p_start), device=device)
        )
        self.register_buffer(
            "p_anneal_coefficient_scale", torch.ones((), device=device)
        )
        # Column 0: mean penalty at the current p; column 1: at the next p. One row
        # per recent step, written as a ring. [sparsity_queue_length, 2]
        self.register_buffer(
            "p_anneal_penalty_history",
            torch.zeros(cfg.sparsity_queue_length, 2, device=device),
        )
        # Python mirror of p_anneal_step, so choosing this step's p needs no
        # device sync; refreshed whenever a state dict is loaded.
        self._p_anneal_step_int = 0
        self.register_load_state_dict_post_hook(_refresh_p_anneal_step)

    @property
    def current_p(self) -> float:
        """p of the most recent training step (p_start before the first)."""
        return self.p_anneal_schedule.p_at(max(self._p_anneal_step_int - 1, 0))

    @override
    def calculate_aux_loss(
        self,
        step_input: TrainStepInput,
        feature_acts: torch.Tensor,
        hidden_pre: torch.Tensor,
        sae_out: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        schedule = self.p_anneal_schedule
        step = self._p_anneal_step_int
        n_before = schedule.updates_done_at(step - 1) if step > 0 else 0
        n_now = schedule.updates_done_at(step)
        weighted_acts_BF = feature_acts * self.W_dec.norm(dim=-1)

        if n_now != n_before:
            self._rescale_coefficient(
                weighted_acts_BF.detach(),
                history_rows=self._history_rows(step),
                p_old=schedule.p_after(n_before),
                p_new=schedule.p_after(n_now),
            )
            self.p_anneal_p.fill_(schedule.p_after(n_now))

        p = schedule.p_after(n_now)
        penalty_B = sparsity_penalty(weighted_acts_BF, p, self.cfg.sparsity_function)
        if n_now < schedule.n_updates:
            self._record_penalties(
                penalty_B.detach(),
                weighted_acts_BF.detach(),
                p_next=schedule.p_after(n_now + 1),
                step=step,
            )
        coefficient = step_input.coefficients["l1"] * self.p_anneal_coefficient_scale
        return {"lp_loss": (coefficient * penalty_B).mean()}

    def _segment_start(self, step: int) -> int:
        """First step at the current p."""
        steps = self.p_anneal_schedule.update_steps
        i = bisect.bisect_right(steps, step)
        return steps[i - 1] if i > 0 else 0

    def _history_rows(self, step: int) -> int:
        """Rows of the history filled since the last change, before `step`."""
        return min(step - self._segment_start(step - 1), self.cfg.sparsity_queue_length)

    @torch.no_grad()
    def _record_penalties(
        self,
        penalty_B: torch.Tensor,
        weighted_acts_BF: torch.Tensor,
        p_next: float,
        step: int,
    ) -> None:
        row = (step - self._segment_start(step)) % self.cfg.sparsity_queue_length
        next_B = sparsity_penalty(weighted_acts_BF, p_next, self.cfg.sparsity_function)
        self.p_anneal_penalty_history[row, 0] = penalty_B.float().mean()
        self.p_anneal_penalty_history[row, 1] = next_B.float().mean()

    @torch.no_grad()
    def _rescale_coefficient(
        self,
        weighted_acts_BF: torch.Tensor,
        history_rows: int,
        p_old: float,
        p_new: float,
    ) -> None:
        # The recorded rows hold the penalty at p_old and at p_new (the "next p"
        # while they were written); this step's batch is added, so a change at
        # step 0 or right after another change still has one row.
        fn = self.cfg.sparsity_function
        old = sparsity_penalty(weighted_acts_BF, p_old, fn).float().mean()
        new = sparsity_penalty(weighted_acts_BF, p_new, fn).float().mean()
        history = self.p_anneal_penalty_history[:history_rows]
        mean_old = (history[:, 0].sum() + old) / (history_rows + 1)
        mean_new = (history[:, 1].sum() + new) / (history_rows + 1)
        # With every feature silent both means are 0; keep the coefficient then.
        ratio = torch.where(mean_new > 0, mean_old / mean_new.clamp_min(1e-30), 1.0)
        self.p_anneal_coefficient_scale.mul_(ratio)
        self.p_anneal_penalty_history.zero_()

    @override
    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        p = self.p_anneal_schedule.p_at(self._p_anneal_step_int)
        output = super().training_forward_pass(step_input)
        self._p_anneal_step_int += 1
        self.p_anneal_step.add_(1)
        output.metrics["p_anneal/p"] = p
        output.metrics["p_anneal/coefficient"] = (
            step_input.coefficients["l1"] * self.p_anneal_coefficient_scale.detach()
        )
        return output

    @override
    def process_state_dict_for_saving_inference(
        self, state_dict: dict[str, Any]
    ) -> None:
        super().process_state_dict_for_saving_inference(state_dict)
        for name in P_ANNEAL_BUFFERS:
            state_dict.pop(name, None)


def _refresh_p_anneal_step(module: torch.nn.Module, _incompatible_keys: Any) -> None:
    assert isinstance(module, PAnnealTrainingSAE)
    step_buffer = module.p_anneal_step
    if step_buffer.device.type == "meta":
        return
    module._p_anneal_step_int = int(step_buffer)
    expected = module.current_p
    stored = float(module.p_anneal_p)
    if abs(stored - expected) > 1e-2 * expected:
        raise ValueError(
            f"Loaded p-anneal state has p={stored:.4g} at step "
            f"{module._p_anneal_step_int}, but this config's schedule gives "
            f"p={expected:.4g} there. Resume with the config the checkpoint was "
            "trained with (p_start, p_end, anneal_start, n_sparsity_updates, "
            "p_anneal_total_steps)."
        )
