"""Aligned vs base on SAELens' synthetic data (ground truth known).

The setup reproduces the prototype of docs/method.md: 2048 ground-truth
features in 128 dimensions, Zipfian firing (exponent 0.5, p from 5e-4 to 0.4),
magnitudes 4.5 +- 0.5, d_sae 2048, batches of 1024, lr 3e-4, SAELens defaults
otherwise; metrics from `eval_sae_on_synthetic_data`.

    python -m benchmarks.experiments.synthetic --arch topk aligned_topk --k 20 --seeds 0 1

p-annealing (`panneal`, `aligned_panneal`) anneals over the whole run: its
`p_anneal_total_steps` is set to `--steps` and `anneal_start` to `--anneal-start`
(default a tenth of the run); the other p-anneal fields keep their SAEBench defaults.
`--l1` takes several values, to sweep the coefficient and match L0 across
architectures:

    python -m benchmarks.experiments.synthetic --arch standard panneal aligned aligned_panneal \
        --alignment tied --l1 3 10 --steps 1500 --seeds 0
"""

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens.config import LoggingConfig
from sae_lens.synthetic import (
    SyntheticModel,
    SyntheticModelConfig,
    ZipfianFiringProbabilityConfig,
)
from sae_lens.synthetic.synthetic_sae_runner import (
    SyntheticSAERunner,
    SyntheticSAERunnerConfig,
)

import saelens_aligned
from saelens_aligned.diagnostics import sae_alignment_summary
from saelens_aligned.sae_config import build_sae_config


@dataclass
class SyntheticSetup:
    """The ground-truth model and training budget.

    Args:
        num_features: ground-truth features.
        hidden_dim: activation width (the SAE's d_in).
        d_sae: SAE latents.
        steps: training steps.
        batch_size: samples per step.
        lr: Adam learning rate.
        eval_samples: samples for the final ground-truth evaluation.
        model_seed: seed of the synthetic model (shared by every SAE).
        autocast: train the SAE under bf16 autocast (SAELens' `autocast_sae`).
    """

    num_features: int = 2048
    hidden_dim: int = 128
    d_sae: int = 2048
    steps: int = 2500
    batch_size: int = 1024
    lr: float = 3e-4
    eval_samples: int = 50_000
    model_seed: int = 42
    autocast: bool = False


def build_synthetic_model(setup: SyntheticSetup) -> SyntheticModel:
    cfg = SyntheticModelConfig(
        num_features=setup.num_features,
        hidden_dim=setup.hidden_dim,
        firing_probability=ZipfianFiringProbabilityConfig(
            exponent=0.5, max_prob=0.4, min_prob=5e-4
        ),
        mean_firing_magnitudes=4.5,
        std_firing_magnitudes=0.5,
        seed=setup.model_seed,
    )
    return SyntheticModel(cfg)


def train_and_eval(
    architecture: str,
    setup: SyntheticSetup,
    model: SyntheticModel,
    seed: int,
    override_sae: Any = None,
    **sae_kwargs: Any,
) -> dict[str, Any]:
    """Train one SAE with SyntheticSAERunner and return its metrics as a dict.
    `override_sae` trains that SAE (built by the caller) instead of a new one."""
    torch.manual_seed(seed)
    shared = sae_kwargs.pop("shared", None)
    sae_cfg = (
        override_sae.cfg
        if override_sae is not None
        else build_sae_config(
            architecture,
            setup.hidden_dim,
            setup.d_sae,
            training_steps=setup.steps,
            shared=shared,
            **sae_kwargs,
        )
    )
    runner_cfg = SyntheticSAERunnerConfig(
        synthetic_model=model.cfg,
        sae=sae_cfg,
        training_samples=setup.steps * setup.batch_size,
        batch_size=setup.batch_size,
        lr=setup.lr,
        eval_samples=setup.eval_samples,
        output_path=None,
        checkpoint_path=None,
        logger=LoggingConfig(log_to_wandb=False),
        autocast_sae=setup.autocast,
    )
    start = time.perf_counter()
    result = SyntheticSAERunner(
        runner_cfg, override_synthetic_model=model, override_sae=override_sae
    ).run()
    seconds = time.perf_counter() - start
    ev = result.final_eval
    assert ev is not None
    summary = sae_alignment_summary(result.sae)
    return {
        "architecture": architecture,
        "seed": seed,
        **{k: v for k, v in sae_kwargs.items()},
        "autocast": setup.autocast,
        "l0": ev.sae_l0,
        "true_l0": ev.true_l0,
        # SAELens' synthetic eval: about the mean (its ExplainedVarianceCalculator).
        "explained_variance": ev.explained_variance,
        "mcc": ev.mcc,
        "uniqueness": ev.uniqueness,
        "dead_latents": ev.dead_latents,
        "shrinkage": ev.shrinkage,
        "alignment_mean": summary.mean,
        "alignment_max_abs_deviation": summary.max_abs_deviation_from_one,
        "train_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["topk", "aligned_topk"])
    parser.add_argument("--alignment", nargs="+", default=["tied", "projected"])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--l1", nargs="+", type=float, default=[None])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=SyntheticSetup.steps)
    parser.add_argument(
        "--anneal-start",
        type=int,
        default=None,
        help="p-annealing: first step at which p changes (default steps // 10)",
    )
    parser.add_argument("--eval-samples", type=int, default=SyntheticSetup.eval_samples)
    parser.add_argument("--num-features", type=int, default=SyntheticSetup.num_features)
    parser.add_argument("--d-sae", type=int, default=SyntheticSetup.d_sae)
    parser.add_argument("--batch-size", type=int, default=SyntheticSetup.batch_size)
    parser.add_argument("--out", default=None, help="JSON-lines file to append to")
    parser.add_argument(
        "--autocast", action="store_true", help="train under bf16 autocast"
    )
    parser.add_argument(
        "--sparse-training",
        choices=["default", "true", "false"],
        default="default",
        help="sparse_training of TopK-family SAEs (default: the device's default)",
    )
    args = parser.parse_args()
    assert saelens_aligned  # registers the aligned architectures

    setup = SyntheticSetup(
        steps=args.steps,
        eval_samples=args.eval_samples,
        num_features=args.num_features,
        d_sae=args.d_sae,
        batch_size=args.batch_size,
        autocast=args.autocast,
    )
    model = build_synthetic_model(setup)
    aligned = set(saelens_aligned.aligned_architectures())
    for arch in args.arch:
        forms = args.alignment if arch in aligned else [None]
        for form in forms:
            for l1 in args.l1:
                for seed in args.seeds:
                    kwargs: dict[str, Any] = {
                        "shared": {"k": args.k, "l1_coefficient": l1}
                        if l1 is not None
                        else {"k": args.k}
                    }
                    if form is not None:
                        kwargs["alignment"] = form
                    if args.sparse_training != "default":
                        kwargs["sparse_training"] = args.sparse_training == "true"
                    if args.anneal_start is not None:
                        kwargs["shared"]["anneal_start"] = args.anneal_start
                    row = train_and_eval(arch, setup, model, seed, **kwargs)
                    line = json.dumps(row)
                    print(line, flush=True)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(line + "\n")


if __name__ == "__main__":
    main()
