"""The pretrained release: aligned `tied` TopK SAEs of the embedded model, built
from scratch by one command and shipped inside the package.

    python -m benchmarks.release build      # caches, trains, evaluates, packages
    python -m benchmarks.release render     # the docs table, from the records

`build` is resumable (each layer is a sweep folder under benchmarks/results/
release/; a rerun trains only what is missing):
1. activations of every layer, train and held-out text, in one pass of the model
   per split (`pipeline.activations.ensure_activation_caches`);
2. per layer, a two-arm sweep with the benchmark's machinery: stock TopK (on the
   sparse step, `sparse_stock_step`) and aligned `tied` TopK, same tokens, same
   seed, same rate, evaluated with SAEBench core on held-out text plus dead
   latents over a long held-out window;
3. each aligned SAE written as a compact file (`io/compact.py`: the bf16 encoder
   and the biases; the decoder is derived) into `saelens_aligned/releases/`, and
   the release entry, with each SAE's measured L0 and explained variance, into
   `saelens_aligned/pretrained_saes.yaml`.

Only the aligned SAEs ship: a compact `tied` SAE is the encoder alone, half of a
stock SAE's two matrices, and the stock SAEs are SAELens' own architecture,
rebuilt by this command. Their records are kept beside the aligned ones.
"""

