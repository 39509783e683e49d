"""The one text loader: a dataset spec (local files, a named corpus or a Hugging
Face dataset) resolved to a `TextCorpus`, and its train or eval rows."""

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from saelens_aligned.pipeline.corpora import (
    BROWN_CORPUS_NAME,
    CORPUS_SEED,
    DEFAULT_CORPUS_NAME,
    EVAL_FRACTION,
    CorpusUnavailableError,
    TextCorpus,
    brown_corpus,
    default_corpus,
)
from saelens_aligned.pipeline.packaged_english import (
    PACKAGED_ENGLISH_NAME,
    packaged_english_corpus,
)

TEXT_SUFFIXES = (".txt", ".md", ".text")
JSON_SUFFIXES = (".jsonl", ".json")

__all__ = ["TextCorpus", "default_corpus"]


NAMED_CORPORA: dict[str, Callable[[str | Path | None], TextCorpus]] = {
    DEFAULT_CORPUS_NAME: lambda cache_dir: default_corpus(cache_dir),
    BROWN_CORPUS_NAME: brown_corpus,
    PACKAGED_ENGLISH_NAME: lambda cache_dir: packaged_english_corpus(cache_dir),
}
"""The corpora a `--dataset` / sweep `dataset:` names (corpora.py,
packaged_english.py); each is built once into the cache from its fetched files."""


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


def resolve_corpus(
    spec: str | Sequence[str] | None,
    cache_dir: str | Path | None = None,
    text_column: str = "text",
    eval_fraction: float = EVAL_FRACTION,
) -> TextCorpus:
    """Turn a dataset spec into a TextCorpus, failing fast with a useful message.

    None: the embedded default corpus. A name of `NAMED_CORPORA`
    (`python-stdlib`, `brown`, `packaged-english`): that corpus. Local files/directories (a list, or
    one comma-separated string): used as they are. Anything else: a Hugging Face
    dataset path, which needs the hub.
    """
    if spec is None:
        return default_corpus(cache_dir)
    joined = spec if isinstance(spec, str) else ",".join(str(s) for s in spec)
    if joined in NAMED_CORPORA:
        try:
            return NAMED_CORPORA[joined](cache_dir)
        except CorpusUnavailableError as e:
            raise DatasetResolutionError(str(e)) from e
    files = local_text_files(joined)
    if files is not None:
        return TextCorpus(
            name=joined,
            train=files,
            eval=None,
            text_column=text_column,
            eval_fraction=eval_fraction,
        )
    if hub_is_offline():
        raise DatasetResolutionError(
            f"--dataset {joined!r} is not a local file or directory, nor a named "
            f"corpus ({sorted(NAMED_CORPORA)}), and the Hugging "
            "Face hub is unreachable (offline, or HF_HUB_OFFLINE=1), so it cannot be "
            "read as a hub dataset. Pass local text instead: --dataset a.txt,b.jsonl "
            "or --dataset some/dir (plain .txt/.md files, or JSONL with a 'text' "
            "field), or leave --dataset out for the embedded default corpus."
        )
    return TextCorpus(
        name=joined,
        train=joined,
        eval=None,
        hub=True,
        text_column=text_column,
        eval_fraction=eval_fraction,
    )


def load_corpus_split(corpus: TextCorpus, split: str) -> Any:
    """The rows of one split ("train" or "eval") as a `datasets.Dataset` with a
    `text` column (an IterableDataset for a streamed hub dataset).

    A corpus with held-out files reads them for "eval". One without (user files, a
    hub dataset) is split by rows: a fixed-seed `corpus.eval_fraction` of them is
    eval and never trained on. A streamed hub dataset cannot be split by rows; both splits
    then read the same stream.
    """
    import datasets

    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}.")
    if corpus.hub:
        assert isinstance(corpus.train, str)
        # A dataset script is remote code: never run it (datasets' default asks).
        rows = datasets.load_dataset(
            corpus.train, split="train", streaming=True, trust_remote_code=False
        )
        return _text_column(rows, corpus)
    source = corpus.eval if split == "eval" and corpus.eval else corpus.train
    assert isinstance(source, tuple)
    builder = "json" if source[0].endswith(JSON_SUFFIXES) else "text"
    rows = _text_column(
        datasets.load_dataset(builder, data_files=list(source), split="train"), corpus
    )
    if corpus.eval:
        return rows
    n_eval = max(1, round(len(rows) * corpus.eval_fraction))
    if n_eval >= len(rows):
        raise DatasetResolutionError(
            f"--dataset {corpus.name!r} has {len(rows)} rows: too few to hold out "
            f"{n_eval} for evaluation. Pass more text."
        )
    parts = rows.train_test_split(test_size=n_eval, seed=CORPUS_SEED, shuffle=True)
    return parts["test" if split == "eval" else "train"]


def _text_column(rows: Any, corpus: TextCorpus) -> Any:
    column = corpus.text_column
    names = rows.column_names
    if names is not None and column not in names:
        raise DatasetResolutionError(
            f"--dataset {corpus.name!r} has no {column!r} column (columns: "
            f"{names}); pass the text column's name."
        )
    if column != "text":
        rows = rows.rename_column(column, "text")
    return rows.select_columns(["text"]) if names is not None else rows
