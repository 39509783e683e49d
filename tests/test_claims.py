import math

import pytest
from scipy import stats

from benchmarks import claims, records
from benchmarks.claims import (
    ClaimRow,
    Estimate,
    claim_table,
    compose_verdict,
    degenerate_points,
    difference_interval,
)
from benchmarks.pareto import aggregate, interpolate_at_l0, pareto_frontier


def make_record(
    architecture: str,
    sparsity_value: float,
    seed: int,
    alignment: str | None = None,
    base_architecture: str | None = None,
    sparsity_param: str = "k",
    d_sae: int = 64,
    init_from: str | None = None,
    lr: float | None = None,
    **metrics: float,
) -> dict:
    """A run record in records.py's layout, metrics given by their flat names."""
    base = base_architecture or architecture
    label = architecture
    if alignment:
        label = f"{architecture}[{alignment}]"
    elif init_from:
        label = f"{architecture}[init={init_from}]"
    form = f"-{alignment}" if alignment else (f"-init{init_from}" if init_from else "")
    point_id = f"{architecture}{form}-{sparsity_param}{sparsity_value:g}-d{d_sae}"
    if lr is not None:
        point_id += f"-lr{lr:g}"
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
                "init_from": init_from,
                "base_architecture": base,
                "label": label,
                "sparsity_param": sparsity_param,
                "sparsity_value": sparsity_value,
                "d_sae": d_sae,
                "seed": seed,
                "lr": lr,
                "run_id": f"{point_id}-s{seed}",
                "point_id": point_id,
            }
        },
        "eval_result_metrics": groups,
        "eval_result_unstructured": {},
    }


def make_stability(
    run: dict,
    shared: list[float],
    alive: list[float] | None = None,
    chance: float | None = 0.01,
) -> dict:
    """A stability record for the point of `run`: per-pair decoder fractions over
    all latents (`shared`) and over alive latents (`alive`)."""
    info = {
        k: v for k, v in records.run_info(run).items() if k not in ("seed", "run_id")
    }
    details = [
        {
            "seeds": [0, i + 1],
            "shared_fraction_decoder": f,
            "shared_fraction_decoder_alive": None if alive is None else alive[i],
            "shared_fraction_enc_dec": None,
            "mean_matched_decoder_cos": 0.5,
        }
        for i, f in enumerate(shared)
    ]
    headline = shared if alive is None else alive
    return {
        "eval_type_id": records.STABILITY_TYPE_ID,
        "eval_config": {"point": info, "threshold": 0.7, "method": "hungarian"},
        "eval_result_metrics": {
            "stability": {
                "shared_fraction_mean": sum(headline) / len(headline),
                "shared_fraction_min": min(headline),
                "shared_fraction_max": max(headline),
                "mean_matched_decoder_cos": 0.5,
                "n_pairs": len(shared),
                "chance_shared_fraction_decoder": chance,
                "chance_shared_fraction_enc_dec": None,
            }
        },
        "eval_result_details": details,
        "eval_result_unstructured": {},
    }


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


def test_interpolation_is_linear_in_log_l0_and_nan_outside():
    curve = aggregate(points_at([(100, 0.8), (10, 0.2)]), "explained_variance")
    assert interpolate_at_l0(curve, math.sqrt(1000)) == pytest.approx(0.5)
    assert interpolate_at_l0(curve, 10) == pytest.approx(0.2)
    assert interpolate_at_l0(curve, 10 / 1.03) == pytest.approx(0.2)  # L0 jitter
    assert math.isnan(interpolate_at_l0(curve, 10 / 1.03, rel_tol=0.0))
    assert math.isnan(interpolate_at_l0(curve, 5))
    assert math.isnan(interpolate_at_l0(curve, 200))
    assert math.isnan(interpolate_at_l0([], 10))


def test_interpolation_reads_interval_bounds_too():
    runs = [
        make_record("topk", k, s, explained_variance=ev + j, l0=float(k))
        for k, ev, spread in ((10, 0.2, 0.01), (100, 0.8, 0.03))
        for s, j in enumerate((-spread, 0.0, spread))
    ]
    curve = aggregate(runs, "explained_variance")
    mid = math.sqrt(1000)
    for attr in ("sem", "ci_low", "ci_high"):
        ends = [getattr(p, attr) for p in curve]
        assert interpolate_at_l0(curve, mid, attr) == pytest.approx(sum(ends) / 2)


