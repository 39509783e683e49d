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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class
from sae_lens.saes.sae import SAE

from saelens_aligned.aligned_sae import AlignedTrainingSAE
from saelens_aligned.alignment import AlignmentForm
from saelens_aligned.architectures import aligned_architectures, base_architecture
from saelens_aligned.io import atomic_dir, write_json_atomic, write_text_atomic

# What a stock inference architecture is fine-tuned as. BatchTopK and Matryoshka
# exports are JumpReLU SAEs and continue as aligned JumpReLU unless the caller
# names another aligned architecture.
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
            raise ValueError(
                f"{requested!r} is not an aligned architecture; choose from {sorted(names)}."
            )
        return requested
    own = sae.cfg.architecture()
    by_base = {
        base_architecture(get_sae_training_class(name)[1]): name for name in names
    }
    if own in names:
        return own
    if own not in by_base:
        raise ValueError(
            f"No aligned variant of architecture {own!r}; pass one of {sorted(names)}."
        )
    return by_base[own]


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


def core_metrics(
    all_metrics: dict[str, Any], feature_metrics: dict[str, Any]
) -> dict[str, float]:
    """The core numbers from `sae_lens.evals.run_evals` output, flat."""
    flat: dict[str, Any] = {}
    for group in all_metrics.values():
        flat.update(group)
    density = feature_metrics.get("feature_density")
    dead = None
    if density is not None:
        density_F = torch.as_tensor(density, dtype=torch.float64)
        dead = float((density_F == 0).double().mean())
    out = {name: flat.get(name) for name in CORE_METRICS if name != "dead_fraction"}
    out["dead_fraction"] = dead
    return {k: (float(v) if v is not None else math.nan) for k, v in out.items()}


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
        "| stage | explained var. | CE-loss score | L0 | dead fraction | "
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
    directory, which then takes the place of `path` (see `io.atomic_dir`)."""
    with atomic_dir(path) as tmp:
        saver = getattr(sae, "save_inference_model", None) or sae.save_model
        saver(tmp)
    return Path(path)


# ---------------------------------------------------------------------------
# I/O: model, data, evaluation, fine-tuning


@dataclass
class AlignConfig:
    """Settings of one align run.

    Args:
        source: the stock SAE: SAELens dir, HF-layout folder, release or HF repo id.
        output_dir: where report.json, report.md, alignment_histograms.png and the
            converted and fine-tuned SAEs are written.
        dataset: local .txt/.jsonl/.json files, or one Hugging Face dataset path.
        sae_id: which SAE of a folder, release or repo.
        alignment: "projected" (keep the decoder; default) or "tied" (re-derive
            the decoder from the encoder).
        architecture: aligned architecture to convert into; default: the aligned
            variant of the SAE's own architecture.
        model_name: model to run; default: the SAE's metadata model_name, else the
            embedded SmolLM2-135M-Instruct.
        model_class_name: SAELens model class; default: the SAE's metadata, else
            "AutoModelForCausalLM".
        hook_name: default: the SAE's metadata hook_name.
        text_column: the dataset column holding text.
        context_size: tokens per sequence.
        training_tokens: fine-tuning budget; 0 skips fine-tuning.
        train_batch_size_tokens: tokens per training step.
        lr: Adam learning rate of the fine-tuning.
        eval_batches: batches of `eval_batch_size_prompts` sequences for explained
            variance, L0 and dead fraction, per stage (the same sequences for every
            stage; needs the model only up to the hook).
        eval_ce_batches: batches for the CE-loss score, the first `eval_ce_batches`
            of those sequences; each costs three full forward passes (clean,
            SAE spliced in, zero-ablated), the dominant cost on CPU.
        eval_batch_size_prompts: sequences per evaluation batch.
        eval_fraction: fraction of dataset rows held out for evaluation only.
        device: torch device for model and SAE.
        seed: seed of the data split and fine-tuning.
        training_overrides: extra training-config fields of the aligned SAE (e.g.
            l1_coefficient for standard SAEs whose metadata lacks it).
    """

    source: str
    output_dir: str
    dataset: Sequence[str]
    sae_id: str | None = None
    alignment: AlignmentForm = "projected"
    architecture: str | None = None
    model_name: str | None = None
    model_class_name: str | None = None
    hook_name: str | None = None
    text_column: str = "text"
    context_size: int = 128
    training_tokens: int = 200_000
    train_batch_size_tokens: int = 1024
    lr: float = 3e-4
    eval_batches: int = 16
    eval_ce_batches: int = 4
    eval_batch_size_prompts: int = 8
    eval_fraction: float = 0.1
    device: str = "cpu"
    seed: int = 42
    training_overrides: dict[str, Any] = field(default_factory=dict)


def load_text_dataset(dataset: Sequence[str], text_column: str = "text") -> Any:
    """A `datasets.Dataset` of raw text from local files or an HF dataset path."""
    import datasets

    specs = [str(d) for d in dataset]
    if not specs:
        raise ValueError("Pass at least one dataset file or Hugging Face dataset path.")
    local = [Path(s).expanduser() for s in specs]
    if all(p.exists() for p in local):
        suffixes = {p.suffix.lower() for p in local}
        builder = "json" if suffixes <= {".json", ".jsonl"} else "text"
        if builder == "text" and not suffixes <= {".txt", ".md", ".text"}:
            raise ValueError(f"Dataset files must all be .jsonl/.json or .txt: {specs}")
        ds = datasets.load_dataset(
            builder, data_files=[str(p) for p in local], split="train"
        )
    elif len(specs) == 1:
        # A dataset script is remote code: never run it (datasets' default asks).
        ds = datasets.load_dataset(
            specs[0], split="train", streaming=False, trust_remote_code=False
        )
    else:
        missing = [s for s, p in zip(specs, local) if not p.exists()]
        raise FileNotFoundError(f"Dataset files not found: {missing}")
    if text_column not in ds.column_names:
        raise ValueError(
            f"Dataset has no {text_column!r} column (columns: {ds.column_names})."
        )
    if text_column != "text":
        ds = ds.rename_column(text_column, "text")
    return ds.select_columns(["text"])


def split_dataset(ds: Any, eval_fraction: float, seed: int) -> tuple[Any, Any]:
    """(train, eval) rows; the eval rows are never trained on."""
    n_eval = max(1, round(len(ds) * eval_fraction))
    if n_eval >= len(ds):
        raise ValueError(f"Dataset has {len(ds)} rows: too few to hold out {n_eval}.")
    split = ds.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"]


def _model_settings(cfg: AlignConfig, sae: SAE[Any]) -> tuple[str, str, str]:
    meta = sae.cfg.metadata
    hook_name = cfg.hook_name or meta.get("hook_name")
    if not hook_name:
        raise ValueError("The SAE's metadata has no hook_name: pass --hook-name.")
    model_name = cfg.model_name or meta.get("model_name")
    class_name = cfg.model_class_name or (
        meta.get("model_class_name") if not cfg.model_name else None
    )
    if not model_name:
        from saelens_aligned.offline import default_model_dir

        model_name = str(default_model_dir())
        class_name = class_name or "AutoModelForCausalLM"
    return model_name, class_name or "AutoModelForCausalLM", hook_name


def runner_config(
    cfg: AlignConfig,
    sae_cfg: Any,
    model_name: str,
    model_class_name: str,
    hook_name: str,
) -> Any:
    """The SAELens runner config shared by fine-tuning and evaluation."""
    from sae_lens.config import LanguageModelSAERunnerConfig, LoggingConfig

    store_prompts = cfg.eval_batch_size_prompts
    # SAELens needs buffer (n_batches * context) >= one training batch.
    n_batches = max(2, math.ceil(2 * cfg.train_batch_size_tokens / cfg.context_size))
    return LanguageModelSAERunnerConfig(
        sae=sae_cfg,
        model_name=model_name,
        model_class_name=model_class_name,
        hook_name=hook_name,
        dataset_path="saelens-aligned-local-text",
        dataset_trust_remote_code=False,
        is_dataset_tokenized=False,
        streaming=False,
        context_size=cfg.context_size,
        training_tokens=max(cfg.training_tokens, cfg.train_batch_size_tokens),
        train_batch_size_tokens=cfg.train_batch_size_tokens,
        store_batch_size_prompts=store_prompts,
        n_batches_in_buffer=n_batches,
        lr=cfg.lr,
        device=cfg.device,
        seed=cfg.seed,
        n_eval_batches=1,
        eval_batch_size_prompts=store_prompts,
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=None,
        verbose=False,
    )


def evaluate_sae(
    sae: SAE[Any], model: Any, run_cfg: Any, eval_ds: Any, cfg: AlignConfig
) -> dict[str, float]:
    """SAELens' `run_evals` (CE loss, variance, sparsity, density) on `eval_ds`.

    A fresh activations store per call starts at the dataset's first row, and
    `run_evals` rewinds between its two passes, so every stage sees the same tokens.
    """
    from sae_lens.evals import EvalConfig, run_evals
    from sae_lens.training.activation_scaler import ActivationScaler
    from sae_lens.training.activations_store import ActivationsStore

    store = ActivationsStore.from_config(model, run_cfg, override_dataset=eval_ds)
    eval_cfg = EvalConfig(
        batch_size_prompts=cfg.eval_batch_size_prompts,
        n_eval_reconstruction_batches=cfg.eval_ce_batches,
        compute_ce_loss=True,
        n_eval_sparsity_variance_batches=cfg.eval_batches,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=True,
    )
    sae.eval()
    all_metrics, feature_metrics = run_evals(
        sae, store, model, ActivationScaler(), eval_cfg, exclude_special_tokens=True
    )
    return core_metrics(all_metrics, feature_metrics)


def finetune(
    aligned: AlignedTrainingSAE[Any], model: Any, run_cfg: Any, train_ds: Any
) -> AlignedTrainingSAE[Any]:
    """Train `aligned` further with SAELens' runner; the constraint holds throughout."""
    from sae_lens.llm_sae_training_runner import LanguageModelSAETrainingRunner

    aligned.train()
    runner = LanguageModelSAETrainingRunner(
        run_cfg, override_dataset=train_ds, override_model=model, override_sae=aligned
    )
    return runner.run()  # type: ignore[return-value]


