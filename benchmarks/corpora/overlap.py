"""Word n-gram overlap between a training corpus and evaluation texts: pure.

Contamination checks in the literature (GPT-3's, Brown et al. 2020) count a text
as contaminated when it shares a 13-word n-gram with the training data; short
n-grams match common phrases ("one of the most ..."), long ones only copied text.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

NGRAM_WORDS = 13
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore)."""
    return _WORD.findall(text.lower())


def ngram_hashes(text: str, n: int = NGRAM_WORDS) -> set[int]:
    """The hashes of every n consecutive words of `text` (none if shorter)."""
    tokens = words(text)
    return {hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass
class Overlap:
    """How many evaluation texts share an n-gram with the corpus, and which.

    Attributes:
        texts: Evaluation texts checked.
        texts_sharing: Texts with at least one n-gram found in the corpus.
        examples: Shared n-grams (as text) and how many evaluation texts hold them.
    """

    texts: int = 0
    texts_sharing: int = 0
    examples: Counter[str] = field(default_factory=Counter)

    def as_record(self, n_examples: int = 5) -> dict[str, object]:
        return {
            "texts": self.texts,
            "texts_sharing": self.texts_sharing,
            "fraction_sharing": self.texts_sharing / self.texts if self.texts else 0.0,
            "examples": [
                {"ngram": ngram, "texts": count}
                for ngram, count in self.examples.most_common(n_examples)
            ],
        }


def overlap_with(
    corpus_ngrams: set[int], texts: Iterable[str], n: int = NGRAM_WORDS
) -> Overlap:
    """Check each evaluation text's n-grams against the corpus' hashes."""
    result = Overlap()
    for text in texts:
        result.texts += 1
        tokens = words(text)
        shared = {
            " ".join(tokens[i : i + n])
            for i in range(len(tokens) - n + 1)
            if hash(tuple(tokens[i : i + n])) in corpus_ngrams
        }
        if shared:
            result.texts_sharing += 1
            result.examples.update(shared)
    return result
