"""The results blocks of README.md and docs/results.md are the records' own."""

import argparse

import pytest

from benchmarks.reports import published
from benchmarks.reports.generated import Block, fill, stale_documents


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