# ------------------------------------------------------------------- comparisons


def test_difference_interval_is_welchs():
    a, b = [1.0, 2.0, 3.5], [0.0, 0.2, 0.1, 0.4]

    def estimate(x):
        return Estimate(sum(x) / len(x), stats.sem(x), len(x))

    diff, low, high = difference_interval(estimate(a), estimate(b))
    expected = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (low, high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert diff == pytest.approx((low + high) / 2)
    # one seed: no interval, so never better or worse
    assert math.isnan(difference_interval(Estimate(1, math.nan, 1), estimate(b))[1])
    assert claims.compare("mcc", Estimate(9, math.nan, 1), estimate(b)).outcome == (
        "tie"
    )


def test_comparison_direction_follows_the_metric():
    hi, lo = Estimate(0.5, 0.01, 3), Estimate(0.1, 0.01, 3)
    assert claims.compare("explained_variance", hi, lo).outcome == "better"
    assert claims.compare("dead_fraction", hi, lo).outcome == "worse"
    assert claims.compare("dead_fraction_long", lo, hi).outcome == "better"


# ----------------------------------------------------------------- claim verdicts


def sweep(
    aligned_ev: float,
    aligned_dead: float,
    base_dead: float = 0.3,
    form: str = "tied",
    architecture: str = "topk",
    spread: float = 0.01,
    ks: tuple[int, ...] = (8, 16, 32),
    seeds: int = 3,
    ce: bool = True,
    control_ev: float | None = None,
    control_dead: float | None = None,
) -> list[dict]:
    """Stock base and aligned runs (and, with `control_ev`, the init control) at
    the same k, `seeds` seeds, L0 = k, EV rising with k; the aligned EV offset by
    `aligned_ev`, the control's by `control_ev`."""
    jitters = (-spread, 0.0, spread, -spread / 2, spread / 2)[:seeds]
    arms = [(architecture, None, None, 0.0, base_dead)]
    arms.append((f"aligned_{architecture}", form, None, aligned_ev, aligned_dead))
    if control_ev is not None:
        dead = base_dead if control_dead is None else control_dead
        arms.append((architecture, None, form, control_ev, dead))
    runs = []
    for i, k in enumerate(ks):
        for seed, jitter in enumerate(jitters):
            for arch, alignment, init_from, offset, dead in arms:
                ev = 0.5 + 0.1 * i + jitter + offset
                extra = {"ce_loss_score": ev + 0.2} if ce else {}
                runs.append(
                    make_record(
                        arch,
                        k,
                        seed,
                        alignment,
                        architecture,
                        init_from=init_from,
                        explained_variance=ev,
                        dead_fraction=dead,
                        l0=float(k),
                        l2_ratio=0.8,
                        **extra,
                    )
                )
    return runs


def rows_by_claim(rows: list[ClaimRow], form: str) -> dict[str, ClaimRow]:
    return {r.claim: r for r in rows if r.alignment == form}


def stability_for(runs: list[dict], aligned: list[float], other: list[float]):
    first = {}
    for r in runs:
        first.setdefault(records.run_info(r)["point_id"], r)
    return [
        make_stability(r, [0.0] * 3, alive=aligned if "aligned" in pid else other)
        for pid, r in first.items()
    ]


def test_claims_confirmed_against_both_references_beyond_the_interval():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, control_ev=0.0)
    stab = stability_for(runs, [0.8, 0.85, 0.82], [0.3, 0.35, 0.32])
    rows = rows_by_claim(claim_table(runs, stab), "tied")
    for claim in (
        "dead features eliminated",
        "reconstruction improved",
        "stability improved",
        "Pareto improvement",
        "composes with TopK",
    ):
        assert rows[claim].verdict_base == "confirms", (
            claim,
            rows[claim].evidence_base,
        )
        assert rows[claim].verdict_control == "confirms", (
            claim,
            rows[claim].evidence_control,
        )
    assert rows["ground truth improved"].verdict_base == "no data"
    assert rows["composes with BatchTopK"].verdict_base == "no data"
    dead = rows["dead features eliminated"]
    assert "dead_fraction 0.000 vs 0.300 (stock base)" in dead.evidence_base
    assert "(init control)" in dead.evidence_control
    assert "3/3 points lower" in dead.evidence_base and "3 seeds" in dead.evidence_base
    recon = rows["reconstruction improved"]
    assert recon.n_comparisons_base == recon.n_comparisons_control == 6  # 3 x (EV, CE)
    assert "explained_variance 0.700 vs 0.600" in recon.evidence_base
    stab_row = rows["stability improved"]
    assert "shared fraction 0.823 vs 0.323" in stab_row.evidence_base
    assert "chance, untrained pair, all latents: 0.010" in stab_row.evidence_base
    pareto_row = rows["Pareto improvement"]
    assert "explained_variance: 6/6 comparisons" in pareto_row.evidence_base
    projected = rows_by_claim(claim_table(runs, stab), "projected")
    assert {r.verdict_base for r in projected.values()} == {"no data"}


