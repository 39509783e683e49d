"""The results blocks of README.md and docs/results.md are the records' own."""

import argparse
from dataclasses import replace
from types import SimpleNamespace

import pytest

from benchmarks.analysis.verdicts.judge import POOLED, Verdict, judge_sweep
from benchmarks.analysis.verdicts.rules import FAIR_CONTROL, STOCK_BASE
from benchmarks.records import layout
from benchmarks.records.run_table import SweepRecords
from benchmarks.reports import published, results_brief
from benchmarks.reports.generated import Block, fill, stale_documents
from tests.record_factory import sweep


def test_committed_documents_equal_what_the_committed_records_give():
    assert stale_documents(published.DOCUMENTS) == [], (
        "README.md or docs/results.md differs from the committed records: run "
        "`python -m benchmarks results` and commit the result."
    )


def test_every_block_has_its_markers_and_is_not_empty():
    for path, blocks in published.DOCUMENTS.items():
        text = path.read_text()
        for block in blocks:
            begin = f"<!-- generated: {block.name} begin -->"
            assert begin in text, f"{path.name}: {block.name}"
            content = text.split(begin, 1)[1].split("<!-- generated:", 1)[0]
            assert len(content.strip()) > 20, f"{path.name}: {block.name} is empty"


def test_fill_rewrites_only_between_markers_and_names_a_missing_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "prose\n<!-- generated: t begin -->\nold\n<!-- generated: t end -->\nmore\n"
    )
    blocks = (Block("t", lambda: "| a |\n|---|\n| 1 |"),)
    assert stale_documents({doc: blocks}) == [doc]
    doc.write_text(fill(doc.read_text(), blocks, doc))
    assert doc.read_text() == (
        "prose\n<!-- generated: t begin -->\n| a |\n|---|\n| 1 |\n"
        "<!-- generated: t end -->\nmore\n"
    )
    assert stale_documents({doc: blocks}) == []
    with pytest.raises(ValueError, match="'<!-- generated: other begin/end -->'"):
        fill(doc.read_text(), (Block("other", lambda: ""),), doc)


def test_check_exits_1_on_a_stale_document(tmp_path, monkeypatch, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- generated: t begin -->\nold\n<!-- generated: t end -->\n")
    monkeypatch.setattr(published, "DOCUMENTS", {doc: (Block("t", lambda: "new"),)})
    parser = argparse.ArgumentParser()
    published.add_arguments(parser)
    with pytest.raises(SystemExit) as exit_info:
        published.main(parser.parse_args(["--check"]))
    assert exit_info.value.code == 1 and "doc.md: stale" in capsys.readouterr().err


# ------------------------------------------------------- the README's results


def _rows(runs):
    return judge_sweep(SweepRecords.from_json(runs))


def test_the_readme_table_gives_both_forms_a_row_and_names_every_count():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0, control_ev=0.0)
    runs += [
        r
        for r in sweep(aligned_ev=-0.05, aligned_dead=0.0, form="projected")
        if layout.run_info(r)["alignment"]
    ]
    table = results_brief.verdict_table({"text": _rows(runs)})
    lines = table.splitlines()
    assert lines[0].startswith("| claim (metric at matched L0) | form | `text` (")
    ev = next(i for i, x in enumerate(lines) if "(explained variance)" in x)
    assert lines[ev] == (
        "| reconstruction improved (explained variance) | `tied` "
        "| better at 3 of 3 | better at 3 of 3 |"
    )
    # The projected row follows, its claim not repeated (one fair control
    # serves both forms).
    assert lines[ev + 1] == "|  | `projected` | worse at 3 of 3 | worse at 3 of 3 |"
    assert "never" not in table and "/3" not in table


def test_a_claim_with_no_verdict_anywhere_is_named_not_tabled():
    runs = sweep(aligned_ev=0.05, aligned_dead=0.0, control_ev=0.0)
    unjudged = Verdict(better=1, worse=0, tie=1, status="insufficient data")
    rows = [
        replace(r, verdict=unjudged)
        if "(explained variance)" in results_brief.claim_name(r)
        else r
        for r in _rows(runs)
    ]
    table = results_brief.verdict_table({"text": rows})
    assert "(explained variance)" not in table and "(CE-loss score)" in table
    assert results_brief.unjudged_line({"text": rows}) == (
        "No verdict yet (too few points at matched L0): "
        "reconstruction improved (explained variance)."
    )
    # One judged cell anywhere keeps the row, its other cells saying why not.
    first = next(
        i
        for i, r in enumerate(rows)
        if "(explained variance)" in results_brief.claim_name(r) and r.base == POOLED
    )
    rows[first] = _rows(runs)[first]
    assert "(explained variance)" in results_brief.verdict_table({"text": rows})
    assert results_brief.unjudged_line({"text": rows}) == ""


