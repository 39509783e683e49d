"""Explained variance about the mean in the committed records, without retraining.

`python -m benchmarks.records.explained_variance` writes
`reconstruction_quality.explained_variance_about_mean` (and its provenance in
`eval_result_unstructured`) into every run record under `benchmarks/results/`:

- **LM records** (SAEBench core, whose `explained_variance` is variance about
  zero): recovered exactly from SAEBench's value and the moments of the
  record's evaluation set (`saelens_aligned.explained_variance`). The moments
  are computed once per evaluation set by replaying the tokens SAEBench read
  (`saelens_aligned.pipeline.eval_moments`) and kept in `MOMENTS_FILE`, keyed
  by `EvalSet.key`: a rerun reads them instead of running the model.
- **Synthetic records**: SAELens' synthetic eval wrote them with its
  `ExplainedVarianceCalculator`, which computes explained variance about the
  mean from SAELens 6.45.1 on; every record says which SAELens wrote it, so the
  value is copied when that version is new enough and refused otherwise.

A sweep's `lr_choice.json` scored by explained variance gets its grid values
from the filled grid records. For one arm on one evaluation set the value
about the mean is a decreasing function of SAEBench's residual, as SAEBench's
own value is, so no arm's ranking of rates changes; the command checks that
each chosen rate is still the rule's choice (ties within `LR_TIE_TOLERANCE`
are read on the new scale) and names any arm where it is not.

SAEBench's own `explained_variance` and `explained_variance_legacy` stay as it
wrote them. The command is idempotent: a record already holding the value it
would write is left untouched, so it resumes after a kill.
"""

import argparse
import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.records.layout import (
    EVAL_TYPE_ID,
    LR_CHOICE_FILENAME,
    RECORDS_DIRNAME,
    flat_metrics,
    read_record,
    write_json_atomic,
)
from saelens_aligned.explained_variance import (
    FIRST_CORRECT_SAELENS,
    SAELENS_CALCULATOR,
    SaebenchMoments,
)
from saelens_aligned.pipeline.eval_moments import (
    RECORD_KEY,
    EvalSet,
    RecoveredExplainedVariance,
)
from saelens_aligned.pipeline.evaluation import EvalBudget, eval_set_of
from saelens_aligned.pipeline.source import ResolvedSource, Source, resolve_source

RESULTS = Path(__file__).resolve().parents[1] / "results"
MOMENTS_FILE = RESULTS / "eval_moments.json"
"""Evaluation-set key -> the set and its moments (`SaebenchMoments`)."""


# --------------------------------------------------------------------------- #
# Which evaluation set a record read
# --------------------------------------------------------------------------- #


def record_source(record: dict[str, Any]) -> Source:
    """The model, hook and text of an LM record's sweep."""
    sweep = record["eval_config"]["sweep"]
    return Source(
        model=sweep.get("model"),
        model_class=sweep.get("model_class", "AutoModelForCausalLM"),
        hook=sweep["hook"],
        dataset=sweep.get("dataset"),
        context_size=int(sweep["context_size"]),
        device="cpu",
    )


def record_budget(record: dict[str, Any]) -> EvalBudget:
    """SAEBench core's budget as the record's windows say it ran (the grid's
    evaluations skip the CE/KL batches: their `ce_kl_tokens` is 0)."""
    sweep = record["eval_config"]["sweep"]
    windows = record["eval_result_metrics"]["eval_windows"]
    prompts = int(sweep["eval"]["batch_size_prompts"])
    per_batch = prompts * int(sweep["context_size"])
    return EvalBudget(
        batch_size_prompts=prompts,
        n_eval_reconstruction_batches=int(windows["ce_kl_tokens"]) // per_batch,
        n_eval_sparsity_variance_batches=int(windows["sparsity_variance_tokens"])
        // per_batch,
        exclude_special_tokens=bool(windows["special_tokens_excluded"]),
        progress=False,
    )


def record_split(record: dict[str, Any]) -> str:
    """`eval`, or `validation` (records written before the field: `eval`)."""
    return record.get("eval_result_unstructured", {}).get("eval_split") or "eval"


def record_eval_set(
    record: dict[str, Any], resolved: ResolvedSource
) -> tuple[EvalSet, EvalBudget]:
    metadata = record.get("sae_cfg_dict", {}).get("metadata") or {}
    prepend_bos = metadata.get("prepend_bos")
    budget = record_budget(record)
    split = record_split(record)
    # SAEs saved without it are evaluated with BOS (`default_tokenization`).
    eval_set = eval_set_of(
        resolved, budget, True if prepend_bos is None else prepend_bos, split
    )
    return eval_set, budget


