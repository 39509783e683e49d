"""The validation split: held-out data the learning-rate grid is scored on, apart
from the training data and from the eval data the reported metrics read.

Choosing a rate on the numbers that are then reported selects on their noise
(the grid's winner is also the main runs' seed 0). So the grid reads its own data:

- LM sweeps: the last `VALIDATION_FRACTION` of the training split's rows (in the
  corpus's fixed order), written once as a JSONL file under the cache root. The
  training activation cache reads the training rows in order from the first
  (SAELens' CacheActivationsRunner shuffles the cached activations, not the
  rows), so `validation_corpus` checks that the rows before the validation
  rows hold at least `TRAINING_MARGIN` times the tokens the cache takes: no
  validation text can be among them.
- Synthetic sweeps: samples of the synthetic model drawn with their own seed
  (`activation_seed + VALIDATION_SEED_OFFSET`; training uses `activation_seed`,
  eval `activation_seed + 1`).
"""

import hashlib
import json
from dataclasses import replace
from typing import Any

from saelens_aligned.io.cache import cache_root
from saelens_aligned.io.files import write_text_atomic
from saelens_aligned.pipeline.corpora import TextCorpus
from saelens_aligned.pipeline.text import load_corpus_split

VALIDATION_FRACTION = 0.1
TRAINING_MARGIN = 2.0
VALIDATION_SEED_OFFSET = 2


class ValidationSplitError(ValueError):
    """No validation split can be held out; the message names the field and fix."""


def validation_rows(n_rows: int) -> range:
    """Indices of the training split's rows that form the validation split."""
    n_validation = max(1, round(n_rows * VALIDATION_FRACTION))
    if n_validation >= n_rows:
        raise ValidationSplitError(
            f"lr_split: the training text has {n_rows} rows, too few to hold out "
            "a validation split; pass more text or set lr_split: eval."
        )
    return range(n_rows - n_validation, n_rows)


def tokens_before(texts: Any, count_tokens: Any, enough: int) -> int:
    """Tokens of `texts` in order, counting stops once past `enough`."""
    total = 0
    for text in texts:
        total += count_tokens(text)
        if total > enough:
            break
    return total


def validation_corpus(
    corpus: TextCorpus, training_tokens: int, count_tokens: Any
) -> TextCorpus:
    """`corpus` with its eval files replaced by the validation rows (so an
    evaluation of its "eval" split reads validation text). `training_tokens`:
    tokens the training cache takes; `count_tokens(text)`: the model's count."""
    if corpus.hub:
        raise ValidationSplitError(
            f"lr_split: {corpus.name!r} is streamed from the hub and cannot be "
            "split by rows; use local text, or set lr_split: eval."
        )
    rows = load_corpus_split(corpus, "train")
    held = validation_rows(len(rows))
    needed = int(TRAINING_MARGIN * training_tokens)
    before = tokens_before(
        (rows[i]["text"] for i in range(held.start)), count_tokens, needed
    )
    if before < needed:
        raise ValidationSplitError(
            f"lr_split: the training text before the validation rows holds "
            f"{before:,} tokens, under {TRAINING_MARGIN:g}x the {training_tokens:,} "
            "the training cache reads; pass more text, lower training_tokens or "
            "set lr_split: eval."
        )
    key = json.dumps([corpus.fingerprint(), held.start, held.stop], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in corpus.name)
    path = cache_root() / "validation" / f"{slug}-{digest}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (json.dumps({"text": rows[i]["text"]}) for i in held)
        write_text_atomic(path, "\n".join(lines) + "\n")
    return replace(corpus, eval=(str(path),), text_column="text")


def validation_seed(activation_seed: int) -> int:
    """Seed of a synthetic sweep's validation samples."""
    return activation_seed + VALIDATION_SEED_OFFSET
