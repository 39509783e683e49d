"""The embedded default corpus, and how `--dataset` is resolved to text.

Default corpus: the source files of the CPython standard library that runs this
package (code, docstrings and comments; English prose and Python). Every Python
installation has it, so it needs no download at run time or set-up time. It is
distributed under the Python Software Foundation License version 2 (a permissive,
GPL-compatible licence); we read it from the user's own installation and never
redistribute it. Test suites are left out (they hold deliberately malformed text),
and so is anything installed into site-packages.

The corpus is deterministic for a given Python version: files are listed in sorted
order, shuffled with a fixed seed (so the first tokens are not all from `_*.py`),
and split into train and eval documents by position. It is materialised once as
two JSONL files (`{"text": ...}` per line) under the cache root, which
`datasets.load_dataset("json", ...)` reads offline.
"""

import json
import os
import random
import socket
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Re-exported: callers import the atomic writer from here too.
from saelens_aligned.io import write_text_atomic

DEFAULT_CORPUS_NAME = "python-stdlib"
# Files are shuffled with this seed; every `EVAL_EVERY`-th file goes to eval.
CORPUS_SEED = 0
EVAL_EVERY = 10
# Longer files are cut, so one huge module cannot dominate a small token budget.
MAX_CHARS_PER_DOCUMENT = 20_000
# Directories (relative path components) left out of the stdlib corpus.
EXCLUDED_PARTS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
)
COMPLETE_MARKER = ".saelens_aligned_complete"
TEXT_SUFFIXES = (".txt", ".md", ".text")
JSON_SUFFIXES = (".jsonl", ".json")


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
    """

    name: str
    train: tuple[str, ...] | str
    eval: tuple[str, ...] | None
    hub: bool = False
    licence: str = "unknown (user-supplied)"

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
    texts: Sequence[str], seed: int = CORPUS_SEED, eval_every: int = EVAL_EVERY
) -> tuple[list[str], list[str]]:
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
    from saelens_aligned.offline import cache_root

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = cache_root(cache_dir) / "corpora" / f"{DEFAULT_CORPUS_NAME}-{version}"
    train_path, eval_path = target / "train.jsonl", target / "eval.jsonl"
    if not (target / COMPLETE_MARKER).exists():
        documents = list(_read_documents(stdlib_source_files(stdlib_dir())))
        train, held_out = split_documents(documents)
        target.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(train_path, train)
        write_jsonl_atomic(eval_path, held_out)
        write_text_atomic(
            target / COMPLETE_MARKER,
            f"{len(train)} train / {len(held_out)} eval documents from {stdlib_dir()}\n",
        )
    return TextCorpus(
        name=f"CPython {version} standard library source ({DEFAULT_CORPUS_NAME})",
        train=(str(train_path),),
        eval=(str(eval_path),),
        licence="Python Software Foundation License v2 (read from the local install)",
    )


def write_jsonl_atomic(path: Path, texts: Iterable[str]) -> None:
    write_text_atomic(
        path, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    )


class DatasetResolutionError(ValueError):
    """`--dataset` names nothing usable; the message says what to pass instead."""


def hub_is_offline() -> bool:
    """True when HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set or huggingface.co
    cannot be reached within a few seconds."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return True
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=3):
            return False
    except OSError:
        return True


def local_text_files(spec: str) -> tuple[str, ...] | None:
    """The local text/JSONL files `spec` names (a file, a directory or a
    comma-separated list), or None when `spec` is not a local path."""
    parts = [p for p in spec.split(",") if p]
    paths = [Path(p).expanduser() for p in parts]
    if not paths or not all(p.exists() for p in paths):
        # "org/name" is a hub dataset; "./x", "/x", "~/x" or "x.jsonl" a local path.
        if any(p.exists() for p in paths) or any(
            p.startswith((".", "/", "~")) or p.endswith(TEXT_SUFFIXES + JSON_SUFFIXES)
            for p in parts
        ):
            missing = [str(p) for p in paths if not p.exists()]
            raise DatasetResolutionError(f"--dataset: no such file: {missing}")
        return None
    files: list[str] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                str(f)
                for f in path.rglob("*")
                if f.is_file() and f.name.endswith(TEXT_SUFFIXES + JSON_SUFFIXES)
            )
        else:
            files.append(str(path))
    kinds = {f.endswith(JSON_SUFFIXES) for f in files}
    if not files:
        raise DatasetResolutionError(
            f"--dataset {spec!r}: no .txt/.md/.jsonl/.json files found there."
        )
    if len(kinds) > 1:
        raise DatasetResolutionError(
            f"--dataset {spec!r} mixes plain-text and JSON files; pass one kind."
        )
    return tuple(files)


def resolve_corpus(spec: str | None, cache_dir: str | Path | None = None) -> TextCorpus:
    """Turn `--dataset` into a TextCorpus, failing fast with a useful message.

    None: the embedded default corpus. Local files/directories: used as they are.
    Anything else: a Hugging Face dataset path, which needs the hub.
    """
    if spec is None:
        return default_corpus(cache_dir)
    files = local_text_files(spec)
    if files is not None:
        return TextCorpus(name=spec, train=files, eval=None)
    if hub_is_offline():
        raise DatasetResolutionError(
            f"--dataset {spec!r} is not a local file or directory, and the Hugging "
            "Face hub is unreachable (offline, or HF_HUB_OFFLINE=1), so it cannot be "
            "read as a hub dataset. Pass local text instead: --dataset a.txt,b.jsonl "
            "or --dataset some/dir (plain .txt/.md files, or JSONL with a 'text' "
            "field), or leave --dataset out for the embedded default corpus."
        )
    return TextCorpus(name=spec, train=spec, eval=None, hub=True)


def load_corpus_split(corpus: TextCorpus, split: str) -> Any:
    """A `datasets.Dataset` (or IterableDataset, for the hub) of the split."""
    import datasets

    source = corpus.eval if split == "eval" and corpus.eval else corpus.train
    if corpus.hub:
        assert isinstance(source, str)
        # A dataset script is remote code: never run it (datasets' default asks).
        return datasets.load_dataset(
            source, split="train", streaming=True, trust_remote_code=False
        )
    assert isinstance(source, tuple)
    builder = "json" if source[0].endswith(JSON_SUFFIXES) else "text"
    return datasets.load_dataset(builder, data_files=list(source), split="train")
