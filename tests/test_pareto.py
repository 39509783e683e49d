"""Point summaries and Pareto frontiers (`benchmarks.analysis.pareto`)."""

import math

import pytest

from benchmarks.analysis.pareto import aggregate, pareto_frontier
from tests.record_factory import make_record, make_stability

# ------------------------------------------------------------------ point summaries


def test_aggregate_summarises_seeds_with_a_t_interval():
    runs = [
        make_record("topk", 8, s, explained_variance=ev, l0=l0)
        for s, (ev, l0) in enumerate([(0.5, 7.0), (0.6, 8.0), (0.7, 9.0)])
    ]
    runs.append(make_record("topk", 16, 0, explained_variance=0.9, l0=16.0))
    points = aggregate(runs, "explained_variance")
    assert [(p.label, p.sparsity_value, p.n) for p in points] == [
        ("topk", 8.0, 3),
        ("topk", 16.0, 1),
    ]
    p = points[0]
    assert (p.mean, p.min, p.max) == (pytest.approx(0.6), 0.5, 0.7)
    assert p.sem == pytest.approx(0.1 / math.sqrt(3))
    # n = 3: t(0.975, 2) = 4.303, not the min-max range
    assert p.ci_high - p.mean == pytest.approx(4.3027 * 0.1 / math.sqrt(3), rel=1e-4)
    assert p.ci_low == pytest.approx(2 * p.mean - p.ci_high)
    assert (p.l0_mean, p.l0_min, p.l0_max) == (8.0, 7.0, 9.0)
    assert p.l0_sem == pytest.approx(1 / math.sqrt(3))
    assert math.isnan(points[1].sem) and math.isnan(points[1].ci_low)


def test_aggregate_separates_forms_and_init_controls_and_skips_nan_seeds():
    runs = [
        make_record("aligned_topk", 8, 0, "tied", "topk", mcc=0.6, l0=8.0),
        make_record("aligned_topk", 8, 1, "tied", "topk", mcc=math.nan, l0=100.0),
        make_record("aligned_topk", 8, 0, "projected", "topk", mcc=0.3, l0=8.0),
        make_record("topk", 8, 0, init_from="tied", mcc=0.5, l0=8.0),
        make_record("topk", 8, 0, l0=8.0),  # no mcc at all: no point
    ]
    points = aggregate(runs, "mcc")
    assert [(p.label, p.n, p.n_seeds, p.l0_mean, p.init_from) for p in points] == [
        ("aligned_topk[projected]", 1, 1, 8.0, None),
        ("aligned_topk[tied]", 1, 2, 8.0, None),
        ("topk[init=tied]", 1, 1, 8.0, "tied"),
    ]
    assert points[1].base_architecture == "topk"
    assert aggregate(runs, "ce_loss_score") == []


def test_stability_uses_alive_latents_and_seeds_not_pairs_for_its_interval():
    runs = [make_record("topk", 8, s, l0=l0) for s, l0 in enumerate([7.0, 9.0, 8.0])]
    record = make_stability(runs[0], [0.2, 0.4, 0.6], alive=[0.5, 0.6, 0.7])
    (point,) = aggregate(runs, "stability", [record])
    assert (point.mean, point.min, point.max, point.n) == (
        pytest.approx(0.6),
        0.5,
        0.7,
        3,
    )
    assert point.sem == pytest.approx(0.1 / math.sqrt(3))  # 3 seeds
    assert (point.l0_mean, point.n_seeds) == (8.0, 3)
    (all_latents,) = aggregate(runs, "stability_all_latents", [record])
    assert all_latents.mean == pytest.approx(0.4)
    # without alive masks the headline falls back to all latents
    (fallback,) = aggregate(runs, "stability", [make_stability(runs[0], [0.2, 0.4])])
    assert fallback.mean == pytest.approx(0.3)
    assert aggregate(runs, "stability_enc_dec", [record]) == []  # tied-like: None
    # records from before the decoder criterion hold the enc+dec one only
    legacy = make_stability(runs[0], [0.2, 0.4])
    for pair in legacy["eval_result_details"]:
        pair["shared_fraction"] = pair.pop("shared_fraction_decoder") / 2
    assert aggregate(runs, "stability", [legacy]) == []
    (enc_dec,) = aggregate(runs, "stability_enc_dec", [legacy])
    assert enc_dec.mean == pytest.approx(0.15)


def points_at(values: list[tuple[float, float]], label: str = "topk"):
    return [
        make_record(label, i + 1, 0, explained_variance=v, dead_fraction=v, l0=l0)
        for i, (l0, v) in enumerate(values)
    ]


def test_pareto_frontier_keeps_undominated_points():
    runs = points_at([(10, 0.5), (20, 0.7), (15, 0.4), (30, 0.7), (40, 0.9)])
    frontier = pareto_frontier(aggregate(runs, "explained_variance"))
    assert [(p.l0_mean, p.mean) for p in frontier] == [(10, 0.5), (20, 0.7), (40, 0.9)]
    lower = pareto_frontier(aggregate(runs, "dead_fraction"), higher_is_better=False)
    assert [(p.l0_mean, p.mean) for p in lower] == [(10, 0.5), (15, 0.4)]