def test_a_column_names_the_bases_it_pools_and_a_base_without_that_reference():
    topk = sweep(aligned_ev=0.05, aligned_dead=0.0, control_ev=0.0)
    batchtopk = sweep(aligned_ev=0.05, aligned_dead=0.0, architecture="batchtopk")
    rows = _rows(topk + batchtopk)
    assert results_brief.column_bases(rows, "tied", STOCK_BASE) == "batchtopk, topk"
    assert results_brief.column_bases(rows, "tied", FAIR_CONTROL) == (
        "topk (batchtopk: no fair control)"
    )
    line = results_brief.bases_line({"s": rows})
    assert line == (
        "Bases pooled: `s`: `tied` vs stock batchtopk, topk, vs fair control "
        "topk (batchtopk: no fair control)."
    )


def test_cells_that_pool_the_same_fewer_bases_are_named_together():
    def row(display, bases):
        spec = SimpleNamespace(display=display)
        return SimpleNamespace(
            alignment="tied",
            base=POOLED,
            role=STOCK_BASE,
            spec=spec,
            bases=dict.fromkeys(bases, 3),
            no_reference=(),
        )

    every = ("batchtopk", "gated", "jumprelu", "standard", "topk")
    rows = [row("explained variance", every), row("CE-loss score", every)]
    rows += [
        row("probing, top-1", ("batchtopk", "topk")),
        row("TPP", ("batchtopk", "topk")),
    ]
    rows.append(row("dead fraction", ("batchtopk", "gated", "jumprelu", "topk")))
    assert results_brief.column_bases(rows, "tied", STOCK_BASE) == (
        "batchtopk, gated, jumprelu, standard, topk (probing, top-1 / TPP: "
        "batchtopk, topk only; dead fraction: - standard)"
    )


def test_the_seeds_line_groups_sweeps_by_what_their_seeds_vary():
    def runs(varies):
        records = sweep(aligned_ev=0.0, aligned_dead=0.0, ks=(8,))
        for r in records:
            r["eval_config"]["sweep"] = {"seed_varies_data": varies}
        return SweepRecords.from_json(records).runs

    line = results_brief.seeds_line(
        {"a": runs(False), "b": runs(True), "c": runs(False)}
    )
    assert line == (
        "In `a` and `c` the seeds vary the initialisation only (every run sees the "
        "same batches in the same order); in `b` the seeds vary the initialisation "
        "and the data order."
    )
    # A sweep just started, with no main run recorded yet, is not named.
    assert results_brief.seeds_line({"a": runs(False), "new": ()}) == (
        "In `a` the seeds vary the initialisation only (every run sees the same "
        "batches in the same order)."
    )


def test_the_committed_readme_says_form_bases_and_seeds():
    block = published.readme_results()
    assert "| `tied` |" in block and "|  | `projected` |" in block
    assert "never" not in block and "mixed" not in block
    # A fair-control column that pools fewer bases than its stock column, for
    # want of a fair control, says so (on synthetic data: p-annealing).
    for name in published.BRIEF_SWEEPS:
        rows = published._rows(name)
        pooled = {
            role: {
                b
                for r in rows
                if (r.alignment, r.role, r.base) == ("tied", role, "pooled")
                for b in r.bases
            }
            for role in (STOCK_BASE, FAIR_CONTROL)
        }
        lacking = {
            b
            for r in rows
            if (r.alignment, r.role, r.base) == ("tied", FAIR_CONTROL, "pooled")
            for b in r.no_reference
        }
        for base in (pooled[STOCK_BASE] - pooled[FAIR_CONTROL]) & lacking:
            assert f"{base}: no fair control" in block.split(f"`{name}`", 1)[1]
    assert "the seeds vary the initialisation" in block


def test_the_committed_length_lines_name_every_curve_metric():
    lines = published.length_lines().splitlines()
    synthetic = [line for line in lines if "`curves_synthetic_cpu`" in line]
    text = [line for line in lines if "`curves_cpu`" in line]
    for metric in ("dead fraction", "explained variance", "MCC", "F1"):
        assert any(f", {metric} vs" in line for line in synthetic), metric
    for metric in ("explained variance", "CE-loss score"):
        assert any(f", {metric} vs" in line for line in text), metric
