"""The pretrained release: aligned `tied` TopK SAEs of the embedded model, built
from scratch by one command and shipped inside the package.

    python -m benchmarks.release build      # caches, trains, packages, evaluates
    python -m benchmarks.release render     # the docs table, from the records
                                            # (`python -m benchmarks results` writes it)

`build` is resumable (each layer is a sweep folder under benchmarks/results/
release/; a rerun trains only what is missing, and retrains an aligned SAE whose
weights are gone, as on a fresh checkout, where only the records are):
1. activations of every layer, train and held-out text, in one pass of the model
   per split (`pipeline.activations.ensure_activation_caches`);
2. per layer, a two-arm sweep with the benchmark's machinery: stock TopK (on the
   sparse step, `sparse_stock_step`) and aligned `tied` TopK, same tokens, same
   seed, same rate, evaluated with SAEBench core on held-out text plus dead
   latents over a long held-out window;
3. each aligned SAE written as a compact file (`io/compact.py`: the fp16 encoder
   and the biases; the decoder is derived) into `saelens_aligned/releases/`, its
   metadata portable (the model's hub name, TransformerLens' hook name);
4. each shipped file evaluated as a user gets it (expanded, then the sweep's
   evaluation), a record per file under `release/shipped/`, carrying the file's
   digest; the docs table and the registry's L0 and explained variance are these
   numbers, not the float32 run's;
5. the release entry into `saelens_aligned/pretrained_saes.yaml`.

Only the aligned SAEs ship: a compact `tied` SAE is the encoder alone, half of a
stock SAE's two matrices, and the stock SAEs are SAELens' own architecture,
rebuilt by this command. Their records are kept beside the aligned ones.
"""

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sae_lens.constants import SAE_WEIGHTS_FILENAME

from benchmarks.records.layout import (
    flat_metrics,
    load_records,
    read_record,
    record_path,
    run_info,
)
from benchmarks.release.spec import (
    RELEASE,
    ReleasePaths,
    ReleaseSpec,
    compact_file,
    file_digest,
    layer_dir,
    shipped_dir,
    trained_sae_dir,
)
from saelens_aligned.io.pretrained import PACKAGED_LOADER, RELEASES_DIRNAME

# The table's name of each kind of row (`ReleaseRecord.arm`).
ARM_LABELS = {
    "aligned_tied": "aligned `tied` (shipped file)",
    "aligned_tied_fp32": "aligned `tied` (fp32 run; file not evaluated)",
    "stock_topk": "stock TopK",
}


def prepare_activations(
    spec: ReleaseSpec, splits: tuple[str, ...] = ("train", "eval")
) -> None:
    """Activation caches of every layer (train: the training tokens; eval: the
    held-out dead-latent window), one model pass per split; the sweeps then find
    them under their own keys."""
    from saelens_aligned.pipeline.activations import ensure_activation_caches
    from saelens_aligned.pipeline.models import hook_width, load_model
    from saelens_aligned.pipeline.source import resolve_source

    resolved = {
        spec.hook(layer): resolve_source(spec.sweep(layer).source())
        for layer in spec.layers
    }
    first = next(iter(resolved.values()))
    model = load_model(
        first.source.model_class, first.model_name, list(resolved), first.source.device
    )
    d_in = hook_width(model, next(iter(resolved)))
    config = spec.sweep(spec.layers[0])
    tokens = {"train": spec.activation_tokens, "eval": spec.dead_window_tokens}
    for split in splits:
        ensure_activation_caches(
            resolved,
            model,
            d_in,
            tokens[split],
            spec.seed,
            config.model_batch_size,
            split=split,
        )


def unfinished_layers(spec: ReleaseSpec, paths: ReleasePaths) -> list[int]:
    """Layers whose sweep lacks a record of either arm, or the weights of the
    SAE that ships."""
    arms = len(spec.sweep(spec.layers[0]).architectures)
    return [
        layer
        for layer in spec.layers
        if len(load_records(layer_dir(spec, layer, paths))[0]) < arms
        or not (trained_sae_dir(spec, layer, paths) / SAE_WEIGHTS_FILENAME).is_file()
    ]


def forget_weightless_runs(spec: ReleaseSpec, paths: ReleasePaths) -> None:
    """Remove the record of each aligned run whose weights are gone (a fresh
    checkout holds records only), so the sweep trains it again."""
    for layer in spec.layers:
        record = record_path(
            layer_dir(spec, layer, paths), spec.aligned_run(layer).run_id
        )
        weights = trained_sae_dir(spec, layer, paths) / SAE_WEIGHTS_FILENAME
        if record.exists() and not weights.is_file():
            print(f"{record}: its SAE's weights are gone; retraining it", flush=True)
            record.unlink()


def train_and_evaluate(
    spec: ReleaseSpec, paths: ReleasePaths, workers: int = 1
) -> None:
    from benchmarks.sweeps.sweep import run_sweep

    for layer in spec.layers:
        run_sweep(
            spec.sweep(layer),
            layer_dir(spec, layer, paths),
            workers=workers,
            report=False,
        )


