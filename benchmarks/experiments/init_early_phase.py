"""Early-phase effect of the aligned initialisation (docs/method.md, "Initialisation").

Trains aligned ReLU+L1 (`aligned`, L1 coefficient 3) on the synthetic setup of
benchmarks.experiments.synthetic for a few hundred steps from two starting points:
- `tied-start` (ours): encoder at SAELens' init, decoder its tied partner;
- `saelens-start`: SAELens' init (W_enc = W_dec^T, norm 0.1) made aligned by the
  alignment form itself (for `projected`, the encoder scaled up to norm 10).

    python -m benchmarks.experiments.init_early_phase --steps 300
"""

import argparse
import json
from typing import Any

import torch

import saelens_aligned
from benchmarks.experiments.synthetic import (
    SyntheticSetup,
    build_synthetic_model,
    train_and_eval,
)
from saelens_aligned.aligned_sae import AlignedTrainingSAE


def _saelens_start(sae: AlignedTrainingSAE[Any]) -> None:
    with torch.no_grad():
        norm = sae.cfg.decoder_init_norm or 0.1
        W_enc = sae.W_enc
        W_enc.mul_(norm / W_enc.norm(dim=0, keepdim=True))
        sae.W_dec.copy_(W_enc.T)
    sae.align_()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--l1", type=float, default=3.0)
    parser.add_argument("--alignment", nargs="+", default=["projected", "tied"])
    args = parser.parse_args()
    assert saelens_aligned
    setup = SyntheticSetup(steps=args.steps)
    model = build_synthetic_model(setup)
    original_init = AlignedTrainingSAE.__init__
    for start in ("tied-start", "saelens-start"):

        def init(self: Any, cfg: Any, use_error_term: bool = False) -> None:
            original_init(self, cfg, use_error_term)
            if start == "saelens-start":
                _saelens_start(self)

        AlignedTrainingSAE.__init__ = init  # type: ignore[method-assign]
        for form in args.alignment:
            row = train_and_eval(
                "aligned", setup, model, 0, alignment=form, l1_coefficient=args.l1
            )
            print(json.dumps({"start": start, "steps": args.steps, **row}), flush=True)
    AlignedTrainingSAE.__init__ = original_init  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
