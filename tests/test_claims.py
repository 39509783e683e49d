import math

import pytest

from benchmarks import records
from benchmarks.claims import ClaimRow, claim_table
from benchmarks.pareto import aggregate, interpolate_at_l0, pareto_frontier


def make_record(
    architecture: str,
    sparsity_value: float,
    seed: int,
    alignment: str | None = None,
    base_architecture: str | None = None,
    sparsity_param: str = "k",
    d_sae: int = 64,
    **metrics: float,
) -> dict:
    """A run record in records.py's layout, metrics given by their flat names."""
    base = base_architecture or architecture
    label = f"{architecture}[{alignment}]" if alignment else architecture
    form = f"-{alignment}" if alignment else ""
    point_id = f"{architecture}{form}-{sparsity_param}{sparsity_value:g}-d{d_sae}"
    groups: dict = {}
    for name, value in metrics.items():
        group, key = records.FLAT_METRICS[name]
        groups.setdefault(group, {})[key] = value
    return {
        "eval_type_id": records.EVAL_TYPE_ID,
        "eval_config": {
            "run": {
                "architecture": architecture,
                "alignment": alignment,
                "base_architecture": base,
                "label": label,
                "sparsity_param": sparsity_param,
                "sparsity_value": sparsity_value,
                "d_sae": d_sae,
                "seed": seed,
                "run_id": f"{point_id}-s{seed}",
                "point_id": point_id,
            }
        },
        "eval_result_metrics": groups,
        "eval_result_unstructured": {},
    }


def make_stability(run: dict, shared: list[float]) -> dict:
    """A stability record for the point of `run` with these pair fractions."""
    info = {
        k: v for k, v in records.run_info(run).items() if k not in ("seed", "run_id")
    }
    return {
        "eval_type_id": records.STABILITY_TYPE_ID,
        "eval_config": {"point": info, "threshold": 0.7, "method": "hungarian"},
        "eval_result_metrics": {
            "stability": {
                "shared_fraction_mean": sum(shared) / len(shared),
                "shared_fraction_min": min(shared),
                "shared_fraction_max": max(shared),
                "mean_matched_decoder_cos": 0.5,
                "n_pairs": len(shared),
            }
        },
        "eval_result_details": [
            {"seeds": [0, i + 1], "shared_fraction": f} for i, f in enumerate(shared)
        ],
        "eval_result_unstructured": {},
    }


def test_aggregate_summarises_seeds_of_each_point():
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
    assert (p.l0_mean, p.l0_min, p.l0_max) == (8.0, 7.0, 9.0)
    assert p.l0_sem == pytest.approx(1 / math.sqrt(3))
    assert math.isnan(points[1].sem)


def test_aggregate_separates_alignment_forms_and_skips_nan_seeds():
    runs = [
        make_record("aligned_topk", 8, 0, "tied", "topk", mcc=0.6, l0=8.0),
        make_record("aligned_topk", 8, 1, "tied", "topk", mcc=math.nan, l0=100.0),
        make_record("aligned_topk", 8, 0, "projected", "topk", mcc=0.3, l0=8.0),
        make_record("topk", 8, 0, l0=8.0),  # no mcc at all: no point
    ]
    points = aggregate(runs, "mcc")
    assert [(p.label, p.n, p.n_seeds, p.l0_mean) for p in points] == [
        ("aligned_topk[projected]", 1, 1, 8.0),
        ("aligned_topk[tied]", 1, 2, 8.0),
    ]
    assert points[1].base_architecture == "topk"
    assert aggregate(runs, "ce_loss_score") == []


def test_stability_points_join_the_l0_of_their_runs():
    runs = [make_record("topk", 8, s, l0=l0) for s, l0 in enumerate([7.0, 9.0, 8.0])]
    (point,) = aggregate(runs, "stability", [make_stability(runs[0], [0.2, 0.4, 0.6])])
    assert (point.mean, point.min, point.max, point.n) == (
        pytest.approx(0.4),
        0.2,
        0.6,
        3,
    )
    assert point.sem == pytest.approx(0.2 / math.sqrt(3))
    assert (point.l0_mean, point.n_seeds) == (8.0, 3)


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