def test_each_claim_is_judged_against_the_stock_base_and_the_init_control():
    # the start, not the constraint: the control is as good as the aligned arm
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, control_ev=0.1, control_dead=0.0)
    rows = rows_by_claim(claim_table(runs), "tied")
    recon = rows["reconstruction improved"]
    assert (recon.verdict_base, recon.verdict_control) == ("confirms", "no difference")
    assert "0/3 points higher" in recon.evidence_control
    dead = rows["dead features eliminated"]
    assert (dead.verdict_base, dead.verdict_control) == ("confirms", "no difference")
    assert rows["composes with TopK"].verdict_control == "no difference"


def test_no_init_control_arm_gives_no_control():
    rows = rows_by_claim(claim_table(sweep(aligned_ev=0.1, aligned_dead=0.0)), "tied")
    recon = rows["reconstruction improved"]
    assert recon.verdict_base == "confirms"
    assert recon.verdict_control == "no control"
    assert "no init control for aligned_topk[tied] d64" in recon.evidence_control
    assert rows["composes with TopK"].verdict_control == "no control"
    # a control of the other form is not this form's control
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, control_ev=0.0, form="projected")
    runs += sweep(aligned_ev=0.1, aligned_dead=0.0)
    rows = rows_by_claim(claim_table(runs), "tied")
    assert rows["reconstruction improved"].verdict_control == "no control"


def test_refuted_when_aligned_is_worse():
    runs = sweep(aligned_ev=-0.05, aligned_dead=0.5, form="projected")
    rows = rows_by_claim(claim_table(runs, []), "projected")
    for claim in (
        "dead features eliminated",
        "reconstruction improved",
        "Pareto improvement",
        "composes with TopK",
    ):
        assert rows[claim].verdict_base == "refutes", claim
    assert rows["stability improved"].verdict_base == "no data"


def test_difference_inside_the_interval_is_a_tie():
    # diff 0.01, seeds spread +-0.02: Welch interval ~ +-0.045
    runs = sweep(aligned_ev=0.01, aligned_dead=0.0, spread=0.02)
    recon = rows_by_claim(claim_table(runs, []), "tied")["reconstruction improved"]
    assert recon.verdict_base == "no difference"
    assert "0/3 points higher" in recon.evidence_base
    # the same difference with tight seeds is better
    tight = sweep(aligned_ev=0.01, aligned_dead=0.0, spread=0.001)
    recon = rows_by_claim(claim_table(tight, []), "tied")["reconstruction improved"]
    assert recon.verdict_base == "confirms"


def test_some_points_better_some_worse_is_mixed():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0)
    for r in runs:
        info = records.run_info(r)
        if info["alignment"] and info["sparsity_value"] == 32:
            r["eval_result_metrics"]["reconstruction_quality"][
                "explained_variance"
            ] -= 0.3
    recon = rows_by_claim(claim_table(runs, []), "tied")["reconstruction improved"]
    assert recon.verdict_base == "mixed"
    assert "2/3 points higher, 1 lower" in recon.evidence_base


