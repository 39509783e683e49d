"""The feature-quality table: per-arm intervals, paired-by-seed differences
against the stock base and the fair control, BH-corrected."""

import json
import math

from benchmarks.reports import feature_quality
from benchmarks.reports.feature_quality import paired_differences, per_run_table, render
from tests.record_factory import make_record


def write_records(folder, records):
    (folder / "records").mkdir(parents=True)
    for i, record in enumerate(records):
        (folder / "records" / f"run{i}.json").write_text(json.dumps(record))


def arm(architecture, offset, alignment=None, init_from=None, noise=0.0):
    return [
        make_record(
            architecture,
            32,
            seed,
            alignment=alignment,
            init_from=init_from,
            base_architecture="topk",
            l0=32.0,
            sparse_probing_top1=0.70 + offset + noise * seed,
            sparse_probing_llm_top1=0.80,
            tpp_total=0.05 + offset * seed,
            sparse_probing_seconds=40.0,
        )
        for seed in range(3)
    ]


def test_differences_are_paired_by_seed_against_stock_and_the_fair_control(tmp_path):
    write_records(
        tmp_path,
        arm("topk", 0.0, noise=0.05)
        + arm("topk", 0.0, init_from="tied")  # the collapsed diagnostic
        + arm("topk", 0.02, init_from="projected", noise=0.05)
        + arm("aligned_topk", 0.1, alignment="tied", noise=0.05),
    )
    runs = per_run_table(tmp_path)
    assert len(runs) == 12
    differences = {
        (d.metric, d.reference): d
        for d in paired_differences(runs)
        if d.metric.startswith("sparse probing top-1")
    }
    assert set(differences) == {
        ("sparse probing top-1 (local sets)", "topk (stock base)"),
        (
            "sparse probing top-1 (local sets)",
            "topk from the balanced init (fair control)",
        ),
    }
    stock = differences[("sparse probing top-1 (local sets)", "topk (stock base)")]
    # The seed noise is shared by both arms, so the paired difference is exact.
    assert math.isclose(stock.mean, 0.1) and stock.high - stock.low < 1e-9
    assert stock.outcome == "better" and stock.p_adjusted <= feature_quality.FDR
    text = render(tmp_path)
    assert "diagnostic" in text and "0.800" in text  # the residual baseline
    assert "from the `tied` init (diagnostic)" not in text.split("aligned -")[1]
    # TPP stays, marked as failing the reliability study, which the page states
    # before any table.
    assert text.startswith("In Chanin 2026 (arXiv 2605.18229), sae-probes'")
    assert "TPP, 20 latents (local sets; fails Chanin 2026's reliability tests)" in text


def test_an_empty_folder_says_so(tmp_path):
    (tmp_path / "records").mkdir()
    assert "No run records" in render(tmp_path)
