"""The verdict engine: fair controls, matched L0 paired by seed, direction and
counts, Benjamini-Hochberg, per-base rows, grid edges, training length."""

import math

import numpy as np
import pytest
from scipy import stats

from benchmarks.analysis.verdicts.judge import POOLED, ClaimRow, Verdict, judge_sweep
from benchmarks.analysis.verdicts.lengths import length_comparisons, lengths_frame
from benchmarks.analysis.verdicts.matching import SeedCurve
from benchmarks.analysis.verdicts.rules import CLAIM_SPECS, FAIR_CONTROL, STOCK_BASE
from benchmarks.analysis.verdicts.statistics import (
    benjamini_hochberg,
    paired_difference,
)
from benchmarks.analysis.verdicts.summary import (
    claim_frame,
    composition_rows,
    pareto_rows,
)
from benchmarks.records import layout
from benchmarks.records.run_table import LearningRateChoice, SweepRecords
from saelens_aligned.pipeline.eval_moments import RECORD_KEY
from tests.record_factory import collapse, make_record, make_stability, sweep


def rows_of(runs: list[dict], stability: list[dict] = (), **kwargs) -> list[ClaimRow]:
    return judge_sweep(SweepRecords.from_json(runs, stability, **kwargs))


def row(
    rows: list[ClaimRow],
    metric: str,
    role: str = STOCK_BASE,
    form: str = "tied",
    base: str = POOLED,
) -> ClaimRow:
    (found,) = [
        r
        for r in rows
        if (r.spec.metric, r.role, r.alignment, r.base) == (metric, role, form, base)
    ]
    return found


# ------------------------------------------------------------------- statistics


def test_paired_difference_is_a_one_sample_t_on_seed_differences():
    diffs = [0.01, 0.03, 0.02, 0.05]
    d = paired_difference(diffs)
    t = stats.ttest_1samp(diffs, 0.0)
    assert d.mean == pytest.approx(np.mean(diffs))
    assert d.p_value == pytest.approx(t.pvalue)
    low, high = t.confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(low), pytest.approx(high))
    assert math.isnan(paired_difference([0.2]).p_value)  # one seed: no interval
    assert paired_difference([0.1, 0.1, 0.1]).p_value < 1e-12  # same every seed


def test_seed_pairs_use_the_seeds_for_their_degrees_of_freedom():
    pairs = [0.1, 0.2, 0.15, 0.12, 0.18, 0.11]
    assert (
        paired_difference(pairs, n_units=3).p_value > paired_difference(pairs).p_value
    )


def test_benjamini_hochberg_matches_scipy_and_keeps_nan():
    p = [0.01, 0.04, math.nan, 0.03]
    q = benjamini_hochberg(p)
    expected = stats.false_discovery_control([0.01, 0.04, 0.03])
    assert q[:2] + q[3:] == pytest.approx(list(expected[:2]) + [expected[2]])
    assert math.isnan(q[2])


def test_a_seed_curve_is_read_in_log_l0_and_not_outside_its_range():
    curve = SeedCurve(np.array([10.0, 40.0]), np.array([0.5, 0.7]))
    assert curve.at(20.0) == pytest.approx(0.6)
    # Within 10% beyond an end, the end segment continues (0.1 per doubling).
    assert curve.at(9.2) == pytest.approx(0.5 + 0.1 * math.log2(0.92))
    assert curve.at(43.0) == pytest.approx(0.7 + 0.1 * math.log2(43 / 40))
    assert math.isnan(curve.at(9.0)) and math.isnan(curve.at(44.5))
    one_point = SeedCurve(np.array([32.0]), np.array([0.8]))  # TopK at one k
    assert one_point.at(30.0) == 0.8 and math.isnan(one_point.at(28.0))


# ---------------------------------------------------------------- the references


def test_the_fair_control_is_the_base_from_the_balanced_init_not_the_tied_init():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0, control_ev=0.1)  # fair: better
    runs += [
        r
        for r in sweep(
            aligned_ev=0.05, aligned_dead=0.0, control_ev=-0.3, control_init="tied"
        )
        if layout.run_info(r)["init_from"] == "tied"
    ]
    rows = rows_of(runs)
    assert row(rows, "explained_variance").verdict.text == "better at 3 of 3"
    fair = row(rows, "explained_variance", FAIR_CONTROL)
    assert fair.verdict.text == "worse at 3 of 3"
    assert {c.reference for c in fair.comparisons} == {"topk[init=projected]"}