def run_align(cfg: AlignConfig, model: Any = None) -> AlignReport:
    """Load, convert, fine-tune, evaluate each stage, and write the report.

    `model` may be passed to reuse an already loaded SAELens model (tests).
    """
    from saelens_aligned.diagnostics import sae_alignment_scores, sae_alignment_summary
    from saelens_aligned.plotting import plot_alignment_histograms
    from saelens_aligned.pretrained import load_sae

    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stock = load_sae(cfg.source, cfg.sae_id, device=cfg.device).sae
    model_name, class_name, hook_name = _model_settings(cfg, stock)
    if model is None:
        from sae_lens.load_model import load_model

        model = load_model(
            class_name, model_name, device=cfg.device, hook_names=[hook_name]
        )
    train_ds, eval_ds = split_dataset(
        load_text_dataset(cfg.dataset, cfg.text_column), cfg.eval_fraction, cfg.seed
    )

    aligned = convert_to_aligned(
        stock,
        cfg.architecture,
        cfg.alignment,
        device=cfg.device,
        **cfg.training_overrides,
    )
    run_cfg = runner_config(cfg, aligned.cfg, model_name, class_name, hook_name)
    report = AlignReport(
        source=str(cfg.source),
        sae_id=cfg.sae_id,
        architecture=aligned.cfg.architecture(),
        alignment=cfg.alignment,
        settings={
            **{k: v for k, v in asdict(cfg).items() if k != "dataset"},
            "dataset": [str(d) for d in cfg.dataset],
            "model_name": model_name,
            "model_class_name": class_name,
            "hook_name": hook_name,
            "eval_tokens": cfg.eval_batches
            * cfg.eval_batch_size_prompts
            * cfg.context_size,
            "eval_ce_tokens": cfg.eval_ce_batches
            * cfg.eval_batch_size_prompts
            * cfg.context_size,
        },
    )
    scores: dict[str, torch.Tensor] = {}

    def add_stage(name: str, sae: SAE[Any], path: Path | None) -> None:
        if path is not None:
            save_inference_sae_atomic(sae, path)
            sae = load_sae(path, device=cfg.device).sae
        report.stages.append(
            Stage(
                name=name,
                metrics=evaluate_sae(sae, model, run_cfg, eval_ds, cfg),
                alignment=sae_alignment_summary(sae).to_dict(),
                path=str(path) if path is not None else None,
            )
        )
        scores[name] = sae_alignment_scores(sae)

    add_stage("stock", stock, None)
    add_stage(cfg.alignment, aligned, out / cfg.alignment)
    if cfg.training_tokens > 0:
        tuned = finetune(aligned, model, run_cfg, train_ds)
        add_stage(f"{cfg.alignment}+finetuned", tuned, out / "finetuned")

    write_json_atomic(out / "report.json", report.to_dict(), indent=2)
    write_text_atomic(out / "report.md", format_report(report))
    plot_alignment_histograms(
        scores,
        out / "alignment_histograms.png",
        title=f"Alignment scores: {cfg.source}",
    )
    return report
