"""When the sparse TopK step runs (`sparse_topk.py`), and when it hands the step
to SAELens' dense one: its config field, the default by device, and the
fallbacks, each announced once.

The sparse step never forms the dense ``[batch, d_sae]`` activations, so anything
that may read or change them in the middle of a step makes it inexact: any
forward or backward hook, TransformerLens' (`HookPoint.add_hook` registers torch
hooks) or torch's, on the SAE or any of its modules, or registered for every
module (`torch.nn.modules.module.register_module_forward_hook` and its kin).
Input that is not one row per token takes SAELens' path too. Each of these falls
back to SAELens' dense step, which is exact, and warns once per SAE and reason
(`SparseStepFallbackWarning`); Python's default warning filter then also shows a
given message once per process.
"""

import warnings
from dataclasses import dataclass

import torch
from torch.nn.modules import module as torch_module
from typing_extensions import override

from saelens_aligned.sae_config import CheckedTrainingSAEConfig, ConfigError


def sparse_step_by_default(device_type: str) -> bool:
    """Whether `sparse_training=None` trains with the sparse step on a device of
    this type: on the CPU, where it is measured (docs/performance.md); elsewhere
    SAELens' dense step until a measurement there is recorded."""
    return device_type == "cpu"


@dataclass(kw_only=True)
class SparseTrainingSAEConfig(CheckedTrainingSAEConfig):
    """
    Config mixin for TopK-family SAEs trained with the sparse step.

    Args:
        sparse_training (bool | None): Train with the sparse TopK step: the
            encoder GEMM is dense, everything after the TopK choice (decode, AuxK,
            Matryoshka levels, every gradient) runs over the active latents only.
            Same loss and gradients as SAELens' dense step up to float summation
            order, several times faster and with far less memory at large d_sae
            on the CPU. None (default): the sparse step on the CPU and SAELens'
            dense step on CUDA and any other device, where the sparse step is
            tested (deterministic, no host sync on the TopK path) but not yet
            timed; True trains with the sparse step on any device, False with
            SAELens' dense step. Unrelated to SAELens' `use_sparse_activations`,
            which only changes the decode product and which this step makes
            unnecessary.
    """

    sparse_training: bool | None = None

    @override
    def __post_init__(self) -> None:
        if self.sparse_training is not None and not isinstance(
            self.sparse_training, bool
        ):
            raise ConfigError(
                "sparse_training",
                self.sparse_training,
                "true, false or null",
                "Leave it unset for the sparse step on the CPU and SAELens' dense "
                "step elsewhere, or set sparse_training=False for SAELens' dense "
                "step everywhere.",
            )
        super().__post_init__()

    def uses_sparse_step(self, device_type: str | None = None) -> bool:
        """Whether SAEs of this config train with the sparse step on a device of
        `device_type` (default: the config's own device)."""
        if self.sparse_training is not None:
            return self.sparse_training
        return sparse_step_by_default(device_type or torch.device(self.device).type)


class SparseStepFallbackWarning(UserWarning):
    """The sparse TopK step fell back to SAELens' dense step (same results,
    several times slower per step)."""


_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_hooks",
    "_backward_pre_hooks",
    "_backward_hooks",
)
_GLOBAL_HOOK_DICTS = tuple(f"_global{name}" for name in _HOOK_DICTS)


def hooked_modules(sae: torch.nn.Module) -> list[str]:
    """Names of the SAE's modules ("" for the SAE itself) with a forward or
    backward hook; TransformerLens' `add_hook` registers torch hooks too."""
    return [
        name
        for name, module in sae.named_modules()
        if any(getattr(module, hooks, None) for hooks in _HOOK_DICTS)
    ]


def global_module_hooks() -> bool:
    """Whether a forward or backward hook is registered for every module
    (`torch.nn.modules.module.register_module_forward_hook` and the like)."""
    return any(getattr(torch_module, hooks, None) for hooks in _GLOBAL_HOOK_DICTS)


def fallback_reason(
    sae: torch.nn.Module, sae_in: torch.Tensor
) -> tuple[str, str] | None:
    """Why a step of `sae` on `sae_in` must be SAELens' dense step, as (reason
    key, what to tell the user); None when the sparse step is exact."""
    if sae_in.ndim != 2:
        return "input", "input that is not one row per token (ndim != 2)"
    hooked = hooked_modules(sae)
    if hooked:
        where = ", ".join(name or "the SAE itself" for name in hooked)
        return "hooks", f"forward or backward hooks on {where}"
    if global_module_hooks():
        return "global_hooks", "forward or backward hooks registered for all modules"
    return None


def warn_fallback_once(sae: torch.nn.Module, reason: tuple[str, str]) -> None:
    """Warn that `sae` falls back, once per SAE and reason key."""
    key, what = reason
    warned: set[str] = sae.__dict__.setdefault("_sparse_fallbacks_warned", set())
    if key in warned:
        return
    warned.add(key)
    warnings.warn(
        f"{type(sae).__name__}: the sparse TopK step runs SAELens' dense step "
        f"instead (exact, several times slower per step) because of {what}. "
        "Warned once per SAE and reason.",
        SparseStepFallbackWarning,
        stacklevel=4,
    )