def test_without_a_fair_control_the_row_says_no_control():
    rows = rows_of(sweep(aligned_ev=0.05, aligned_dead=0.0))
    assert row(rows, "explained_variance", FAIR_CONTROL).verdict.status == "no control"


# ------------------------------------------------------- direction and the counts


def test_verdicts_say_which_way_and_how_often():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0, ks=(8, 16, 32, 64))
    for r in runs:  # worse at the sparsest point only
        info = layout.run_info(r)
        if info["alignment"] and info["sparsity_value"] == 8:
            r["eval_result_metrics"]["reconstruction_quality"][RECORD_KEY] -= 0.1
    v = row(rows_of(runs), "explained_variance").verdict
    assert (v.better, v.worse, v.tie) == (3, 1, 0)
    assert v.text == "better at 3, worse at 1 of 4"
    assert Verdict(0, 0, 4).text == "tie at 4 of 4"


def test_a_verdict_reads_every_count_with_its_direction_ties_included():
    assert Verdict(1, 0, 5).text == "better at 1, tie at 5 of 6"
    assert Verdict(6, 4, 0).text == "better at 6, worse at 4 of 10"
    assert Verdict(2, 3, 1).text == "better at 2, worse at 3, tie at 1 of 6"
    assert Verdict(0, 2, 0).text == "worse at 2 of 2"
    assert Verdict(6, 0, 0).text == "better at 6 of 6"
    # No verdict keeps its counts, in the same words.
    short = Verdict(0, 1, 1, "insufficient data")
    assert short.text == "insufficient data (worse at 1, tie at 1 of 2)"
    assert Verdict(0, 0, 0, "no overlap").text == "no overlap"


def test_a_difference_within_seed_noise_is_a_tie():
    runs = sweep(aligned_ev=0.0, aligned_dead=0.3)
    rng = np.random.default_rng(0)
    for r in runs:
        if layout.run_info(r)["alignment"]:
            r["eval_result_metrics"]["reconstruction_quality"][RECORD_KEY] += (
                rng.normal(0, 0.01)
            )
    assert row(rows_of(runs), "explained_variance").verdict.direction == "tie"


def test_pairs_are_by_seed_so_shared_seed_noise_cancels():
    # Seed jitter (0.01) far above the gap (0.002), but shared by both arms.
    runs = sweep(aligned_ev=0.002, aligned_dead=0.3, spread=0.01)
    assert row(rows_of(runs), "explained_variance").verdict.better == 3


def test_dead_fractions_both_below_one_percent_tie():
    runs = sweep(aligned_ev=0.0, aligned_dead=0.0, base_dead=0.005)
    v = row(rows_of(runs), "dead_fraction").verdict
    assert v.tie == 3 and v.text == "tie at 3 of 3"


# -------------------------------------------------------------------- matched L0


def test_every_metric_is_compared_at_matched_l0_dead_fraction_included():
    # Aligned at L0 = 2k: compared with the base's curve there, not at the same k.
    runs = sweep(aligned_ev=0.0, aligned_dead=0.0, ks=(8, 16, 32, 64))
    for r in runs:
        info = layout.run_info(r)
        if info["alignment"]:
            r["eval_result_metrics"]["sparsity"]["l0"] *= 2
    rows = rows_of(runs)
    ev = row(rows, "explained_variance")
    assert [c.l0 for c in ev.comparisons] == [16.0, 32.0, 64.0]
    # The aligned point at L0 16 (k 8, EV 0.5) against the base's k 16 (EV 0.6).
    assert ev.comparisons[0].reference_mean == pytest.approx(0.6)
    assert ev.no_overlap == 1  # L0 128 lies past the base's curve
    assert row(rows, "dead_fraction").no_overlap == 1


def test_no_overlap_at_all_is_no_result():
    runs = sweep(aligned_ev=0.1, aligned_dead=0.0)
    for r in runs:
        if layout.run_info(r)["alignment"]:
            r["eval_result_metrics"]["sparsity"]["l0"] *= 10
    v = row(rows_of(runs), "explained_variance").verdict
    assert v.status == "no overlap" and v.n == 0