@pytest.mark.parametrize(
    "kwargs",
    [dict(seeds=2), dict(ks=(8, 16))],
    ids=["two seeds", "two sparsity points"],
)
def test_too_few_seeds_or_points_is_insufficient_data(kwargs):
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, control_ev=0.0, **kwargs)
    rows = rows_by_claim(claim_table(runs), "tied")
    for row in rows.values():
        if row.claim in (
            "ground truth improved",
            "stability improved",
            *claims.SAME_SPARSITY_CLAIMS,
        ):
            continue  # no MCC, F1, stability, absorption or probing records
        if row.claim in ("composes with BatchTopK", "composes with p-annealing"):
            continue  # no such runs: no data
        assert row.verdict_base == row.verdict_control == "insufficient data", row
    evidence = rows["reconstruction improved"].evidence_base
    assert "needs 3" in evidence
    if "seeds" in kwargs:
        assert "points with [2] seeds" in evidence


def test_a_curve_with_one_thin_point_keeps_its_other_points():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, ks=(8, 16, 32, 64))
    runs = [
        r
        for r in runs
        if not (
            records.run_info(r)["sparsity_value"] == 64
            and records.run_info(r)["seed"] == 2
        )
    ]
    recon = rows_by_claim(claim_table(runs), "tied")["reconstruction improved"]
    assert recon.verdict_base == "confirms" and recon.n_comparisons_base == 6


def collapse(runs: list[dict], label: str, k: float, seeds=(0, 1, 2)) -> None:
    """Make the seeds of one point degenerate (SAELens' standard l1=128 numbers)."""
    for r in runs:
        info = records.run_info(r)
        if (info["label"], info["sparsity_value"]) == (label, k) and info[
            "seed"
        ] in seeds:
            r["eval_result_metrics"]["shrinkage"]["l2_ratio"] = 0.065
            r["eval_result_metrics"]["model_performance_preservation"] = {
                "ce_loss_score": -0.41
            }
            r["eval_result_metrics"]["reconstruction_quality"] = {
                "explained_variance": -0.5
            }


def test_degenerate_points_are_flagged_and_left_out():
    # aligned slightly worse everywhere except where the base has collapsed
    runs = sweep(aligned_ev=-0.05, aligned_dead=0.0, ks=(8, 16, 32, 64))
    collapse(runs, "topk", 64)
    collapse(runs, "aligned_topk[tied]", 16, seeds=(1,))  # one seed only: kept
    (base_point, one_seed) = sorted(degenerate_points(runs), key=lambda d: d.label)[
        ::-1
    ]
    assert base_point.key == ("topk", "k", 64.0, 64) and base_point.excluded
    assert base_point.n_degenerate_seeds == 3
    assert "l2_ratio 0.065 < 0.3" in base_point.reasons
    assert "ce_loss_score -0.41 < 0" in base_point.reasons
    assert not one_seed.excluded and one_seed.n_degenerate_seeds == 1
    rows = rows_by_claim(claim_table(runs), "tied")
    recon = rows["reconstruction improved"]
    # the collapsed base point would have made it mixed
    assert recon.verdict_base == "refutes", recon.evidence_base
    assert "1 degenerate point left out: topk k=64 (" in recon.evidence_base
    assert "l2_ratio 0.065 < 0.3" in recon.evidence_base
    # the aligned point at k=64 is compared with nothing beyond the base range
    assert "outside the stock base L0 range" in recon.evidence_base


def test_every_point_of_a_curve_degenerate_is_insufficient_data():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0)
    for k in (8, 16, 32):
        collapse(runs, "topk", k)
    recon = rows_by_claim(claim_table(runs), "tied")["reconstruction improved"]
    assert recon.verdict_base == "insufficient data"
    assert "topk d64: 0 usable points" in recon.evidence_base
    assert "3 degenerate points left out" in recon.evidence_base


def test_dead_features_use_the_long_window_when_measured():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0)
    for r in runs:
        aligned = records.run_info(r)["alignment"] is not None
        r["eval_result_metrics"]["misc"]["frac_dead_latents_long"] = (
            0.2 if aligned else 0.3
        )
    dead = rows_by_claim(claim_table(runs), "tied")["dead features eliminated"]
    # fewer dead than the base, but not eliminated over the long window
    assert dead.verdict_base == "mixed"
    assert "dead_fraction_long 0.200 vs 0.300" in dead.evidence_base
    assert "<= 1% dead at 0/3" in dead.evidence_base