import argparse
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from benchmarks.records.layout import flat_metrics, load_records, run_info
from benchmarks.sweeps.config import ArchitectureSweep, EvalSettings, SweepConfig
from saelens_aligned.io.pretrained import (
    PACKAGED_LOADER,
    RELEASES_DIRNAME,
    default_registry_path,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ReleasePaths:
    """Where a build writes.

    Args:
        results_dir: The layers' sweep folders (records committed, weights not).
        releases_dir: The package's folder of compact files (`releases/`).
        registry: The package's pretrained_saes.yaml.
    """

    results_dir: Path = ROOT / "benchmarks" / "results" / "release"
    releases_dir: Path = ROOT / "saelens_aligned" / RELEASES_DIRNAME
    registry: Path = field(default_factory=default_registry_path)


@dataclass(frozen=True)
class ReleaseSpec:
    """What the release holds and how it is trained.

    Args:
        name: Release name, as passed to `SAE.from_pretrained`.
        repo_id: The Hugging Face repo the same SAEs go to with `upload_saes`
            (the registry needs one; the packaged files need no hub).
        model_label: The model named in the registry.
        layers: Residual-stream layers (`model.layers.N`, after block N) of the
            30-block SmolLM2-135M-Instruct: early, middle and late.
        d_sae: Latents (8x d_in 576).
        k: Active latents per token.
        dataset: Training and held-out text (Brown: natural English, held-out
            split never trained on).
        context_size: Tokens per sequence.
        activation_tokens: Tokens of cached training activations (Brown's train
            split holds about 1.06M tokens).
        training_tokens: Tokens each SAE trains on: two passes over the cache.
        train_batch_size_tokens: Tokens per step.
        lr: Adam rate of both arms: the best of the cpu sweep's grid for stock
            TopK and inside the flat top of aligned TopK's (1e-3 of 3e-4..1e-2).
        seed: SAE initialisation and activation order.
        dead_window_tokens: Held-out tokens of the long dead-latent window.
        eval: SAEBench core's budget and the other evaluation settings.
        activations_dir: Where activation caches live; None: the cache root's.
    """

    name: str = "smollm2-135m-instruct-res-aligned-topk-8x"
    repo_id: str = "saelens-aligned/smollm2-135m-instruct-res-aligned-topk-8x"
    model_label: str = "SmolLM2-135M-Instruct"
    layers: tuple[int, ...] = (3, 15, 27)
    d_sae: int = 4608
    k: int = 32
    dataset: str | None = "brown"
    context_size: int = 128
    activation_tokens: int = 1_000_000
    training_tokens: int = 2_048_000
    train_batch_size_tokens: int = 1024
    lr: float = 1e-3
    seed: int = 42
    dead_window_tokens: int = 262_144
    eval: EvalSettings = field(
        default_factory=lambda: EvalSettings(
            batch_size_prompts=8,
            n_eval_reconstruction_batches=8,
            n_eval_sparsity_variance_batches=32,
            meta_structure=False,
            dead_window_tokens=262_144,
        )
    )

    activations_dir: str | None = None

    def sae_id(self, layer: int) -> str:
        return f"layer_{layer}"

    def hook(self, layer: int) -> str:
        return f"model.layers.{layer}"

    def sweep(self, layer: int) -> SweepConfig:
        """The layer's two-arm sweep."""
        return SweepConfig(
            name=f"release-{self.sae_id(layer)}",
            hook=self.hook(layer),
            dataset=self.dataset,
            context_size=self.context_size,
            architectures=[
                ArchitectureSweep("topk", "k", [self.k]),
                ArchitectureSweep("aligned_topk", "k", [self.k], alignments=["tied"]),
            ],
            d_sae=[self.d_sae],
            seeds=[self.seed],
            training_tokens=self.training_tokens,
            activation_tokens=self.activation_tokens,
            train_batch_size_tokens=self.train_batch_size_tokens,
            lr=self.lr,
            activation_seed=self.seed,
            eval=replace(self.eval, dead_window_tokens=self.dead_window_tokens),
            sparse_stock_step=True,
            activations_dir=self.activations_dir,
        )


RELEASE = ReleaseSpec()


def prepare_activations(spec: ReleaseSpec) -> None:
    """Train and held-out activation caches of every layer, one model pass per
    split; the sweeps then find them under their own keys."""
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
    ensure_activation_caches(
        resolved,
        model,
        d_in,
        spec.activation_tokens,
        spec.seed,
        config.model_batch_size,
    )
    ensure_activation_caches(
        resolved,
        model,
        d_in,
        spec.dead_window_tokens,
        spec.seed,
        config.model_batch_size,
        split="eval",
    )


def layer_dir(spec: ReleaseSpec, layer: int, paths: ReleasePaths) -> Path:
    return paths.results_dir / spec.sae_id(layer)


def unfinished_layers(spec: ReleaseSpec, paths: ReleasePaths) -> list[int]:
    """Layers whose sweep lacks a record of either arm."""
    arms = len(spec.sweep(spec.layers[0]).architectures)
    return [
        layer
        for layer in spec.layers
        if len(load_records(layer_dir(spec, layer, paths))[0]) < arms
    ]


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
    """One SAE of the release build, read from its sweep record.

    Args:
        sae_id: The layer's id in the release.
        arm: `aligned_tied` (ships) or `stock_topk` (for comparison).
        run_id: The sweep run (its record and SAE folder are named by it).
        metrics: The record's flat metrics (`benchmarks.records.layout.FLAT_METRICS`).
        training_tokens: Tokens trained on.
        windows: Token counts of each evaluation window.
    """

    sae_id: str
    arm: str
    run_id: str
    metrics: dict[str, float]
    training_tokens: int
    windows: dict[str, int]


def release_records(spec: ReleaseSpec, paths: ReleasePaths) -> list[ReleaseRecord]:
    out = []
    for layer in spec.layers:
        records, _ = load_records(layer_dir(spec, layer, paths))
        for record in records:
            run = run_info(record)
            arm = (
                "aligned_tied"
                if run["architecture"].startswith("aligned")
                else "stock_topk"
            )
            out.append(
                ReleaseRecord(
                    sae_id=spec.sae_id(layer),
                    arm=arm,
                    run_id=run["run_id"],
                    metrics=flat_metrics(record),
                    training_tokens=spec.training_tokens,
                    windows=record["eval_result_metrics"].get("eval_windows", {}),
                )
            )
    return sorted(out, key=lambda r: (int(r.sae_id.split("_")[1]), r.arm))


def package(spec: ReleaseSpec, paths: ReleasePaths) -> dict[str, Any]:
    """Compact files of the aligned SAEs into the package, and the registry entry
    (written to pretrained_saes.yaml, keeping any other release there)."""
    from saelens_aligned.io.compact import write_compact
    from saelens_aligned.io.pretrained import ReleaseSAE, release_entry

    saes = []
    for record in release_records(spec, paths):
        if record.arm != "aligned_tied":
            continue
        layer = int(record.sae_id.split("_")[1])
        write_compact(
            layer_dir(spec, layer, paths) / "saes" / record.run_id,
            paths.releases_dir / spec.name / f"{record.sae_id}.safetensors",
        )
        saes.append(
            ReleaseSAE(
                id=record.sae_id,
                path=record.sae_id,
                l0=record.metrics["l0"],
                # SAEBench 0.6.0's `explained_variance` measures variance about
                # zero (SAELens #659, fixed in SAELens, not in sae-bench 0.6.0) and
                # exceeds 1 where the residual has a large mean (layer 27): the
                # registry carries the per-token formula SAEBench's paper reports.
                variance_explained=record.metrics["explained_variance_legacy"],
            )
        )
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
    """The docs table of the release, from the committed sweep records."""
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
                "aligned `tied` (ships)" if r.arm == "aligned_tied" else "stock TopK",
                fmt("l0", 1),
                fmt("explained_variance_legacy"),
                fmt("explained_variance"),
                fmt("ce_loss_score"),
                fmt("kl_div_score"),
                fmt("dead_fraction_long"),
                fmt("alignment_mean"),
                f"{r.training_tokens:,}",
                fmt("train_seconds", 0),
            ]
        )
    return (
        tabulate(
            rows,
            headers=[
                "sae_id",
                "SAE",
                "L0",
                "explained variance",
                "SAEBench 0.6.0 `explained_variance`",
                "CE-loss score",
                "KL score",
                f"dead (held-out {spec.dead_window_tokens:,} tokens)",
                "mean a_i",
                "training tokens",
                "train s",
            ],
            tablefmt="github",
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "render"])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.command == "render":
        print(render(), end="")
        return
    import saelens_aligned  # noqa: F401  (registers the architectures)

    paths = ReleasePaths()
    print(json.dumps(build(RELEASE, paths, args.workers), indent=2))


def build(spec: ReleaseSpec, paths: ReleasePaths, workers: int = 1) -> dict[str, Any]:
    """The whole release from scratch (resumable); returns its registry entry."""
    if unfinished_layers(spec, paths):  # caching is the slow part: only if needed
        prepare_activations(spec)
        train_and_evaluate(spec, paths, workers)
    return package(spec, paths)


if __name__ == "__main__":
    main()