# ------------------------------------------------------------ bases and pooling


def test_a_base_with_too_few_points_gets_its_own_row_and_leaves_the_pool():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0)
    l1 = sweep(aligned_ev=-0.05, aligned_dead=0.0, architecture="standard", ks=(8,))
    for r in l1:
        info = layout.run_info(r)
        if info["alignment"]:
            r["eval_config"]["run"]["architecture"] = "aligned"
            r["eval_config"]["run"]["label"] = "aligned[tied]"
    rows = rows_of(runs + l1)
    pooled = row(rows, "explained_variance")
    assert pooled.bases == {"topk": 3} and pooled.left_out == {"standard": 1}
    own = row(rows, "explained_variance", base="standard")
    assert own.verdict.status == "insufficient data" and own.verdict.worse == 1
    table = claim_frame(rows)
    assert "standard" in set(table["bases"])


def test_collapsed_points_are_left_out_and_named():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0, ks=(8, 16, 32, 64))
    collapse(runs, "topk", 64)
    r = row(rows_of(runs), "explained_variance")
    assert r.verdict.n == 3 and len(r.degenerate) == 1


def test_stability_pairs_seed_pairs_at_matched_l0():
    runs = sweep(aligned_ev=0.0, aligned_dead=0.3)
    first = {}
    for r in runs:
        first.setdefault(layout.run_info(r)["point_id"], r)
    stability = [
        make_stability(
            r,
            [0.5, 0.6],
            alive=[0.7, 0.8] if layout.run_info(r)["alignment"] else [0.3, 0.4],
        )
        for r in first.values()
    ]
    v = row(rows_of(runs, stability), "stability").verdict
    assert v.better == 3 and v.worse == 0


# ------------------------------------------------------- derived rows and rates


def test_pareto_counts_each_metric_once_and_composition_names_claims():
    rows = rows_of(sweep(aligned_ev=0.05, aligned_dead=0.0))
    pareto = pareto_rows(rows)[("Pareto improvement", "tied")]
    assert pareto[STOCK_BASE].startswith("**better**")
    assert "explained variance: better at 3 of 3" in pareto[STOCK_BASE]
    assert "CE-loss score: better at 3 of 3" in pareto[STOCK_BASE]
    topk = composition_rows(rows)[("composes with TopK", "tied")]
    assert (
        "better on dead fraction, explained variance, CE-loss score" in topk[STOCK_BASE]
    )


def test_an_arm_at_the_edge_of_its_grid_is_flagged():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0)
    for r in runs:
        r["eval_config"]["run"]["lr"] = 1e-3
    choice = LearningRateChoice(
        metric="explained_variance",
        grid={
            "aligned_topk[tied]": {3e-4: 0.1, 1e-3: 0.2},
            "topk": {3e-4: 0.1, 1e-3: 0.3, 3e-3: 0.2},
        },
        chosen={"aligned_topk[tied]": 1e-3, "topk": 1e-3},
        bound_edges={},
        splits={"aligned_topk[tied]": "validation", "topk": "validation"},
    )
    r = row(rows_of(runs, lr_choice=choice), "explained_variance")
    assert r.edges == ("aligned_topk[tied] (high)",)
    bounded = LearningRateChoice(
        **{**choice.__dict__, "bound_edges": {"aligned_topk[tied]": "high"}}
    )
    assert row(rows_of(runs, lr_choice=bounded), "explained_variance").edges == ()


def test_verdicts_by_length_put_the_shortest_and_longest_side_by_side():
    finals, checkpoints = [], []
    for step, gap in ((100, 0.1), (1000, 0.0)):
        for r in sweep(aligned_ev=gap, aligned_dead=0.0, ks=(16,), control_ev=0.0):
            r["eval_config"]["run"]["step"] = step
            r["eval_config"]["sweep"] = {
                "training_tokens": 1000 * 64,
                "train_batch_size_tokens": 64,
                "lr_decay_steps": 200,
            }
            (finals if step == 1000 else checkpoints).append(r)
    sweep_records = SweepRecords.from_json(finals, (), checkpoints)
    table = lengths_frame(length_comparisons(sweep_records))
    ev = table[(table["metric (matched L0)"] == "explained variance")]
    stock = ev[ev["reference"].str.startswith("stock base")].iloc[0]
    assert (
        stock["shortest"].startswith("better +0.100") and "at 6k" in stock["shortest"]
    )
    assert stock["longest"].startswith("tie") and "in lr decay" not in stock["longest"]


