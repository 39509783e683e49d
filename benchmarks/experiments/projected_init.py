"""Which initial scale lets `projected` train: a measurement behind its init.

`projected` keeps a free decoder that Adam moves by about `lr` per coordinate and
step, so the decoder's initial norm sets how far it can travel in a run. Starting
points, each at a_i = 1 (the encoder projected onto the constraint):

- `tied-pair`: SAELens' encoder (norm 0.1) and its tied partner decoder (norm 10);
- `balanced`: encoder = decoder, unit norm;
- `saelens`: SAELens' decoder (norm 0.1), encoder projected onto it (norm 10).

Each trains on the prototype's synthetic data (benchmarks.experiments.synthetic)
for two seeds; the output gives explained variance, MCC, dead latents and the mean
Hungarian-matched decoder cosine between the seeds beside that of two random
initialisations (what an untrained decoder scores).

    python -m benchmarks.experiments.projected_init --steps 1000
"""

import argparse
import json
from typing import Any

import torch
from sae_lens.registry import get_sae_training_class

import saelens_aligned
from benchmarks.experiments.synthetic import (
    SyntheticSetup,
    build_synthetic_model,
    train_and_eval,
)
from benchmarks.stability import match_latents
from saelens_aligned.aligned_sae import AlignedTrainingSAE
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--arch", nargs="+", default=["aligned_topk", "aligned"])
    parser.add_argument("--starts", nargs="+", default=list(STARTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--l1", type=float, default=3.0)
    args = parser.parse_args()
    assert saelens_aligned  # registers the aligned architectures
    setup = SyntheticSetup(steps=args.steps, eval_samples=20_000)
    model = build_synthetic_model(setup)
    for arch in args.arch:
        sae_class, _ = get_sae_training_class(arch)
        for start in args.starts:
            decoders, rows = [], []
            for seed in args.seeds:
                torch.manual_seed(seed)
                sae = sae_class(
                    build_sae_config(
                        arch,
                        setup.hidden_dim,
                        setup.d_sae,
                        shared={"k": args.k, "l1_coefficient": args.l1},
                        alignment="projected",
                    )
                )
                apply_start(sae, start)
                row = train_and_eval(arch, setup, model, seed, override_sae=sae)
                decoders.append(sae.W_dec.detach().clone())
                rows.append(row)
            random_a, random_b = (
                torch.randn(setup.d_sae, setup.hidden_dim) for _ in range(2)
            )
            print(
                json.dumps(
                    {
                        "architecture": arch,
                        "start": start,
                        "steps": args.steps,
                        "explained_variance": [r["explained_variance"] for r in rows],
                        "mcc": [r["mcc"] for r in rows],
                        "dead_latents": [r["dead_latents"] for r in rows],
                        "l0": [r["l0"] for r in rows],
                        "matched_decoder_cos": matched_decoder_cos(*decoders[:2]),
                        "random_decoder_cos": matched_decoder_cos(random_a, random_b),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
