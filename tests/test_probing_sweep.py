"""The probing evals inside a sweep: records carry their groups, the shared work
folder makes later SAEs reuse model activations, and the feature-quality table
renders from the records."""

import math
from dataclasses import replace

import pytest

from benchmarks.records.layout import flat_metrics, load_records, run_info
from benchmarks.reports.feature_quality import render
from benchmarks.sweeps.config import ArchitectureSweep
from benchmarks.sweeps.presets import load_sweep_config
from benchmarks.sweeps.sweep import run_sweep


@pytest.fixture(scope="module")
def probing_sweep(tmp_path_factory):
    config = load_sweep_config("ci")
    config = replace(
        config,
        name="probing-test",
        seeds=[0, 1],
        architectures=[
            ArchitectureSweep("topk", "k", [8]),
            ArchitectureSweep("aligned_topk", "k", [8], alignments=["tied"]),
        ],
        eval=replace(
            config.eval,
            meta_structure=False,
            dead_window_tokens=0,
            sparse_probing=True,
            sae_probes=True,
            tpp=True,
            probing_size="tiny",
        ),
    )
    out = tmp_path_factory.mktemp("probing") / "sweep"
    run_sweep(config, out, report=False)
    return out


def test_every_record_carries_the_three_probing_groups(probing_sweep):
    runs, _ = load_records(probing_sweep)
    assert len(runs) == 4
    for record in runs:
        values = flat_metrics(record)
        for name in ("sparse_probing_top1", "sae_probes_top1"):
            assert math.isfinite(values[name]), (name, run_info(record)["run_id"])
        # tiny TPP ablates fewer latents than the headline's 20
        tpp = record["eval_result_metrics"]["tpp"]
        totals = [v for k, v in tpp.items() if k.endswith("_total_metric")]
        assert totals and all(math.isfinite(v) for v in totals)
        for name in ("sparse_probing_top1", "sparse_probing_llm_top1"):
            assert 0 <= values[name] <= 1
        skipped = record["eval_result_unstructured"]["skipped_evals"]
        assert not {"sparse_probing", "sae_probes", "tpp"} & set(skipped)
        assert "correlated labels" in skipped["scr"]
    reused = [
        r["eval_result_metrics"]["sparse_probing"]["activations_reused"] for r in runs
    ]
    assert sum(reused) >= len(runs) - 1  # only the first SAE made activations


def test_the_feature_quality_table_renders_from_the_sweep(probing_sweep):
    text = render(probing_sweep)
    assert "aligned_topk `tied`" in text and "topk (stock base)" in text
    assert "sparse probing top-1" in text
