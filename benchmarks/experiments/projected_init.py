"""Which initial scale lets `projected` train: a measurement behind its init.

`projected` keeps a free decoder that Adam moves by about `lr` per coordinate and
step, so the decoder's initial norm sets how far it can travel in a run. Starting
points, each at a_i = 1 (the encoder projected onto the constraint):

- `tied-pair`: SAELens' encoder (norm 0.1) and its tied partner decoder (norm 10);
- `balanced`: encoder = decoder, unit norm;
- `saelens`: SAELens' decoder (norm 0.1), encoder projected onto it (norm 10).

Each trains on the prototype's synthetic data (benchmarks.experiments.synthetic;
samples drawn once, the same batches in the same order for every run) for two
seeds; the output gives explained variance, MCC, dead latents and the mean
Hungarian-matched decoder cosine between the seeds beside that of two random
initialisations (what an untrained decoder scores).

    python -m benchmarks.experiments.projected_init --steps 600
"""

import argparse
import json
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class

import saelens_aligned
from benchmarks.experiments.synthetic import SyntheticSetup, build_synthetic_model
from saelens_aligned.aligned_sae import AlignedTrainingSAE
from saelens_aligned.latent_matching import match_latents
from saelens_aligned.sae_config import build_sae_config

STARTS = ("tied-pair", "balanced", "saelens")


@torch.no_grad()
def apply_start(sae: AlignedTrainingSAE[Any], start: str) -> None:
    """Overwrite `sae`'s weights with one of STARTS, then align."""
    W_dec = sae.W_dec.data
    unit_FD = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if start == "tied-pair":
        enc = unit_FD.T * 0.1
        W_dec.copy_(unit_FD * 10)
    elif start == "balanced":
        enc = unit_FD.T.clone()
        W_dec.copy_(unit_FD)
    elif start == "saelens":
        W_dec.copy_(unit_FD * 0.1)
        enc = unit_FD.T * 10
    else:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}.")
    sae.W_enc.data.copy_(enc)
    sae.align_()


def matched_decoder_cos(dec_a: torch.Tensor, dec_b: torch.Tensor) -> float:
    return float(match_latents(dec_a.numpy(), dec_b.numpy()).cos.mean())


def train_from_start(
    arch: str,
    start: str | None,
    form: str | None,
    seed: int,
    setup: SyntheticSetup,
    model: Any,
    samples: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Train one `projected` SAE from `start` on the stored samples (the same
    batches in the same order for every start and seed) and evaluate it."""
    from sae_lens.synthetic import eval_sae_on_synthetic_data
    from sae_lens.training.sae_trainer import SAETrainer

    from benchmarks.sweeps.backends.synthetic import ReplayedActivations, stored_batches
    from saelens_aligned.pipeline.training import in_process_trainer_config

    sae_class, _ = get_sae_training_class(arch)
    torch.manual_seed(seed)
    sae = sae_class(
        build_sae_config(
            arch,
            setup.hidden_dim,
            setup.d_sae,
            shared={"k": args.k, "l1_coefficient": args.l1},
            **({"alignment": form} if form else {}),
        )
    )
    if start is not None:  # aligned: the start; a stock base keeps SAELens' init
        apply_start(sae, start)
    batches = stored_batches(samples, model.feature_dict, setup.batch_size, 0, "cpu")
    cfg = in_process_trainer_config(
        setup.steps * setup.batch_size,
        setup.batch_size,
        lr=setup.lr,
        dead_feature_window=setup.steps // 4,
    )
    SAETrainer(cfg=cfg, sae=sae, data_provider=batches).fit()
    eval_samples = samples.__class__.draw(model, setup.eval_samples, 10_000)
    result = eval_sae_on_synthetic_data(
        sae=sae,
        feature_dict=model.feature_dict,
        activations_generator=ReplayedActivations(eval_samples, "cpu"),  # type: ignore[arg-type]
        num_samples=setup.eval_samples,
        batch_size=setup.batch_size,
    )
    return {
        "sae": sae,
        # SAELens' synthetic eval: about the mean (its ExplainedVarianceCalculator).
        "explained_variance": result.explained_variance,
        "mcc": result.mcc,
        "dead_latents": int(result.dead_latents),
        "l0": result.sae_l0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--arch", nargs="+", default=["aligned_topk", "aligned"])
    parser.add_argument("--starts", nargs="+", default=list(STARTS))
    parser.add_argument(
        "--forms", nargs="+", default=["projected"], help="alignment forms to start"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--l1", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    assert saelens_aligned  # registers the aligned architectures
    from benchmarks.sweeps.backends.synthetic import StoredSamples

    setup = SyntheticSetup(steps=args.steps, eval_samples=20_000, lr=args.lr)
    model = build_synthetic_model(setup)
    samples = StoredSamples.draw(model, setup.steps * setup.batch_size, 0)
    aligned = set(saelens_aligned.aligned_architectures())
    arms = [
        (arch, start, form)
        for arch in args.arch
        for form in (args.forms if arch in aligned else [None])
        for start in (args.starts if arch in aligned else [None])
    ]
    for arch, start, form in arms:
        rows = [
            train_from_start(arch, start, form, seed, setup, model, samples, args)
            for seed in args.seeds
        ]
        decoders = [r.pop("sae").W_dec.detach().clone() for r in rows]
        random_a, random_b = (
            torch.randn(setup.d_sae, setup.hidden_dim) for _ in range(2)
        )
        summary = {k: [r[k] for r in rows] for k in rows[0]}
        print(
            json.dumps(
                {
                    "architecture": arch,
                    "alignment": form,
                    "start": start,
                    "steps": args.steps,
                    "lr": args.lr,
                    **summary,
                    "matched_decoder_cos": matched_decoder_cos(*decoders[:2]),
                    "random_decoder_cos": matched_decoder_cos(random_a, random_b),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
