"""The demo's "trained longer" sentence: the packaged file is what the committed
benchmark records give, and the sentence reads its numbers from it."""

import re
from dataclasses import replace

from benchmarks.release.demo_findings import TARGET, arm_of, build_findings, main
from saelens_aligned.apps.findings import (
    BenchmarkFindings,
    PairedGap,
    findings_path,
    load_findings,
)


def test_committed_findings_are_what_the_records_give() -> None:
    expected = build_findings().to_json()
    assert TARGET.read_text() == expected, (
        "saelens_aligned/apps/benchmark_findings.json differs from the records: "
        "run `python -m benchmarks.release.demo_findings` and commit the file."
    )
    assert main(["--check"]) == 0


def test_the_package_reads_the_file_the_generator_writes() -> None:
    assert findings_path().resolve() == TARGET.resolve()
    assert load_findings() == BenchmarkFindings.from_json(TARGET.read_text())


def test_findings_pair_the_three_arms_at_matched_sparsity_over_shared_seeds() -> None:
    findings = build_findings()
    tokens = [length.training_tokens for length in findings.lengths]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    for length in findings.lengths:
        assert length.ce_gap.n == len(findings.seeds)
        for arm in (length.stock, length.fair_control, length.aligned):
            assert abs(arm.l0 - findings.k) < 0.01 * findings.k
        expected = length.aligned.ce_loss_score - length.stock.ce_loss_score
        assert abs(length.ce_gap.mean - expected) < 1e-9  # mean of seed differences
        assert length.ce_gap.low < length.ce_gap.mean < length.ce_gap.high


def test_only_the_demos_three_arms_are_read() -> None:
    info = {"base_architecture": "topk", "sparsity_value": 32.0, "alignment": None}
    assert arm_of({**info, "architecture": "topk", "init_from": None}) == "stock"
    assert arm_of({**info, "architecture": "topk", "init_from": "projected"}) == (
        "fair_control"
    )
    assert arm_of({**info, "architecture": "topk", "init_from": "tied"}) is None
    aligned = {**info, "architecture": "aligned_topk", "init_from": None}
    assert arm_of({**aligned, "alignment": "tied"}) == "aligned"
    assert arm_of({**aligned, "alignment": "projected"}) is None
    assert arm_of({**info, "sparsity_value": 16.0, "architecture": "topk"}) is None


def test_the_sentence_names_a_tie_only_when_the_interval_holds_zero() -> None:
    findings = load_findings()
    last = findings.lengths[-1]
    for gap, verdict in (
        (PairedGap(0.003, -0.002, 0.009, 3), "a tie"),
        (PairedGap(0.03, 0.02, 0.04, 3), "aligned ahead"),
        (PairedGap(-0.03, -0.04, -0.02, 3), "stock ahead"),
    ):
        moved = replace(
            findings, lengths=(*findings.lengths[:-1], replace(last, ce_gap=gap))
        )
        assert f"({verdict})" in moved.sentence()
        assert f"{gap.mean:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]" in moved.sentence()
    sentence = findings.sentence()
    assert sentence.endswith(".") and re.search(r"\.\s+[A-Z]", sentence) is None


def test_the_sentence_says_most_only_when_the_control_removes_most_dead() -> None:
    findings = load_findings()
    first = findings.lengths[0]
    half = replace(first.fair_control, dead_fraction=0.6 * first.stock.dead_fraction)
    moved = replace(
        findings, lengths=(replace(first, fair_control=half), *findings.lengths[1:])
    )
    assert "removes most" not in moved.sentence()
    assert "removes 40% to" in moved.sentence()
