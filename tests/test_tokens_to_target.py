"""Tokens to target: the tokens each arm needs to reach the stock arm's final
CE-loss score, from checkpoint records."""

import math

import pytest

from benchmarks.analysis.tokens_to_target import first_crossing, tokens_to_target
from benchmarks.records.run_table import SweepRecords
from tests.record_factory import make_record

BATCH = 1000
STEPS = (125, 250, 500, 1000, 2000)


def curve_records(arm: dict, scores: dict[int, list[float]]) -> list[dict]:
    """Records of one arm's seeds at every step of STEPS (the last one final)."""
    out = []
    for seed, values in scores.items():
        for step, value in zip(STEPS, values):
            record = make_record(
                **arm, sparsity_value=32, seed=seed, d_sae=4608, ce_loss_score=value
            )
            record["eval_config"]["run"]["step"] = step
            record["eval_config"]["sweep"] = {
                "training_tokens": STEPS[-1] * BATCH,
                "train_batch_size_tokens": BATCH,
            }
            out.append(record)
    return out


STOCK = {"architecture": "topk"}
TIED = {
    "architecture": "aligned_topk",
    "alignment": "tied",
    "base_architecture": "topk",
}
CONTROL = {"architecture": "topk", "init_from": "projected"}


def sweep() -> SweepRecords:
    stock = curve_records(STOCK, {s: [0.5, 0.6, 0.7, 0.8, 0.9] for s in range(3)})
    # Reaches 0.9 halfway (in log tokens) between steps 500 and 1000, every seed.
    tied = curve_records(TIED, {s: [0.6, 0.7, 0.8, 1.0, 1.0] for s in range(3)})
    # One seed never reaches it.
    control = curve_records(
        CONTROL,
        {0: [0.5, 0.6, 0.7, 0.8, 0.85], 1: [0.5, 0.6, 0.7, 0.8, 0.9], 2: [0.9] * 5},
    )
    records = stock + tied + control
    finals = [r for r in records if r["eval_config"]["run"]["step"] == STEPS[-1]]
    checkpoints = [r for r in records if r not in finals]
    return SweepRecords.from_json(finals, checkpoint_records=checkpoints)


def by_label():
    return {t.label: t for t in tokens_to_target(sweep().checkpoint_frame())}


def test_the_target_is_the_stock_arms_final_seed_mean():
    results = by_label()
    assert set(results) == {"topk", "aligned_topk[tied]", "topk[init=projected]"}
    assert all(math.isclose(t.target, 0.9) for t in results.values())
    assert results["topk"].budget == 2_000_000


def test_a_crossing_is_interpolated_in_log_tokens():
    tied = by_label()["aligned_topk[tied]"]
    expected = math.sqrt(500_000 * 1_000_000)  # 0.9 is halfway from 0.8 to 1.0
    assert all(t == pytest.approx(expected) for t in tied.seeds.values())
    assert tied.interval().mean == pytest.approx(expected)
    assert tied.text.startswith("0.71M")


def test_a_seed_that_never_reaches_the_target_says_so():
    control = by_label()["topk[init=projected]"]
    assert math.isnan(control.seeds[0])
    assert control.seeds[1] == pytest.approx(2_000_000)
    assert control.seeds[2] == 125_000  # there at its first checkpoint
    assert control.text.endswith("2 of 3 seeds")
    assert len(control.reached) == 2


def test_an_arm_no_seed_of_which_reaches_it_is_not_reached():
    assert math.isnan(first_crossing([1, 2, 4], [0.1, 0.2, 0.3], 0.5))
    assert first_crossing([1, 2, 4], [0.6, 0.7, 0.8], 0.5) == 1
    stock = curve_records(STOCK, {s: [0.5, 0.6, 0.7, 0.8, 0.9] for s in range(3)})
    worse = curve_records(TIED, {s: [0.1, 0.2, 0.3, 0.4, 0.5] for s in range(3)})
    frame = SweepRecords.from_json(stock + worse).frame()
    results = {t.label: t for t in tokens_to_target(frame)}
    assert results["aligned_topk[tied]"].text == "not reached"


def test_no_stock_arm_means_no_target():
    tied = curve_records(TIED, {s: [0.6, 0.7, 0.8, 1.0, 1.0] for s in range(3)})
    assert tokens_to_target(SweepRecords.from_json(tied).frame()) == []