@dataclass(frozen=True)
class ReleaseRecord:
    """One SAE of the release build, read from its record.

    Args:
        sae_id: The layer's id in the release.
        arm: `aligned_tied` (the shipped file's record), `aligned_tied_fp32`
            (the float32 run's record, where the file was not evaluated) or
            `stock_topk` (for comparison; its sweep record).
        run_id: The sweep run (its record and SAE folder are named by it).
        metrics: The record's flat metrics (`benchmarks.records.FLAT_METRICS`).
        training_tokens: Tokens trained on.
        windows: Token counts of each evaluation window.
    """

    sae_id: str
    arm: str
    run_id: str
    metrics: dict[str, float]
    training_tokens: int
    windows: dict[str, int]


def _release_record(
    spec: ReleaseSpec, layer: int, arm: str, record: dict[str, Any]
) -> ReleaseRecord:
    return ReleaseRecord(
        sae_id=spec.sae_id(layer),
        arm=arm,
        run_id=run_info(record)["run_id"],
        metrics=flat_metrics(record),
        training_tokens=spec.training_tokens,
        windows=record["eval_result_metrics"].get("eval_windows", {}),
    )


def shipped_record(
    spec: ReleaseSpec, layer: int, paths: ReleasePaths
) -> dict[str, Any] | None:
    """The record of the layer's shipped file, if it was evaluated."""
    path = record_path(shipped_dir(spec, layer, paths), spec.aligned_run(layer).run_id)
    return read_record(path) if path.exists() else None


def release_records(spec: ReleaseSpec, paths: ReleasePaths) -> list[ReleaseRecord]:
    """Per layer: the shipped file's record (`aligned_tied`), or, where the
    shipped file was never evaluated, the float32 run's (`aligned_tied_fp32`);
    and the stock SAE's sweep record."""
    out = []
    for layer in spec.layers:
        aligned = spec.aligned_run(layer).run_id
        records, _ = load_records(layer_dir(spec, layer, paths))
        shipped = shipped_record(spec, layer, paths)
        if shipped is not None:
            out.append(_release_record(spec, layer, "aligned_tied", shipped))
        for record in records:
            if run_info(record)["run_id"] != aligned:
                out.append(_release_record(spec, layer, "stock_topk", record))
            elif shipped is None:
                out.append(_release_record(spec, layer, "aligned_tied_fp32", record))
    return sorted(out, key=lambda r: (int(r.sae_id.split("_")[1]), r.arm))


def package(spec: ReleaseSpec, paths: ReleasePaths) -> None:
    """Compact files of the aligned SAEs into the package, their metadata
    portable (`ReleaseSpec.sae_metadata`)."""
    from saelens_aligned.io.compact import write_compact

    for layer in spec.layers:
        write_compact(
            trained_sae_dir(spec, layer, paths),
            compact_file(spec, layer, paths),
            metadata=spec.sae_metadata(layer),
        )


def evaluate_shipped(spec: ReleaseSpec, paths: ReleasePaths) -> None:
    """Each shipped file evaluated as a user gets it: expanded into an SAELens
    folder (what `SAE.from_pretrained` loads), then the sweep's own evaluation
    (`lm_run_result`: SAEBench core on held-out text, dead latents over the long
    held-out window cache) at the layer's hook. Its record, in the sweep's
    layout, goes to `shipped/` with the file's digest; a file whose digest is
    recorded is not evaluated again."""
    import tempfile

    from benchmarks.records.layout import write_json_atomic
    from benchmarks.sweeps.backends.lm import LMBackend, lm_run_result
    from benchmarks.sweeps.run_records import build_record
    from saelens_aligned.io.compact import expand_compact

    todo = []
    for layer in spec.layers:
        compact = compact_file(spec, layer, paths)
        out = record_path(
            shipped_dir(spec, layer, paths), spec.aligned_run(layer).run_id
        )
        recorded = out.exists() and read_record(out)["eval_result_unstructured"].get(
            "compact_sha256"
        )
        if recorded != file_digest(compact):
            todo.append(layer)
    if todo:  # the held-out window of every layer in one model pass
        prepare_activations(spec, splits=("eval",))
    for layer in todo:
        compact, run = compact_file(spec, layer, paths), spec.aligned_run(layer)
        config = spec.sweep(layer)
        trained = read_record(record_path(layer_dir(spec, layer, paths), run.run_id))
        backend = LMBackend(config, layer_dir(spec, layer, paths))
        heldout = heldout_cache(spec, backend, layer)
        with tempfile.TemporaryDirectory() as tmp:
            sae_dir = expand_compact(compact, Path(tmp) / "sae")
            result = lm_run_result(
                sae_dir,
                backend.model,
                backend.resolved,
                config.eval,
                run.seed,
                run.run_id,
                heldout,
            )
        result.metrics["training"] = dict(trained["eval_result_metrics"]["training"])
        result.unstructured.update(
            sae_dir=f"{RELEASES_DIRNAME}/{spec.name}/{compact.name}",
            compact_sha256=file_digest(compact),
            compact_bytes=compact.stat().st_size,
        )
        record = build_record(
            config.to_dict(), run, result, result.metrics["training"]["seconds"]
        )
        write_json_atomic(
            record_path(shipped_dir(spec, layer, paths), run.run_id), record
        )