def test_dead_features_reduced_but_not_eliminated_or_none_to_eliminate():
    reduced = rows_by_claim(claim_table(sweep(0.1, aligned_dead=0.05)), "tied")
    assert reduced["dead features eliminated"].verdict_base == "mixed"
    nothing = rows_by_claim(
        claim_table(sweep(0.1, aligned_dead=0.002, base_dead=0.004)), "tied"
    )
    assert nothing["dead features eliminated"].verdict_base == "no difference"
    assert nothing["composes with TopK"].verdict_base == "confirms"


def synthetic_sweep(mcc_offset: float, f1_offset: float) -> list[dict]:
    """No CE-loss score (synthetic data); aligned EV better, MCC/F1 offset."""
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0, ce=False)
    for r in runs:
        info = records.run_info(r)
        aligned = info["alignment"] is not None
        base_value = 0.4 + 0.01 * info["sparsity_value"] / 8 + 0.01 * info["seed"]
        r["eval_result_metrics"]["ground_truth"] = {
            "mcc": base_value + (mcc_offset if aligned else 0.0),
            "f1": base_value + (f1_offset if aligned else 0.0),
        }
    return runs


def test_synthetic_verdicts_weigh_mcc_and_f1():
    # the repo's own case: better EV, MCC 0.325 vs 0.400, F1 0.08 vs 0.53
    rows = rows_by_claim(claim_table(synthetic_sweep(-0.075, -0.45)), "tied")
    assert rows["reconstruction improved"].verdict_base == "confirms"
    gt = rows["ground truth improved"]
    assert gt.verdict_base == "refutes" and gt.n_comparisons_base == 6
    assert "mcc" in gt.evidence_base and "f1" in gt.evidence_base
    pareto_row = rows["Pareto improvement"]
    assert pareto_row.verdict_base == "mixed"
    assert "mcc: 0/6 comparisons" in pareto_row.evidence_base
    assert "ce_loss_score" not in pareto_row.evidence_base
    assert rows["composes with TopK"].verdict_base == "mixed"
    good = rows_by_claim(claim_table(synthetic_sweep(0.1, 0.1)), "tied")
    assert good["ground truth improved"].verdict_base == "confirms"
    assert good["Pareto improvement"].verdict_base == "confirms"


@pytest.mark.parametrize(
    "verdicts, expected",
    [
        (["confirms", "mixed", "no difference", "no data"], "confirms"),
        (["confirms", "refutes"], "mixed"),
        (["refutes", "no difference"], "refutes"),
        (["mixed", "no difference"], "mixed"),
        (["no difference", "no data"], "no difference"),
        (["insufficient data", "no control", "no data"], "insufficient data"),
        (["no control", "no data"], "no control"),
        (["no data"] * 5, "no data"),
    ],
)
def test_composes_with_needs_a_confirming_and_no_refuting_sub_claim(verdicts, expected):
    assert compose_verdict(verdicts) == expected


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
    assert rows[claim].verdict_base == "confirms"
    assert rows[claim].evidence_base.startswith(
        f"aligned_{architecture} vs {architecture} (stock base):"
    )
    assert rows["composes with TopK"].verdict_base == "refutes"
    assert rows["reconstruction improved"].verdict_base == "mixed"


def test_matched_l0_reads_the_base_curve_between_its_points():
    # base ReLU+L1 at L0 10, 100, 1000 -> EV 0.4, 0.6, 0.8 (3 seeds).
    runs = []
    for coef, l0, ev in ((10.0, 10.0, 0.4), (1.0, 100.0, 0.6), (0.1, 1000.0, 0.8)):
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
    # aligned at L0 sqrt(10)*10 etc. (base reads 0.5, 0.7) and one out of range.
    points = (
        (3.0, math.sqrt(1000), 0.55),
        (0.3, math.sqrt(1e5), 0.75),
        (0.03, 3000.0, 0.95),
        (30.0, 2.0, 0.9),
    )
    for coef, l0, ev in points:
        for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
            runs.append(
                make_record(
                    "aligned",
                    coef,
                    seed,
                    "tied",
                    "standard",
                    sparsity_param="l1_coefficient",
                    explained_variance=ev + jitter,
                    l0=l0,
                )
            )
    rows = rows_by_claim(claim_table(runs), "tied")
    recon = rows["reconstruction improved"]
    # 2 inside the range; 3000 is beyond 1000 * 1.05, 2 below 10: fewer than 3
    assert recon.verdict_base == "insufficient data"
    assert "aligned[tied] d64 vs standard d64: 2 comparable points" in (
        recon.evidence_base
    )
    # one more aligned point inside the base range makes it comparable
    for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
        runs.append(
            make_record(
                "aligned",
                0.5,
                seed,
                "tied",
                "standard",
                sparsity_param="l1_coefficient",
                explained_variance=0.75 + jitter,
                l0=300.0,
            )
        )
    recon = rows_by_claim(claim_table(runs), "tied")["reconstruction improved"]
    assert recon.verdict_base == "confirms" and recon.n_comparisons_base == 3
    assert "2 outside the stock base L0 range" in recon.evidence_base
    dead = rows_by_claim(claim_table(runs), "tied")["dead features eliminated"]
    assert dead.verdict_base == "no data"  # no dead fraction recorded