# --------------------------------------------------------------------------- #
# The moments, computed once per evaluation set
# --------------------------------------------------------------------------- #


def read_moments(path: Path = MOMENTS_FILE) -> dict[str, SaebenchMoments]:
    if not path.exists():
        return {}
    sets = json.loads(path.read_text())["sets"]
    return {
        key: SaebenchMoments(
            **{**entry["moments"], "tokens": tuple(entry["moments"]["tokens"])}
        )
        for key, entry in sets.items()
    }


def write_moments(
    moments: dict[str, SaebenchMoments],
    eval_sets: dict[str, EvalSet],
    path: Path = MOMENTS_FILE,
) -> None:
    previous = json.loads(path.read_text())["sets"] if path.exists() else {}
    sets = dict(previous)
    for key, value in moments.items():
        eval_set = eval_sets.get(key)
        sets[key] = {
            "eval_set": asdict(eval_set) if eval_set else previous[key]["eval_set"],
            "moments": asdict(value),
        }
    write_json_atomic(
        path,
        {
            "about": (
                "Moments of the activations SAEBench core's variance pass reads "
                "for each evaluation set, weighted as SAEBench weights them; "
                "written by python -m benchmarks.records.explained_variance."
            ),
            "sets": dict(sorted(sets.items())),
        },
        indent=1,
    )


class MomentsComputer:
    """Computes an evaluation set's moments, the model loaded once per model
    and hook."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], Any] = {}

    def model(self, resolved: ResolvedSource) -> Any:
        from saelens_aligned.pipeline.source import load_source_model

        source = resolved.source
        key = (resolved.model_name, source.model_class, source.hook)
        if key not in self._models:
            self._models[key] = load_source_model(resolved)
        return self._models[key]

    def __call__(
        self,
        eval_set: EvalSet,
        resolved: ResolvedSource,
        budget: EvalBudget,
        training_tokens: int,
    ) -> SaebenchMoments:
        import torch
        from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

        from saelens_aligned.pipeline.eval_moments import eval_set_moments
        from saelens_aligned.pipeline.evaluation import eval_activation_store
        from saelens_aligned.pipeline.models import hook_width

        model = self.model(resolved)
        if eval_set.split == "validation":
            from benchmarks.sweeps.backends.validation_split import validation_corpus

            tokenizer = model.tokenizer
            corpus = validation_corpus(
                resolved.corpus,
                training_tokens,
                lambda text: len(tokenizer(text)["input_ids"]),
            )
            resolved = replace(resolved, corpus=corpus)
        # The store reads only the SAE's metadata: a stand-in carries it.
        cfg = StandardSAEConfig(d_in=hook_width(model, eval_set.hook), d_sae=1)
        cfg.metadata.hook_name = eval_set.hook
        cfg.metadata.context_size = eval_set.context_size
        cfg.metadata.prepend_bos = eval_set.prepend_bos
        store = eval_activation_store(resolved, model, StandardSAE(cfg), budget)
        with torch.no_grad():
            return eval_set_moments(eval_set, store, model)[0]


# --------------------------------------------------------------------------- #
# Filling the records
# --------------------------------------------------------------------------- #


def saelens_version(record: dict[str, Any]) -> tuple[int, ...]:
    text = str(record.get("sae_lens_version") or "0")
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def synthetic_fill(record: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """SAELens' own value, when the SAELens that wrote it was new enough."""
    if saelens_version(record) < FIRST_CORRECT_SAELENS:
        raise ValueError(
            f"{record['eval_config']['run']['run_id']}: written by SAELens "
            f"{record.get('sae_lens_version')}, before its explained variance "
            "was about the mean (6.45.1); evaluate it again."
        )
    value = record["eval_result_metrics"]["reconstruction_quality"].get(
        "explained_variance"
    )
    return value, dict(SAELENS_CALCULATOR)


def write_value(
    path: Path, record: dict[str, Any], value: float | None, how: dict[str, Any]
) -> bool:
    """Put the value and its provenance into the record; False when it already
    held them."""
    quality = record["eval_result_metrics"].setdefault("reconstruction_quality", {})
    unstructured = record.setdefault("eval_result_unstructured", {})
    if quality.get(RECORD_KEY) == value and unstructured.get(RECORD_KEY) == how:
        return False
    quality[RECORD_KEY] = value
    unstructured[RECORD_KEY] = how
    write_json_atomic(path, record)
    return True