def test_verdicts_by_length_cover_every_claim_metric_the_checkpoints_record():
    finals, checkpoints = [], []
    for step, gap in ((100, 0.1), (1000, -0.05)):
        for r in sweep(aligned_ev=gap, aligned_dead=0.0, ks=(16,), control_ev=0.0):
            r["eval_config"]["run"]["step"] = step
            r["eval_config"]["sweep"] = {
                "training_tokens": 1000 * 64,
                "train_batch_size_tokens": 64,
            }
            if step == 1000:  # MCC measured at the end only
                r["eval_result_metrics"]["ground_truth"] = {"mcc": 0.5}
            (finals if step == 1000 else checkpoints).append(r)
    comparisons = length_comparisons(SweepRecords.from_json(finals, (), checkpoints))
    table = lengths_frame(comparisons)
    assert list(dict.fromkeys(table["metric (matched L0)"])) == [
        "dead fraction",
        "explained variance",
        "CE-loss score",
        "MCC",
    ]
    ce = table[table["metric (matched L0)"] == "CE-loss score"].iloc[0]
    assert ce["shortest"].startswith("better") and ce["longest"].startswith("worse")
    # A metric recorded at one length compares that length alone, never a blank.
    mcc = table[table["metric (matched L0)"] == "MCC"].iloc[0]
    assert mcc["shortest"].startswith("tie") and mcc["longest"] == "-"


def test_a_sweep_folder_gives_the_same_rows_as_its_records(tmp_path):
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0, control_ev=0.0)
    for r in runs:
        layout.write_json_atomic(
            layout.record_path(tmp_path, layout.run_info(r)["run_id"]), r
        )
    from_folder = judge_sweep(SweepRecords.read(tmp_path))
    assert [r.verdict for r in from_folder] == [r.verdict for r in rows_of(runs)]
    assert make_record("topk", 8, 0, l0=8.0)["eval_config"]["run"]["label"] == "topk"


# ----------------------------------------------------------- feature quality


def _with_probes(runs: list[dict], gap: float) -> list[dict]:
    """sae-probes' k-sparse top-1 accuracy on every run, aligned `gap` higher."""
    for r in runs:
        info = layout.run_info(r)
        seed_jitter = 0.01 * info["seed"]
        value = 0.7 + seed_jitter + (gap if info["alignment"] else 0.0)
        r["eval_result_metrics"]["sae_probes"] = {"sae_top_1_test_accuracy": value}
    return runs


def test_sparse_probing_gets_a_verdict_at_three_matched_points():
    rows = rows_of(_with_probes(sweep(aligned_ev=0.0, aligned_dead=0.0), 0.05))
    probes = row(rows, "sae_probes_top1")
    assert probes.spec.claim == "sparse probing improved"
    assert probes.verdict.status is None and probes.verdict.text == "better at 3 of 3"


def test_sparse_probing_at_one_point_is_insufficient_data_with_its_counts():
    runs = _with_probes(sweep(aligned_ev=0.0, aligned_dead=0.0, ks=(32,)), -0.05)
    probes = row(rows_of(runs), "sae_probes_top1")
    assert probes.verdict.text == "insufficient data (worse at 1 of 1)"


def test_tpp_is_judged_but_marked_as_failing_the_reliability_study():
    runs = sweep(aligned_ev=0.0, aligned_dead=0.0)
    for r in runs:
        r["eval_result_metrics"]["tpp"] = {"tpp_threshold_20_total_metric": 0.1}
    rows = rows_of(runs)
    table = claim_frame(rows)
    tpp = table[table["claim"] == "TPP improved"]["metric (matched L0)"]
    assert set(tpp) == {"TPP (fails Chanin 2026's reliability tests)"}
    probes = {s.display: s for s in CLAIM_SPECS if s.claim == "sparse probing improved"}
    assert all(not s.caveat for s in probes.values())
    assert "sae-probes k-sparse probing, top-1" in probes
