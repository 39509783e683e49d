"""Which sparsity coefficient gives which L0: a quick one-seed calibration.

L1-family architectures (standard, gated, p-annealing and their aligned forms) set
sparsity through a coefficient whose effect on L0 differs by architecture, by
alignment form and by initialisation. Sweeps compare curves at matched L0, so each
curve must span the same L0 range; this trains each (arm, coefficient) once on a
preset's data (an LM preset's cached activations, a synthetic preset's stored
samples) with the sweep's steps, batch and batch order, and prints the L0,
explained variance and dead fraction on held-out activations.

    python -m benchmarks.experiments.calibrate_l0 --preset cpu \\
        standard:l1_coefficient:16 "aligned[tied]:l1_coefficient:2" \\
        "standard[init=tied]:l1_coefficient:2" ...

The preset's activation cache is made first if it does not exist. Each run starts
as the sweep's would (`benchmarks.sweeps.runs.initial_sae`, init controls included) and
trains with the sweep's steps, batch, dead-feature window and learning rate. The
presets' coefficients come from this command; its output is in
benchmarks/results/README.md.
"""

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.runs import RunSpec, initial_sae

HELD_OUT_ROWS = 8192


def parse_spec(spec: str, d_sae: int, seed: int, lr: float) -> RunSpec:
    """`label:param:value` -> the run it names. The label is an arm label of a
    sweep: `standard`, `aligned[tied]`, `gated[init=projected]`,
    `jumprelu[jumprelu_init_threshold=0.5]` (any other `field=value` is an SAE
    config field), with an optional `lr=...` setting (default: the preset's lr)."""
    label, param, value = spec.split(":")
    name, form, init_from = label, None, None
    sae_kwargs: dict[str, Any] = {}
    if "[" in label:
        name, settings = label.rstrip("]").split("[")
        for item in settings.split(","):
            key, _, setting = item.partition("=")
            if key == "init":
                init_from = setting
            elif key == "lr":
                lr = float(setting)
            elif setting:
                sae_kwargs[key] = _parse_value(setting)
            else:
                form = key
    return RunSpec(
        architecture=name,
        alignment=form,
        sparsity_param=param,
        sparsity_value=float(value),
        d_sae=d_sae,
        seed=seed,
        sae_kwargs=tuple(sorted(sae_kwargs.items())),
        init_from=init_from,
        lr=lr,
        label=label,
    )


def _parse_value(text: str) -> Any:
    # YAML reads `3e-6` as a string (its floats need a dot); numbers first.
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return yaml.safe_load(text)


def calibration_data(
    preset: str, out_dir: Path
) -> tuple[Callable[[int], Iterator[torch.Tensor]], torch.Tensor]:
    """(seed -> training batches, held-out activations [tokens, d_in]) of a
    preset, made first where they do not exist yet: an `lm` preset's activation
    cache (its last HELD_OUT_ROWS rows held out), or a `synthetic` preset's stored
    samples (held out: its evaluation samples)."""
    config = load_sweep_config(preset)
    batch = config.train_batch_size_tokens
    if config.kind == "synthetic":
        from benchmarks.sweeps.backends.synthetic import (
            SyntheticBackend,
            stored_batches,
        )

        backend = SyntheticBackend(config, out_dir)
        backend.prepare()
        feature_dict = backend.model.feature_dict
        held_out = backend.eval_samples()
        with torch.no_grad():
            x_held = feature_dict(held_out.rows(torch.arange(len(held_out))).to_dense())
        return (
            lambda seed: stored_batches(
                backend.train_samples(), feature_dict, batch, seed, config.device
            ),
            x_held,
        )
    from benchmarks.sweeps.backends.lm import LMBackend
    from saelens_aligned.pipeline.activations import load_cached_activations

    lm = LMBackend(config, out_dir=out_dir)
    x = load_cached_activations(lm.cache_dir, lm.d_in)
    train, held = x[:-HELD_OUT_ROWS], x[-HELD_OUT_ROWS:]
    return lambda seed: shuffled_batches(train, batch, seed), held


def shuffled_batches(x: torch.Tensor, batch: int, seed: int) -> Iterator[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            yield x[order[start : start + batch]]


def calibrate(
    preset: str, specs: list[str], seed: int = 0, out_dir: Path = Path(".")
) -> Iterator[dict]:
    from sae_lens.training.sae_trainer import SAETrainer

    from saelens_aligned.pipeline.training import in_process_trainer_config

    config = load_sweep_config(preset)
    batches, held = calibration_data(preset, out_dir)
    batch, steps = config.train_batch_size_tokens, config.training_steps
    for spec in specs:
        run = parse_spec(spec, config.d_sae[0], seed, config.lr)
        sae = initial_sae(run, held.shape[1], steps)
        start = time.perf_counter()
        settings = config.training(seed, run.lr)
        trainer_cfg = in_process_trainer_config(
            steps * batch, batch, lr=run.lr, dead_feature_window=settings.dead_window
        )
        SAETrainer(
            cfg=trainer_cfg, sae=sae, data_provider=batches(config.activation_seed)
        ).fit()
        with torch.no_grad():
            acts = sae.encode(held)
            recon = sae.decode(acts)
            residual = ((held - recon) ** 2).sum()
            # About the mean, as SAELens >= 6.45.1 (not SAEBench 0.6.0) computes it.
            variance = ((held - held.mean(0)) ** 2).sum()
        yield {
            "spec": spec,
            "l0": round(float((acts > 0).float().sum(-1).mean()), 1),
            "explained_variance": round(float(1 - residual / variance), 3),
            "dead_fraction": round(float(((acts > 0).sum(0) == 0).float().mean()), 3),
            "train_seconds": round(time.perf_counter() - start, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=".",
        help="folder for a synthetic preset's model and samples (reuse a sweep's)",
    )
    parser.add_argument("specs", nargs="+", help="label:param:value")
    args = parser.parse_args()
    import saelens_aligned  # noqa: F401  (registers the aligned architectures)

    for row in calibrate(args.preset, args.specs, args.seed, Path(args.out)):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