def test_interpolation_is_linear_in_log_l0_and_nan_outside():
    curve = aggregate(points_at([(100, 0.8), (10, 0.2)]), "explained_variance")
    assert interpolate_at_l0(curve, math.sqrt(1000)) == pytest.approx(0.5)
    assert interpolate_at_l0(curve, 10) == pytest.approx(0.2)
    assert interpolate_at_l0(curve, 10 / 1.03) == pytest.approx(0.2)  # L0 jitter
    assert math.isnan(interpolate_at_l0(curve, 10 / 1.03, rel_tol=0.0))
    assert math.isnan(interpolate_at_l0(curve, 5))
    assert math.isnan(interpolate_at_l0(curve, 200))
    assert math.isnan(interpolate_at_l0([], 10))


def sweep(
    aligned_ev: float,
    aligned_dead: float,
    base_dead: float = 0.3,
    form: str = "tied",
    architecture: str = "topk",
    spread: float = 0.01,
    ks: tuple[int, ...] = (8, 16, 32),
    ce: bool = True,
) -> list[dict]:
    """Base and aligned runs at the same k, 3 seeds, L0 = k, EV rising with k;
    the aligned EV offset by `aligned_ev`."""
    runs = []
    for i, k in enumerate(ks):
        for seed, jitter in enumerate((-spread, 0.0, spread)):
            ev = 0.5 + 0.1 * i + jitter
            extra = {"ce_loss_score": ev + 0.2} if ce else {}
            runs.append(
                make_record(
                    architecture,
                    k,
                    seed,
                    explained_variance=ev,
                    dead_fraction=base_dead,
                    l0=float(k),
                    **extra,
                )
            )
            extra = {"ce_loss_score": ev + 0.2 + aligned_ev} if ce else {}
            runs.append(
                make_record(
                    f"aligned_{architecture}",
                    k,
                    seed,
                    form,
                    architecture,
                    explained_variance=ev + aligned_ev,
                    dead_fraction=aligned_dead,
                    l0=float(k),
                    **extra,
                )
            )
    return runs


def rows_by_claim(rows: list[ClaimRow], form: str) -> dict[str, ClaimRow]:
    return {r.claim: r for r in rows if r.alignment == form}


def test_claims_confirmed_when_aligned_is_better_beyond_seed_spread():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0)
    by_k = {}
    for r in runs:
        by_k.setdefault(records.run_info(r)["point_id"], r)
    stab = [
        make_stability(r, [0.8, 0.85] if "aligned" in pid else [0.3, 0.35])
        for pid, r in by_k.items()
    ]
    rows = rows_by_claim(claim_table(runs, stab), "tied")
    for claim in (
        "dead features eliminated",
        "reconstruction improved",
        "stability improved",
        "Pareto improvement",
        "composes with TopK",
    ):
        assert rows[claim].verdict == "confirms", (claim, rows[claim].evidence)
    assert rows["composes with BatchTopK"].verdict == "no data"
    assert rows["composes with p-annealing"].verdict == "no data"
    dead = rows["dead features eliminated"]
    assert "dead 0.000 vs 0.300 (base)" in dead.evidence
    assert "3/3 points lower" in dead.evidence and "3 seeds" in dead.evidence
    recon = rows["reconstruction improved"]
    assert recon.n_comparisons == 6  # 3 points x (EV, CE)
    assert "explained_variance 0.700 vs 0.600" in recon.evidence
    assert "shared fraction 0.825 vs 0.325" in rows["stability improved"].evidence
    assert (
        "3/3 aligned points above the base curve" in rows["Pareto improvement"].evidence
    )
    assert "0/3 base points above" in rows["Pareto improvement"].evidence
    # no projected runs at all
    projected = rows_by_claim(claim_table(runs, stab), "projected")
    assert {r.verdict for r in projected.values()} == {"no data"}


def test_claims_refuted_when_aligned_is_worse():
    runs = sweep(aligned_ev=-0.05, aligned_dead=0.5, form="projected")
    rows = rows_by_claim(claim_table(runs, []), "projected")
    assert rows["dead features eliminated"].verdict == "refutes"
    assert rows["reconstruction improved"].verdict == "refutes"
    assert rows["Pareto improvement"].verdict == "refutes"
    assert rows["stability improved"].verdict == "no data"
    assert rows["composes with TopK"].verdict == "refutes"


