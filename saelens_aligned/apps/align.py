"""Align an existing SAE: convert a stock SAELens SAE into its aligned variant.

Three stages, each evaluated on the same held-out tokens of the live model:

1. **stock**: the SAE as loaded.
2. **converted** (`projected` by default): the stock weights loaded into the
   aligned training architecture `aligned_<base>`. With `alignment="projected"`
   the decoder is kept and each encoder column moves along its own decoder
   direction only, e_i <- e_i + (1 - <e_i, d_i>) d_i / ||d_i||², so a_i = 1 and
   every feature still writes exactly what it wrote before; only its gain on its
   own direction changes. With `alignment="tied"` the decoder is re-derived from
   the encoder instead (d_i = e_i / ||e_i||²), a larger change.
3. **converted + fine-tuned**: that SAE trained further for a token budget with
   SAELens' own runner, the constraint held at every step.

Stage 2 can damage the SAE: a stock feature with a_i = 0.36 fires about three
times harder after projection. The report shows that damage and how much
fine-tuning recovers, rather than hiding it.

Pure pieces (architecture choice, conversion, metric extraction, report
formatting) are separate from I/O (model, data, files) and from plotting.
"""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import SAE

from saelens_aligned.aligned_sae import AlignedTrainingSAE
from saelens_aligned.alignment import AlignmentForm
from saelens_aligned.apps.align_inputs import (
    AlignConfig,
    AlignInputError,
    check_align_config,
    check_hook_width,
    check_training_overrides,
    load_stock_sae,
)
from saelens_aligned.apps.plotting import plot_alignment_histograms
from saelens_aligned.architectures import aligned_architectures, aligned_variant
from saelens_aligned.diagnostics import sae_alignment_scores
from saelens_aligned.io.files import atomic_dir, write_json_atomic, write_text_atomic
from saelens_aligned.io.pretrained import load_sae
from saelens_aligned.pipeline.evaluation import evaluate
from saelens_aligned.pipeline.source import load_source_model, resolve_source
from saelens_aligned.pipeline.training import train_sae

# The metrics each stage reports (keys of `pipeline.evaluation.EvalResult.metrics`).
CORE_METRICS = (
    "explained_variance",
    "ce_loss_score",
    "ce_loss_with_sae",
    "ce_loss_without_sae",
    "ce_loss_with_ablation",
    "l0",
    "dead_fraction",
    "mse",
)


# ---------------------------------------------------------------------------
# Pure: which aligned architecture, and the conversion


def aligned_architecture_for(sae: SAE[Any], requested: str | None = None) -> str:
    """The aligned training architecture a stock SAE converts into.

    `requested` (an aligned name) wins; otherwise the aligned variant whose base is
    the SAE's own architecture (`topk` -> `aligned_topk`, `standard` -> `aligned`).
    """
    names = aligned_architectures()
    if requested is not None:
        if requested not in names:
            raise AlignInputError(
                f"--architecture {requested!r} is not an aligned architecture; "
                f"choose from {sorted(names)}."
            )
        return requested
    own = sae.cfg.architecture()
    if own in names:
        return own
    try:
        return aligned_variant(own)
    except ValueError as e:
        raise AlignInputError(f"{e} Pass --architecture to choose one.") from e


def convert_to_aligned(
    sae: SAE[Any],
    architecture: str | None = None,
    alignment: AlignmentForm = "projected",
    **training_overrides: Any,
) -> AlignedTrainingSAE[Any]:
    """A new aligned training SAE holding `sae`'s weights, aligned.

    Training settings come from, in increasing priority: the aligned config's
    defaults, the stock SAE's recorded training details (SAELens writes them to
    `metadata.training_architecture_details`), its inference config, and
    `training_overrides`. The weights then go through the aligned SAE's
    `load_state_dict`, which applies `alignment` (see the module docstring).
    """
    name = aligned_architecture_for(sae, architecture)
    sae_class, config_class = get_sae_training_class(name)
    inference = sae.cfg.to_dict()
    metadata = dict(inference.get("metadata") or {})
    details = metadata.pop("training_architecture_details", None) or {}
    metadata.pop("training_architecture", None)
    fields_ = config_class.__dataclass_fields__
    cfg_dict = {
        **{k: v for k, v in details.items() if k in fields_},
        **{k: v for k, v in inference.items() if k in fields_ and k != "metadata"},
        **training_overrides,
        "alignment": alignment,
        "metadata": metadata,
        "architecture": name,
    }
    aligned = sae_class(config_class.from_dict(cfg_dict))
    state_dict = {k: v.detach().clone() for k, v in sae.state_dict().items()}
    aligned.process_state_dict_for_loading(state_dict)
    aligned.load_state_dict(state_dict)
    return aligned  # type: ignore[return-value]


