"""Which sparsity coefficient gives which L0: a quick one-seed calibration.

L1-family architectures (standard, gated, p-annealing and their aligned forms) set
sparsity through a coefficient whose effect on L0 differs by architecture and by
alignment form. Sweeps compare curves at matched L0, so each curve must span the
same L0 range; this trains each (architecture, coefficient) once on a sweep's
cached activations, with the sweep's steps, batch and learning rate, and prints
the L0, explained variance and dead fraction on held-out cached rows.

    python -m benchmarks.calibrate_l0 --preset cpu \\
        standard:l1_coefficient:16 aligned[tied]:l1_coefficient:2 ...

Run the preset's sweep once first (or the demo): the activation cache must exist.
The `cpu` preset's coefficients come from this command; its output is in
benchmarks/results/README.md.
"""

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from benchmarks.config import RunSpec, load_sweep_config

HELD_OUT_ROWS = 8192


def parse_spec(spec: str) -> tuple[str, str | None, str, float]:
    """`architecture[form]:param:value` -> (architecture, form, param, value)."""
    name, param, value = spec.split(":")
    form = None
    if "[" in name:
        name, form = name.rstrip("]").split("[")
    return name, form, param, float(value)


def cached_activations(preset: str) -> torch.Tensor:
    """The preset's activation cache as one [tokens, d_in] tensor."""
    import datasets

    from benchmarks.lm_backend import LMBackend
    from saelens_aligned.demo import activation_cache_dir, cache_key, is_complete_cache

    config = load_sweep_config(preset)
    backend = LMBackend(config, out_dir=Path("."))
    path = activation_cache_dir(backend.inputs, cache_key(backend.inputs, backend.d_in))
    if not is_complete_cache(path):
        raise SystemExit(f"No activation cache at {path}: run the sweep once first.")
    dataset = datasets.load_from_disk(str(path))
    dataset.set_format("torch")
    return dataset[dataset.column_names[0]].reshape(-1, backend.d_in).float()


def shuffled_batches(x: torch.Tensor, batch: int, seed: int) -> Iterator[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            yield x[order[start : start + batch]]


def calibrate(preset: str, specs: list[str], seed: int = 0) -> Iterator[dict]:
    from sae_lens.registry import get_sae_training_class
    from sae_lens.training.sae_trainer import SAETrainer

    from benchmarks.perf import plain_trainer_config

    config = load_sweep_config(preset)
    x = cached_activations(preset)
    train, held = x[:-HELD_OUT_ROWS], x[-HELD_OUT_ROWS:]
    batch, steps = config.train_batch_size_tokens, config.training_steps
    for spec in specs:
        architecture, form, param, value = parse_spec(spec)
        run = RunSpec(architecture, form, param, value, config.d_sae[0], seed)
        sae_class, config_class = get_sae_training_class(architecture)
        torch.manual_seed(seed)
        sae = sae_class(config_class(d_in=x.shape[1], **run.sae_config_kwargs(steps)))
        start = time.perf_counter()
        trainer_cfg = plain_trainer_config(steps * batch, batch, lr=config.lr)
        SAETrainer(
            cfg=trainer_cfg, sae=sae, data_provider=shuffled_batches(train, batch, seed)
        ).fit()
        with torch.no_grad():
            acts = sae.encode(held)
            recon = sae.decode(acts)
            residual = ((held - recon) ** 2).sum()
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
    parser.add_argument("specs", nargs="+", help="architecture[form]:param:value")
    args = parser.parse_args()
    import saelens_aligned  # noqa: F401  (registers the aligned architectures)

    for row in calibrate(args.preset, args.specs, args.seed):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