def heldout_cache(spec: ReleaseSpec, backend: Any, layer: int) -> Path:
    """The layer's held-out (dead-window) activation cache, which
    `prepare_activations` made."""
    from saelens_aligned.pipeline.activations import ensure_activation_cache

    return ensure_activation_cache(
        backend.resolved,
        backend.model,
        backend.d_in,
        spec.dead_window_tokens,
        spec.seed,
        spec.sweep(layer).model_batch_size,
        split="eval",
    )


def restamp(spec: ReleaseSpec, paths: ReleasePaths) -> None:
    """Rewrite the shipped files' metadata (`ReleaseSpec.sae_metadata`), their
    tensors untouched: for files packaged before the metadata was portable."""
    from saelens_aligned.io.compact import restamp_compact

    for layer in spec.layers:
        restamp_compact(compact_file(spec, layer, paths), spec.sae_metadata(layer))


def register(spec: ReleaseSpec, paths: ReleasePaths) -> dict[str, Any]:
    """The release entry, with the shipped files' L0 and explained variance,
    written to pretrained_saes.yaml (keeping any other release there)."""
    from saelens_aligned.io.pretrained import ReleaseSAE, release_entry

    saes = [
        ReleaseSAE(
            id=record.sae_id,
            path=record.sae_id,
            l0=record.metrics["l0"],
            # About the mean, as SAELens >= 6.45.1 computes it (SAEBench
            # 0.6.0's own value is about zero and exceeds 1 at layer 27).
            variance_explained=record.metrics["explained_variance"],
        )
        for record in release_records(spec, paths)
        if record.arm != "stock_topk"
    ]
    entry = {
        **release_entry(spec.repo_id, spec.model_label, saes),
        "conversion_func": PACKAGED_LOADER,
    }
    registry_path = paths.registry
    text = registry_path.read_text()
    header = "".join(
        line for line in text.splitlines(keepends=True) if line.startswith("#")
    )
    releases = yaml.safe_load(text) or {}
    releases[spec.name] = entry
    registry_path.write_text(header + yaml.safe_dump(releases, sort_keys=False))
    return entry


def render(spec: ReleaseSpec = RELEASE, paths: ReleasePaths | None = None) -> str:
    """The docs table of the release: the shipped files' records beside the
    stock SAEs' sweep records (all committed). No training time: the SAEs of a
    release may be trained in different builds on a shared machine (a rebuild
    retrains only what is missing), so their seconds are not side by side."""
    from tabulate import tabulate

    rows = []
    for r in release_records(spec, paths or ReleasePaths()):
        m = r.metrics

        def fmt(name: str, digits: int = 3) -> str:
            value = m.get(name, math.nan)
            return "n/a" if math.isnan(value) else f"{value:.{digits}f}"

        rows.append(
            [
                r.sae_id,
                ARM_LABELS[r.arm],
                fmt("l0", 1),
                fmt("explained_variance"),
                fmt("explained_variance_legacy"),
                fmt("ce_loss_score"),
                fmt("kl_div_score"),
                fmt("dead_fraction_long"),
                fmt("alignment_mean"),
                f"{r.training_tokens:,}",
            ]
        )
    return (
        tabulate(
            rows,
            headers=[
                "sae_id",
                "SAE",
                "L0",
                "explained variance (about the mean)",
                "SAEBench legacy (per token)",
                "CE-loss score",
                "KL score",
                f"dead (held-out {spec.dead_window_tokens:,} tokens)",
                "mean a_i",
                "training tokens",
            ],
            tablefmt="github",
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.release", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "command",
        choices=["build", "render", "restamp", "evaluate"],
        help="build: everything; restamp: the shipped files' metadata only; "
        "evaluate: the shipped files (then the registry); render: the docs table",
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.command == "render":
        print(render(), end="")
        return
    import saelens_aligned  # noqa: F401  (registers the architectures)

    paths = ReleasePaths()
    if args.command == "restamp":
        restamp(RELEASE, paths)
        return
    if args.command == "evaluate":
        evaluate_shipped(RELEASE, paths)
        print(json.dumps(register(RELEASE, paths), indent=2))
        return
    print(json.dumps(build(RELEASE, paths, args.workers), indent=2))


def build(spec: ReleaseSpec, paths: ReleasePaths, workers: int = 1) -> dict[str, Any]:
    """The whole release from scratch (resumable); returns its registry entry."""
    if unfinished_layers(spec, paths):  # caching is the slow part: only if needed
        forget_weightless_runs(spec, paths)
        prepare_activations(spec)
        train_and_evaluate(spec, paths, workers)
    package(spec, paths)
    evaluate_shipped(spec, paths)
    return register(spec, paths)


if __name__ == "__main__":
    main()
