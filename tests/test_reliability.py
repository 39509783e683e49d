"""Crashes, NaNs and interruptions lose nothing."""

from pathlib import Path
from typing import Any

import pytest
import torch
from sae_lens import TrainingSAE
from sae_lens.training.sae_trainer import SAETrainer
from safetensors.torch import load_file

from saelens_aligned.aligned_sae import NonFiniteTrainingError
from saelens_aligned.diagnostics import sae_alignment_scores
from tests.conftest import make_sae, random_batches
from tests.test_aligned_sae import trainer_config


def fixed_batches(d_in: int, n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = random_batches(d_in, seed=seed)
    return [next(gen) for _ in range(n)]


# The TopK family trains with the sparse step by default; both steps must behave.
STEPS = [
    pytest.param({}, id="sparse_step"),
    pytest.param({"sparse_training": False}, id="dense_step"),
]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_input_stops_training_naming_the_step(bad_value, step, tmp_path):
    sae = make_sae("aligned_topk", "tied", **step)
    batches = fixed_batches(sae.cfg.d_in, 6)
    batches[4][3, 2] = bad_value
    trainer = SAETrainer(cfg=trainer_config(6), sae=sae, data_provider=iter(batches))
    good: dict[str, torch.Tensor] = {}

    def remember(*_: Any) -> None:
        good.update({k: v.clone() for k, v in sae.state_dict().items()})

    with pytest.raises(
        NonFiniteTrainingError,
        match=r"training step 4: the input activations \(1 non-finite",
    ):
        for step, batch in enumerate(batches):
            trainer.step(batch)
            trainer.n_training_steps += 1
            if step == 3:
                sae.save_model(tmp_path / "last_good")
                remember()
    # The failed step changed nothing, and the last checkpoint still loads.
    for name, value in sae.state_dict().items():
        torch.testing.assert_close(value, good[name], atol=0, rtol=0)
    reloaded = TrainingSAE.load_from_disk(tmp_path / "last_good")
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())


@pytest.mark.parametrize(
    "architecture,step",
    [
        pytest.param("aligned", {}, id="aligned"),
        pytest.param("aligned_topk", {}, id="aligned_topk-sparse_step"),
        pytest.param(
            "aligned_topk", {"sparse_training": False}, id="aligned_topk-dense_step"
        ),
    ],
)
@pytest.mark.parametrize("alignment", ["tied", "projected"])
def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(
    architecture, step, alignment, tmp_path: Path
):
    steps, stop_at = 40, 17
    batches = fixed_batches(16, steps)

    def new_trainer() -> SAETrainer[Any, Any]:
        return SAETrainer(
            cfg=trainer_config(steps),
            sae=make_sae(architecture, alignment, seed=0, **step),
            data_provider=iter(()),
        )

    def run(trainer: SAETrainer[Any, Any], start: int, stop: int) -> None:
        for batch in batches[start:stop]:
            trainer.step(batch)
            trainer.n_training_steps += 1

    uninterrupted = new_trainer()
    run(uninterrupted, 0, steps)

    interrupted = new_trainer()
    run(interrupted, 0, stop_at)
    interrupted.save_checkpoint("interrupted", base_path=tmp_path)
    resumed = new_trainer()
    resumed.load_trainer_state(tmp_path / "interrupted")
    resumed.sae.load_weights_from_checkpoint(tmp_path / "interrupted")
    run(resumed, stop_at, steps)

    for name, value in uninterrupted.sae.state_dict().items():
        torch.testing.assert_close(
            resumed.sae.state_dict()[name], value, atol=1e-6, rtol=0
        )


@pytest.mark.parametrize("architecture", ["aligned", "aligned_topk"])
def test_bf16_autocast_training_stays_finite_and_aligned(architecture, tmp_path):
    sae = make_sae(architecture, "tied")
    trainer = SAETrainer(
        cfg=trainer_config(500, autocast=True),
        sae=sae,
        data_provider=random_batches(sae.cfg.d_in),
    )
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in sae.parameters())
    scores = sae_alignment_scores(sae)
    assert float((scores - 1).abs().max()) <= 1e-2
    sae.save_inference_model(tmp_path)
    exported = load_file(tmp_path / "sae_weights.safetensors")
    assert {t.dtype for t in exported.values()} == {torch.float32}
