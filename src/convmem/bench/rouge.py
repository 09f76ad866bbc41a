"""ROUGE-1, ROUGE-2 and ROUGE-L F1 as Google's `rouge-score` package computes them (`rougeL`, not `rougeLsum`).

Tokens: lowercase, every run of characters other than a-z and 0-9 is a separator; with `stem=True` tokens longer
than 3 characters are Porter-stemmed (nltk's PorterStemmer, the one `rouge-score` uses). ROUGE-N: clipped n-gram
overlap; precision = overlap / candidate n-grams, recall = overlap / reference n-grams, F1 their harmonic mean
(0 when the overlap is 0). ROUGE-L: the longest common subsequence of the two token lists in place of the overlap.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def tokenize(text: str, stem: bool = True) -> list[str]:
    tokens = [t for t in _NON_ALNUM.sub(" ", str(text).lower()).split() if t]
    if stem and tokens:
        from convmem.bench.locomo_score import _stemmer

        porter = _stemmer()
        tokens = [porter.stem(t) if len(t) > 3 else t for t in tokens]
    return tokens


def _f1(overlap: int, n_candidate: int, n_reference: int) -> dict[str, float]:
    p = overlap / n_candidate if n_candidate else 0.0
    r = overlap / n_reference if n_reference else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: Sequence[str], reference: Sequence[str], n: int) -> dict[str, float]:
    c, r = _ngrams(candidate, n), _ngrams(reference, n)
    return _f1(sum((c & r).values()), sum(c.values()), sum(r.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> dict[str, float]:
    return _f1(lcs_length(candidate, reference), len(candidate), len(reference))


def rouge(candidate: str, reference: str, *, stem: bool = True) -> dict[str, float]:
    """{"rouge1", "rouge2", "rougeL"}: F1 of each (candidate = the prediction, reference = the gold)."""
    c, r = tokenize(candidate, stem), tokenize(reference, stem)
    return {"rouge1": rouge_n(c, r, 1)["f1"], "rouge2": rouge_n(c, r, 2)["f1"], "rougeL": rouge_l(c, r)["f1"]}