def record_paths(results: Path) -> list[Path]:
    """Every record file below a `records/` folder of `results`."""
    return sorted(
        p for p in results.rglob("*.json") if RECORDS_DIRNAME in p.parent.parts
    )


def fill(results: Path, compute: bool, moments_file: Path = MOMENTS_FILE) -> dict:
    """Fill every run record below `results`; returns counts by outcome."""
    moments = read_moments(moments_file)
    computer = MomentsComputer() if compute else None
    new_sets: dict[str, EvalSet] = {}
    resolved_by_source: dict[Source, ResolvedSource] = {}
    counts = {"written": 0, "unchanged": 0, "missing_moments": 0}
    for path in record_paths(results):
        record = read_record(path)
        if record["eval_type_id"] != EVAL_TYPE_ID:
            continue
        sweep = record["eval_config"].get("sweep", {})
        if sweep.get("kind") == "synthetic":
            value, how = synthetic_fill(record)
        else:
            source = record_source(record)
            if source not in resolved_by_source:
                resolved_by_source[source] = resolve_source(source)
            resolved = resolved_by_source[source]
            eval_set, budget = record_eval_set(record, resolved)
            if eval_set.key not in moments:
                if computer is None:
                    counts["missing_moments"] += 1
                    print(f"{path}: no moments for {eval_set.key}", file=sys.stderr)
                    continue
                print(f"moments of {eval_set.key}", file=sys.stderr, flush=True)
                tokens = sweep.get("activation_tokens") or sweep["training_tokens"]
                moments[eval_set.key] = computer(eval_set, resolved, budget, tokens)
                new_sets[eval_set.key] = eval_set
                write_moments({eval_set.key: moments[eval_set.key]}, new_sets)
            saebench = record["eval_result_metrics"]["reconstruction_quality"]
            recovered = RecoveredExplainedVariance.recover(
                saebench["explained_variance"], eval_set, moments[eval_set.key]
            )
            value, how = recovered.value, recovered.provenance()
        changed = write_value(path, record, value, how)
        counts["written" if changed else "unchanged"] += 1
    return counts


def refresh_lr_choices(results: Path) -> list[str]:
    """Grid values of every explained-variance `lr_choice.json` from its filled
    grid records; returns the arms whose chosen rate the rule would now change
    (the file keeps the rate its main runs were trained at)."""
    from benchmarks.sweeps.lr_rule import best_learning_rate

    changed = []
    for choice_path in sorted(results.rglob(LR_CHOICE_FILENAME)):
        choice = json.loads(choice_path.read_text())
        if choice.get("metric") != "explained_variance":
            continue
        scores: dict[str, dict[str, float]] = {}
        penalty: dict[str, bool] = {}
        grid_dir = choice_path.parent / RECORDS_DIRNAME / "lr_grid"
        for path in sorted(grid_dir.glob("*.json")):
            record = read_record(path)
            run = record["eval_config"]["run"]
            rate = f"{float(run['lr']):g}"
            by_rate = scores.setdefault(run["label"], {})
            if rate in by_rate:
                raise ValueError(f"{path}: a second grid record of {run['label']}")
            by_rate[rate] = flat_metrics(record)["explained_variance"]
            penalty[run["label"]] = run["sparsity_param"] != "k"
        for label, grid in choice["grid"].items():
            if set(grid) != set(scores.get(label, {})):
                raise ValueError(
                    f"{choice_path}: {label}'s grid rates {sorted(grid)} are not "
                    f"those of its grid records {sorted(scores.get(label, {}))}"
                )
            choice["grid"][label] = {r: scores[label][r] for r in grid}
            l0 = choice.get("grid_l0", {}).get(label, {})
            best = best_learning_rate(
                {float(r): v for r, v in scores[label].items()},
                {float(r): v for r, v in l0.items()} if penalty[label] else None,
            )
            if not math.isclose(best, float(choice["chosen"][label])):
                changed.append(
                    f"{choice_path.parent.name} {label}: "
                    f"{choice['chosen'][label]:g} -> {best:g}"
                )
        write_json_atomic(choice_path, choice, indent=1)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.records.explained_variance",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-compute",
        action="store_true",
        help="Never run the model: records whose evaluation set has no stored "
        "moments are left as they are (and counted).",
    )
    args = parser.parse_args(argv)
    counts = fill(args.results, compute=not args.no_compute)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()))
    for line in refresh_lr_choices(args.results):
        print(f"rate the rule would now choose: {line}")
    return 1 if counts["missing_moments"] else 0


if __name__ == "__main__":
    sys.exit(main())