def test_difference_within_seed_spread_is_mixed_not_confirmed():
    runs = sweep(aligned_ev=0.01, aligned_dead=0.0, spread=0.02)
    rows = rows_by_claim(claim_table(runs, []), "tied")
    assert rows["reconstruction improved"].verdict == "mixed"
    assert "0/6" not in rows["reconstruction improved"].evidence
    assert (
        "0/3 points higher beyond seed spread"
        in rows["reconstruction improved"].evidence
    )
    assert rows["Pareto improvement"].verdict == "mixed"


def test_dead_features_mixed_when_reduced_but_not_eliminated_or_none_to_eliminate():
    reduced = rows_by_claim(claim_table(sweep(0.1, aligned_dead=0.05), []), "tied")
    assert reduced["dead features eliminated"].verdict == "mixed"
    none_in_base = claim_table(sweep(0.1, aligned_dead=0.002, base_dead=0.004), [])
    assert rows_by_claim(none_in_base, "tied")["dead features eliminated"].verdict == (
        "mixed"
    )
    # a composition still confirms on the reconstruction evidence
    assert (
        rows_by_claim(none_in_base, "tied")["composes with TopK"].verdict == "confirms"
    )


def test_metric_nan_everywhere_is_skipped():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, ce=False)
    recon = rows_by_claim(claim_table(runs, []), "tied")["reconstruction improved"]
    assert recon.verdict == "confirms" and recon.n_comparisons == 3
    assert "ce_loss_score" not in recon.evidence


def test_matched_l0_reads_the_base_curve_between_its_points():
    # base ReLU+L1: L0 10 -> EV 0.4, L0 100 -> 0.6 (3 seeds, spread 0.01).
    runs = []
    for coef, l0, ev in ((10.0, 10.0, 0.4), (1.0, 100.0, 0.6)):
        for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
            runs.append(
                make_record(
                    "standard",
                    coef,
                    seed,
                    sparsity_param="l1_coefficient",
                    explained_variance=ev + jitter,
                    l0=l0,
                )
            )
    # aligned at L0 ~31.6 (base reads 0.5 there) and one point out of range.
    for coef, l0, ev in ((3.0, math.sqrt(1000), 0.55), (30.0, 2.0, 0.9)):
        for seed in range(3):
            runs.append(
                make_record(
                    "aligned_standard",
                    coef,
                    seed,
                    "tied",
                    "standard",
                    sparsity_param="l1_coefficient",
                    explained_variance=ev,
                    l0=l0,
                )
            )
    recon = rows_by_claim(claim_table(runs, []), "tied")["reconstruction improved"]
    assert recon.verdict == "confirms" and recon.n_comparisons == 1
    assert "explained_variance 0.550 vs 0.500" in recon.evidence
    assert "1 outside the base L0 range" in recon.evidence
    # no aligned point at the same coefficient as a base point
    dead = rows_by_claim(claim_table(runs, []), "tied")["dead features eliminated"]
    assert dead.verdict == "no data"


def test_some_points_better_some_worse_is_mixed():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0)
    # flip the aligned EV at k=32 to be worse than base
    for r in runs:
        info = records.run_info(r)
        if info["alignment"] and info["sparsity_value"] == 32:
            r["eval_result_metrics"]["reconstruction_quality"][
                "explained_variance"
            ] -= 0.3
    recon = rows_by_claim(claim_table(runs, []), "tied")["reconstruction improved"]
    assert recon.verdict == "mixed"
    assert "2/3 points higher beyond seed spread, 1 lower" in recon.evidence


@pytest.mark.parametrize(
    "architecture, claim",
    [
        ("batchtopk", "composes with BatchTopK"),
        ("panneal", "composes with p-annealing"),
    ],
)
def test_composition_rows_read_only_their_architecture_pair(architecture, claim):
    runs = sweep(0.1, 0.0, architecture=architecture) + sweep(
        -0.1, 0.5, architecture="topk"
    )
    rows = rows_by_claim(claim_table(runs, []), "tied")
    assert rows[claim].verdict == "confirms"
    assert rows[claim].evidence.startswith(f"aligned_{architecture} vs {architecture}:")
    assert rows["composes with TopK"].verdict == "refutes"
    # the pooled claims see both pairs
    assert rows["reconstruction improved"].verdict == "mixed"


def test_claim_table_has_every_claim_for_both_forms():
    rows = claim_table([], [])
    assert len(rows) == 14
    assert {r.verdict for r in rows} == {"no data"}
