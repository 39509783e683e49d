"""Aligned SAEs log their alignment to W&B, which works offline."""

from typing import Any

import wandb
from sae_lens.training.sae_trainer import SAETrainer

from tests.conftest import make_sae, random_batches
from tests.test_aligned_sae import trainer_config


def test_training_logs_alignment_metrics_and_histogram_to_offline_wandb(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    sae = make_sae("aligned_topk", "tied")
    cfg = trainer_config(6)
    cfg.logger.log_to_wandb = True
    cfg.logger.wandb_log_frequency = 1
    cfg.logger.eval_every_n_wandb_logs = 2
    run = wandb.init(project="saelens-aligned-test", dir=str(tmp_path))
    # wandb.init rebinds wandb.log to the run's; record what reaches it.
    logged: list[dict[str, Any]] = []
    real_log = wandb.log

    def recording_log(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        logged.append(dict(data))
        real_log(data, *args, **kwargs)

    monkeypatch.setattr(wandb, "log", recording_log)
    try:
        SAETrainer(cfg=cfg, sae=sae, data_provider=random_batches(sae.cfg.d_in)).fit()
    finally:
        run.finish()
    keys = set().union(*logged)
    assert "metrics/alignment/mean" in keys
    assert "metrics/alignment/max_abs_deviation_from_one" in keys
    histograms = [
        d["weights/alignment_scores"] for d in logged if "weights/alignment_scores" in d
    ]
    assert histograms and isinstance(histograms[0], wandb.Histogram)
    means = [
        d["metrics/alignment/mean"] for d in logged if "metrics/alignment/mean" in d
    ]
    assert all(abs(m - 1) < 1e-5 for m in means)
    assert list(tmp_path.rglob("*.wandb")), "no offline W&B run was written"
