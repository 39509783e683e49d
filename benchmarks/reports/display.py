"""Display names: what a reader sees in place of a metric key or an arm label.

One mapping for figures and tables, so a metric or arm reads the same in every
place it appears:

    metric_name("ce_loss_score")       -> "CE-loss score"
    metric_axis("ce_loss_score")       -> "CE-loss score (SAEBench, 1 = no loss)"
    arm_name("aligned_topk[tied]")     -> "aligned TopK (tied)"
    arm_name("topk[init=projected]")   -> "TopK from balanced init (fair control)"
    arm_name("topk[init=tied]")        -> "TopK from tied init (diagnostic)"

Arm labels are `runs.arm_labels`' strings: `architecture`, `architecture[form]`
or `architecture[init=form,key=value,...]`. Unknown keys fall back to the key
itself, so a new metric or architecture still renders, only less nicely.
"""

from dataclasses import dataclass

from benchmarks.analysis.pareto import STABILITY, STABILITY_ALL, STABILITY_ENC_DEC

METRIC_NAMES: dict[str, str] = {
    "ce_loss_score": "CE-loss score",
    "kl_div_score": "KL-divergence score",
    "explained_variance": "explained variance (about the mean)",
    "explained_variance_legacy": "explained variance (SAEBench legacy, per token)",
    "dead_fraction": "dead fraction",
    "dead_fraction_long": "dead fraction (long window)",
    STABILITY: "shared latents across seeds (decoder, alive)",
    STABILITY_ALL: "shared latents (decoder, all latents)",
    STABILITY_ENC_DEC: "shared latents (encoder+decoder, all latents)",
    "mcc": "MCC (ground truth)",
    "f1": "F1 (ground truth)",
    "alignment_mean": "mean alignment score",
    "absorption_fraction": "absorption fraction (SAEBench)",
    "absorption_full": "full-absorption score (SAEBench)",
    "sparse_probing_top1": "sparse probing top-1 accuracy (SAEBench, local sets)",
    "sae_probes_top1": "sae-probes top-1 accuracy (SAEBench)",
    # Marked wherever it is shown (rules.FAILS_RELIABILITY, in short).
    "tpp_total": "TPP, 20 latents (fails Chanin 2026's tests)",
    "l0": "L0",
}
"""Metric key -> its name in titles, legends and table headers."""

METRIC_AXES: dict[str, str] = {
    "ce_loss_score": "CE-loss score (SAEBench, 1 = no loss)",
    "kl_div_score": "KL-div score (SAEBench, 1 = no change)",
    "explained_variance": "explained variance about mean (1 = exact)",
    "explained_variance_legacy": "SAEBench legacy expl. variance (per token)",
    "dead_fraction": "dead latents (fraction of d_sae)",
    "dead_fraction_long": "dead latents, long window (fraction)",
    STABILITY: "shared across seeds (fraction alive)",
    STABILITY_ALL: "shared across seeds (fraction of all)",
    STABILITY_ENC_DEC: "shared, enc+dec (fraction of all)",
    "mcc": "MCC with true features (1 = exact)",
    "f1": "F1 with true features (1 = exact)",
    "alignment_mean": r"mean alignment $\langle e_i, d_i \rangle$ (1 = aligned)",
    "absorption_fraction": "absorption fraction (SAEBench, 0 = none)",
    "absorption_full": "full absorption (SAEBench, 0 = none)",
    "sparse_probing_top1": "top-1 probe accuracy (fraction)",
    "sae_probes_top1": "top-1 probe accuracy (fraction)",
    "tpp_total": "TPP, 20 latents ablated (SAEBench)",
}
"""Metric key -> its axis label: the name with its unit or scale, at most ~42
characters so it fits beside a 3.5-inch axis."""

ARCHITECTURE_NAMES: dict[str, str] = {
    "standard": "standard L1",
    "topk": "TopK",
    "batchtopk": "BatchTopK",
    "gated": "gated",
    "jumprelu": "JumpReLU",
    "panneal": "p-annealing",
}
"""Base architecture -> its name."""

INIT_NAMES: dict[str, str] = {
    "projected": "from balanced init (fair control)",
    "tied": "from tied init (diagnostic)",
}
"""An init control's `init_from` -> how its arm reads: the base started from
`projected`'s weights is every aligned form's fair control (benchmarks.analysis.verdicts
.rules.FAIR_CONTROL_START); the tied-init start collapses, a diagnostic only."""

SETTING_NAMES: dict[tuple[str, str], str] = {
    ("b_dec", "mean"): "b_dec from the activations' mean",
    ("aux_loss_coefficient", "0"): "no AuxK",
    ("aux_loss_coefficient", "0.0"): "no AuxK",
}
"""A label's `key=value` setting -> how it reads, where a name says more than the
field: the decoder bias started at the mean (`ArchitectureSweep.b_dec_init`), TopK
with its auxiliary loss off."""

INPUT_UNITS: dict[str, str] = {"lm": "token", "synthetic": "sample"}
"""Sweep kind -> what one training input is (L0 is per input, budgets in them)."""


@dataclass(frozen=True)
class ArmParts:
    """An arm label taken apart.

    Args:
        base: The base architecture (`aligned_topk` -> `topk`, `aligned` ->
            `standard`).
        aligned: Whether the arm trains an aligned architecture.
        form: `tied` / `projected` for an aligned arm, else None.
        init_from: The aligned form an init control starts from, else None.
        extras: The label's other `key=value` fields, in order.
    """

    base: str
    aligned: bool
    form: str | None
    init_from: str | None
    extras: tuple[tuple[str, str], ...]


def arm_parts(label: str) -> ArmParts:
    architecture, _, inside = label.partition("[")
    form = init_from = None
    extras = []
    for part in filter(None, inside.rstrip("]").split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            form = key
        elif key == "init":
            init_from = value
        else:
            extras.append((key, value))
    aligned = architecture == "aligned" or architecture.startswith("aligned_")
    base = architecture.removeprefix("aligned").removeprefix("_") or "standard"
    return ArmParts(base, aligned, form, init_from, tuple(extras))


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


def metric_axis(key: str) -> str:
    return METRIC_AXES.get(key, metric_name(key))


def architecture_name(base: str) -> str:
    return ARCHITECTURE_NAMES.get(base, base)


def arm_name(label: str) -> str:
    """The arm's name: `aligned TopK (tied)`, `TopK (stock)`, `TopK from
    balanced init (fair control)`; other fields (`lr=0.003`) follow in
    parentheses."""
    parts = arm_parts(label)
    base = architecture_name(parts.base)
    extras = ", ".join(SETTING_NAMES.get((k, v), f"{k} {v}") for k, v in parts.extras)
    if parts.aligned:
        inside = ", ".join(filter(None, (parts.form, extras)))
        return f"aligned {base}" + (f" ({inside})" if inside else "")
    if parts.init_from is not None:
        name = f"{base} " + INIT_NAMES.get(
            parts.init_from, f"from {parts.init_from} init"
        )
        if not extras:
            return name
        return (
            name[:-1] + f", {extras})" if name.endswith(")") else f"{name} ({extras})"
        )
    if ("b_dec", "mean") in parts.extras:
        # No longer SAELens' start: the setting replaces "stock".
        return f"{base} ({extras})"
    return f"{base} (stock" + (f", {extras})" if extras else ")")
