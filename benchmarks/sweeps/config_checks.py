"""The checks of a sweep config, before any model loads: each field's type as read
from YAML (`check_fields`), the values and their combinations
(`validate_sweep_config`), and the device when a sweep starts (`check_device`).
Every error names the field and the fix."""

import difflib
import math
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from benchmarks.sweeps.config import (
    ALIGNMENT_FORMS,
    B_DEC_INITS,
    EVAL_SPLITS,
    SWEEP_KINDS,
    SweepConfig,
    SweepConfigError,
)


def check_fields(cls: type, data: dict[str, Any], where: str) -> None:
    """Every key of `data` a field of dataclass `cls`, each value of the field's
    annotated type (a YAML typo fails here, naming the field, not deep inside)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SweepConfigError(
            f"{where}: unknown field(s) {unknown}.{hint} Known fields: {sorted(known)}."
        )
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _has_type(value, hints[name]):
            raise SweepConfigError(
                f"{where}: {name} is {value!r}; expected {_type_name(hints[name])}."
                + _yaml_number_hint(value)
            )


def _yaml_number_hint(value: Any) -> str:
    """YAML 1.1 (PyYAML) reads `1e-4` as text; say how to write the number."""
    try:
        float(value)
    except (TypeError, ValueError):
        return ""
    if not isinstance(value, str):
        return ""
    return f" YAML reads {value} as text: write it with a dot, e.g. 1.0e-4."


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a value read from YAML fits annotation `hint` (a nested config
    class is a mapping here; an int is a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is types.UnionType:
        return any(_has_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_has_type(v, args[0]) for v in value)
    if origin is dict or is_dataclass(hint):
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return not isinstance(hint, type) or isinstance(value, hint)


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:
        return " or ".join(_type_name(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is list:
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(args[0], _type_name(args[0]))}"
    if origin is dict or is_dataclass(hint):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def check_device(device: str) -> None:
    """A CUDA device only where torch sees a GPU (checked when a sweep starts,
    not when a preset loads: the GPU presets load anywhere)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SweepConfigError(
                f"device {device!r}: no GPU is visible; pass --device cpu or run "
                "on a machine with one."
            )