def stage_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The numbers an align report keeps of one evaluation (CORE_METRICS)."""
    return {name: float(metrics.get(name, math.nan)) for name in CORE_METRICS}


@dataclass
class Stage:
    """One evaluated SAE of an align run.

    Args:
        name: "stock", "<alignment>" or "<alignment>+finetuned".
        metrics: core metrics (see CORE_METRICS) on the held-out tokens.
        alignment: AlignmentSummary.to_dict() of its weights.
        path: where its SAELens inference SAE was written (None for stock).
    """

    name: str
    metrics: dict[str, float]
    alignment: dict[str, Any]
    path: str | None = None


@dataclass
class AlignReport:
    """Everything an align run measured; written as report.json."""

    source: str
    sae_id: str | None
    architecture: str
    alignment: str
    settings: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def recovery(self, metric: str) -> float | None:
        """Fraction of the damage the conversion did to `metric` (higher is
        better) that fine-tuning undid: 1 = back to stock, 0 = none, >1 = past
        stock. None without three stages, or when the conversion did no damage."""
        if len(self.stages) < 3:
            return None
        stock, converted, tuned = (s.metrics[metric] for s in self.stages[:3])
        damage = stock - converted
        if not all(map(math.isfinite, (stock, converted, tuned))) or damage <= 1e-9:
            return None
        return (tuned - converted) / damage


def format_report(report: AlignReport) -> str:
    """A Markdown summary: settings, one row per stage, recovery."""
    lines = [
        f"# align: {report.source}" + (f" ({report.sae_id})" if report.sae_id else ""),
        "",
        f"Converted into `{report.architecture}` with alignment `{report.alignment}`.",
        "",
        "| stage | explained var. (about the mean) | CE-loss score | L0 | dead fraction | "
        "mean a_i | max abs(a_i - 1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in report.stages:
        m, a = s.metrics, s.alignment
        lines.append(
            f"| {s.name} | {m['explained_variance']:.4f} | {m['ce_loss_score']:.4f} | "
            f"{m['l0']:.1f} | {m['dead_fraction']:.4f} | {a['mean']:.4f} | "
            f"{a['max_abs_deviation_from_one']:.2e} |"
        )
    lines.append("")
    if len(report.stages) >= 2:
        stock, converted = report.stages[0], report.stages[1]
        for metric in ("explained_variance", "ce_loss_score"):
            before, after = stock.metrics[metric], converted.metrics[metric]
            verdict = "damaged" if after < before else "did not damage"
            line = (
                f"- {metric}: the conversion alone {verdict} it "
                f"({before:.4f} -> {after:.4f})"
            )
            if len(report.stages) >= 3:
                tuned = report.stages[2].metrics[metric]
                line += f"; after fine-tuning {tuned:.4f}"
                r = report.recovery(metric)
                if r is not None:
                    line += f", recovering {r:.0%} of the damage"
                gap = before - tuned
                line += (
                    f" ({gap:.4f} below stock)"
                    if gap > 0
                    else f" ({-gap:.4f} above stock)"
                )
            lines.append(line + ".")
    lines += [
        "",
        "Settings:",
        "",
        "```json",
        json.dumps(report.settings, indent=2),
        "```",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# I/O: the converted SAEs, written atomically


def save_inference_sae_atomic(sae: SAE[Any], path: str | Path) -> Path:
    """`save_inference_model` (or `save_model`) into a temporary sibling
    directory, which then takes the place of `path` (see `io.files.atomic_dir`)."""
    with atomic_dir(path) as tmp:
        saver = getattr(sae, "save_inference_model", None) or sae.save_model
        saver(tmp)
    return Path(path)


# ---------------------------------------------------------------------------
# I/O: model, data, evaluation, fine-tuning


def run_align(cfg: AlignConfig, model: Any = None) -> AlignReport:
    """Load, convert, fine-tune, evaluate each stage, and write the report.
    Inputs are checked (`check_align_config`, then the SAE, its conversion
    settings and the source) before the model loads.

    `model` may be passed to reuse an already loaded SAELens model (tests).
    """
    check_align_config(cfg)
    torch.manual_seed(cfg.seed)
    stock = load_stock_sae(cfg)
    check_training_overrides(
        aligned_architecture_for(stock, cfg.architecture), cfg.training_overrides
    )
    resolved = resolve_source(cfg.lm_source(stock))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = load_source_model(resolved)
    check_hook_width(stock, model, resolved.source.hook)
    aligned = convert_to_aligned(
        stock,
        cfg.architecture,
        cfg.alignment,
        device=cfg.device,
        **cfg.training_overrides,
    )
    budget = cfg.eval_budget()
    source = resolved.source
    report = AlignReport(
        source=str(cfg.source),
        sae_id=cfg.sae_id,
        architecture=aligned.cfg.architecture(),
        alignment=cfg.alignment,
        settings={
            **{k: v for k, v in asdict(cfg).items() if k != "dataset"},
            "dataset": [str(d) for d in cfg.dataset],
            "model_name": resolved.model_name,
            "model_class_name": source.model_class,
            "hook_name": source.hook,
            **budget.windows(source.context_size),
        },
    )
    scores: dict[str, torch.Tensor] = {}

    def add_stage(name: str, sae: SAE[Any], path: Path | None) -> None:
        if path is not None:
            sae = load_sae(path, device=cfg.device).sae
        result = evaluate(sae, model, resolved, budget)
        report.stages.append(
            Stage(
                name=name,
                metrics=stage_metrics(result.metrics),
                alignment=result.alignment,
                path=str(path) if path is not None else None,
            )
        )
        scores[name] = sae_alignment_scores(sae)

    add_stage("stock", stock, None)
    converted = save_inference_sae_atomic(aligned, out / cfg.alignment)
    add_stage(cfg.alignment, aligned, converted)
    if cfg.training_tokens > 0:
        aligned.train()
        tuned = train_sae(
            resolved,
            aligned.cfg,
            cfg.training(),
            model,
            out / "finetuned",
            override_sae=aligned,
        )
        add_stage(f"{cfg.alignment}+finetuned", aligned, tuned)

    write_json_atomic(out / "report.json", report.to_dict(), indent=2)
    write_text_atomic(out / "report.md", format_report(report))
    plot_alignment_histograms(
        scores,
        out / "alignment_histograms.png",
        title=f"Alignment scores: {cfg.source}",
    )
    return report