def test_claim_table_has_every_claim_for_both_forms():
    rows = claim_table([], [])
    assert len(rows) == 2 * len(claims.CLAIMS) == 22
    assert {(r.verdict_base, r.verdict_control) for r in rows} == {
        ("no data", "no data")
    }


def test_absorption_at_one_sparsity_shows_the_numbers_but_stays_insufficient():
    def arm(architecture, alignment=None, init_from=None, base=None, offset=0.0):
        return [
            make_record(
                architecture,
                32,
                seed,
                alignment=alignment,
                init_from=init_from,
                base_architecture=base,
                l0=32.0,
                absorption_fraction=0.30 + offset + 0.01 * seed,
                absorption_full=0.10 + offset,
            )
            for seed in range(3)
        ]

    runs = (
        arm("topk")
        + arm("topk", init_from="tied", offset=0.2)
        + arm("aligned_topk", alignment="tied", base="topk", offset=-0.1)
    )
    rows = {
        (r.claim, r.alignment): r
        for r in claim_table(runs)
        if r.claim == claims.ABSORPTION_CLAIM
    }
    tied = rows[(claims.ABSORPTION_CLAIM, "tied")]
    assert tied.verdict_base == claims.INSUFFICIENT
    assert tied.verdict_control == claims.INSUFFICIENT
    assert "absorption_fraction 0.210 vs 0.310" in tied.evidence_base
    assert "absorption_fraction 0.210 vs 0.510" in tied.evidence_control
    assert "better" in tied.evidence_base and "needs 3" in tied.evidence_base
    assert rows[(claims.ABSORPTION_CLAIM, "projected")].verdict_base == claims.NO_DATA

    # At three sparsities the row is judged like every other claim.
    more = [
        {**r, "eval_config": {"run": {**r["eval_config"]["run"], "sparsity_value": k}}}
        for k in (16, 32, 64)
        for r in runs
    ]
    judged = next(
        r
        for r in claim_table(more)
        if r.claim == claims.ABSORPTION_CLAIM and r.alignment == "tied"
    )
    assert judged.verdict_base == claims.CONFIRMS


def test_probing_claims_at_one_sparsity_judge_higher_accuracy_as_better():
    def arm(architecture, alignment=None, init_from=None, base=None, offset=0.0):
        return [
            make_record(
                architecture,
                32,
                seed,
                alignment=alignment,
                init_from=init_from,
                base_architecture=base,
                l0=32.0,
                sparse_probing_top1=0.70 + offset + 0.001 * seed,
                sae_probes_top1=0.60 + offset,
                tpp_total=0.05 + offset,
            )
            for seed in range(3)
        ]

    runs = arm("topk") + arm("aligned_topk", alignment="tied", base="topk", offset=0.1)
    rows = {r.claim: r for r in claim_table(runs) if r.alignment == "tied"}
    probing = rows[claims.PROBING_CLAIM]
    assert probing.verdict_base == claims.INSUFFICIENT  # one sparsity: numbers only
    assert "sparse_probing_top1 0.801 vs 0.701" in probing.evidence_base
    assert "better" in probing.evidence_base and "worse" not in probing.evidence_base
    assert "tpp_total 0.150 vs 0.050" in rows[claims.TPP_CLAIM].evidence_base
    assert probing.verdict_control == claims.NO_CONTROL