def validate_sweep_config(config: SweepConfig, source: str = "config") -> None:
    """Cheap checks, before any model loads; each error names the field and fix."""
    from sae_lens.registry import SAE_TRAINING_CLASS_REGISTRY

    import saelens_aligned  # noqa: F401  (registers the aligned architectures)
    from saelens_aligned.architectures import aligned_architectures, base_architecture

    def fail(field_name: str, message: str) -> None:
        raise SweepConfigError(f"{source}: {field_name} {message}")

    if config.kind not in SWEEP_KINDS:
        fail("kind", f"is {config.kind!r}; choose one of {list(SWEEP_KINDS)}.")
    if config.kind == "synthetic" and not config.synthetic_model:
        fail("synthetic_model", "is required when kind is 'synthetic'.")
    if not config.architectures:
        fail("architectures", "is empty; list at least one architecture.")
    if not config.seeds:
        fail("seeds", "is empty; list at least one seed (2 or more for stability).")
    if len(set(config.seeds)) != len(config.seeds):
        fail("seeds", f"{config.seeds} repeats a seed.")
    if not config.d_sae or any(int(d) <= 0 for d in config.d_sae):
        fail("d_sae", f"{config.d_sae} must be a list of positive sizes.")
    if not (isinstance(config.lr, int | float) and config.lr > 0):
        fail("lr", f"is {config.lr!r}; it must be a positive number.")
    if config.train_batch_size_tokens <= 0:
        fail("train_batch_size_tokens", "must be positive.")
    if config.training_tokens < config.train_batch_size_tokens:
        fail(
            "training_tokens",
            f"({config.training_tokens}) is smaller than one batch "
            f"(train_batch_size_tokens = {config.train_batch_size_tokens}); raise it.",
        )
    if not 0 < config.stability_threshold < 1:
        fail("stability_threshold", "must lie strictly between 0 and 1.")
    if not isinstance(config.sparse_stock_step, bool):
        fail(
            "sparse_stock_step", f"is {config.sparse_stock_step!r}; use true or false."
        )
    if config.lr_grid:
        grid = sorted(config.lr_grid)
        if len(grid) < 3 or grid[0] <= 0 or grid[-1] / grid[0] < 10:
            fail(
                "lr_grid",
                f"is {config.lr_grid}; give at least 3 positive learning rates "
                "spanning at least 10x (e.g. [1e-4, 3e-4, 1e-3]), or none.",
            )
    if any(not (isinstance(t, int | float) and t > 0) for t in config.target_l0):
        fail("target_l0", f"is {config.target_l0}; give positive L0 values, or none.")
    if not 0 < config.l0_tolerance <= 0.5:
        fail(
            "l0_tolerance",
            f"is {config.l0_tolerance}; give a fraction in (0, 0.5] (0.1: 10%).",
        )
    if config.calibration_max_trials < 2:
        fail("calibration_max_trials", "must be at least 2.")
    if config.bracket_factor is not None and not (
        config.target_l0 and config.bracket_factor > 1
    ):
        fail(
            "bracket_factor",
            f"is {config.bracket_factor}; give a factor above 1 (1.25: 25% past "
            "the end targets) with `target_l0` set, or leave it out.",
        )
    if config.lr_split not in EVAL_SPLITS:
        fail("lr_split", f"is {config.lr_split!r}; choose one of {list(EVAL_SPLITS)}.")
    if config.eval.split not in EVAL_SPLITS:
        fail(
            "eval.split",
            f"is {config.eval.split!r}; choose one of {list(EVAL_SPLITS)}.",
        )
    if not 0 < config.lr_floor < config.lr_ceiling:
        fail(
            "lr_floor",
            f"({config.lr_floor}) must be positive and below lr_ceiling "
            f"({config.lr_ceiling}).",
        )
    if config.lr_grid and not (
        config.lr_floor
        <= min(config.lr_grid)
        <= max(config.lr_grid)
        <= config.lr_ceiling
    ):
        fail(
            "lr_grid",
            f"{config.lr_grid} reaches outside [lr_floor, lr_ceiling] = "
            f"[{config.lr_floor}, {config.lr_ceiling}]; widen the bounds.",
        )
    from benchmarks.records.layout import FLAT_METRICS

    if config.lr_metric not in FLAT_METRICS:
        fail("lr_metric", f"{config.lr_metric!r} is not one of {sorted(FLAT_METRICS)}.")
    every = config.checkpoint_every_steps
    if config.eval_at_steps and not every:
        fail(
            "eval_at_steps", "needs checkpoint_every_steps (a checkpoint to evaluate)."
        )
    for step in config.eval_at_steps:
        if every and (step % every or not 0 < step < config.training_steps):
            fail(
                "eval_at_steps",
                f"holds {step}: each step must be a multiple of checkpoint_every_steps "
                f"({every}) inside the run (0, {config.training_steps}).",
            )
    if every and config.training_steps % every:
        fail(
            "checkpoint_every_steps",
            f"({every}) must divide the run's {config.training_steps} steps.",
        )
    if not 0 <= config.lr_decay_steps <= config.training_steps:
        fail("lr_decay_steps", f"must lie in [0, {config.training_steps}] steps.")
    if config.eval.probing_size not in ("cpu", "tiny"):
        fail("eval.probing_size", "must be 'cpu' or 'tiny'.")
    if config.eval.dead_window_tokens < 0:
        fail("eval.dead_window_tokens", "must be >= 0 (0 turns it off).")
    aligned = set(aligned_architectures())
    bases = {base_architecture(SAE_TRAINING_CLASS_REGISTRY[a][1]) for a in aligned}
    for i, arch in enumerate(config.architectures):
        where = f"architectures[{i}]"
        if arch.architecture not in SAE_TRAINING_CLASS_REGISTRY:
            fail(
                f"{where}.architecture",
                f"{arch.architecture!r} is not a registered SAELens architecture. "
                f"Valid: {sorted(SAE_TRAINING_CLASS_REGISTRY)}.",
            )
        config_class = SAE_TRAINING_CLASS_REGISTRY[arch.architecture][1]
        config_fields = {f.name for f in fields(config_class)}
        if arch.sparsity_param not in config_fields:
            fail(
                f"{where}.sparsity_param",
                f"{arch.sparsity_param!r} is not a field of {arch.architecture}'s "
                f"config; use k (TopK family), l1_coefficient or l0_coefficient.",
            )
        for name in arch.sae_kwargs:
            if name not in config_fields:
                fail(f"{where}.sae_kwargs", f"{name!r} is not a config field.")
        if not arch.sparsity_values:
            fail(f"{where}.sparsity_values", "is empty.")
        for value in arch.sparsity_values:
            bad = not isinstance(value, int | float) or math.isnan(value) or value <= 0
            if arch.sparsity_param == "k":
                bad = bad or value != int(value) or value > min(config.d_sae)
            if bad:
                fail(
                    f"{where}.sparsity_values",
                    f"holds {value!r}; {arch.sparsity_param} must be positive"
                    + (
                        " and an integer <= d_sae."
                        if arch.sparsity_param == "k"
                        else "."
                    ),
                )
        if arch.lr is not None and not (
            isinstance(arch.lr, int | float) and arch.lr > 0
        ):
            fail(f"{where}.lr", f"is {arch.lr!r}; it must be a positive number.")
        if arch.init_from is not None:
            if arch.architecture not in bases:
                fail(
                    f"{where}.init_from",
                    f"is set but {arch.architecture!r} has no aligned variant to take "
                    f"its initialisation from; init controls exist for {sorted(bases)}.",
                )
            if arch.init_from not in ALIGNMENT_FORMS:
                fail(
                    f"{where}.init_from",
                    f"is {arch.init_from!r}; choose from {list(ALIGNMENT_FORMS)}.",
                )
        if arch.b_dec_init is not None and arch.b_dec_init not in B_DEC_INITS:
            fail(
                f"{where}.b_dec_init",
                f"is {arch.b_dec_init!r}; choose from {list(B_DEC_INITS)} or leave "
                "it unset for the architecture's own start.",
            )
        if arch.alignments is not None:
            if arch.architecture not in aligned:
                fail(
                    f"{where}.alignments",
                    f"is set but {arch.architecture!r} is not aligned; remove it.",
                )
            for form in arch.alignments:
                if form not in ALIGNMENT_FORMS:
                    fail(
                        f"{where}.alignments",
                        f"holds {form!r}; choose from {list(ALIGNMENT_FORMS)}.",
                    )
