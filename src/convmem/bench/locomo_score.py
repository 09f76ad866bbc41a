"""Official LoCoMo QA scoring, as in `task_eval/evaluation.py` of snap-research/LoCoMo.

normalize_answer -> f1_score (token F1 over Porter stems) -> per-category rule in `eval_question_answering`.
Needs nltk's PorterStemmer (the `bench` extra), the stemmer the official code uses.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Iterable

from convmem.bench.datasets import LOCOMO_CATEGORIES
from convmem.errors import InputError, require

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCT = frozenset(string.punctuation)
ADVERSARIAL_MARKERS = ("no information available", "not mentioned")


@lru_cache(maxsize=1)
def _stemmer():
    return require("nltk.stem", "bench", "the official LoCoMo F1").PorterStemmer()


def normalize_answer(text: str) -> str:
    """Official `normalize_answer`: drop commas, lowercase, drop ASCII punctuation, replace the words
    a/an/the/and by a space, collapse whitespace (in that order)."""
    text = str(text).replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def stem_tokens(text: str) -> list[str]:
    """Normalised, whitespace-split tokens, each Porter-stemmed (nltk's default NLTK_EXTENSIONS mode)."""
    stem = _stemmer().stem
    return [stem(w) for w in normalize_answer(text).split()]


def f1_score(prediction: str, ground_truth: str) -> float:
    """Official `f1_score`: token F1 between the stemmed tokens (multiset overlap); 0.0 without overlap."""
    pred, gold = stem_tokens(prediction), stem_tokens(ground_truth)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def multi_hop_f1(prediction: str, ground_truth: str) -> float:
    """Official `f1` (category 1): split both on ',' (parts stripped); mean over gold parts of the best F1
    against any predicted part."""
    preds = [p.strip() for p in str(prediction).split(",")]
    golds = [g.strip() for g in str(ground_truth).split(",")]
    return sum(max(f1_score(p, g) for p in preds) for g in golds) / len(golds)


def adversarial_score(prediction: str) -> float:
    """Official category 5 rule: 1.0 when the lowercased output contains 'no information available' or
    'not mentioned', else 0.0 (the gold answer is not used)."""
    low = str(prediction).lower()
    return 1.0 if any(m in low for m in ADVERSARIAL_MARKERS) else 0.0


def qa_score(prediction: str, answer: str, category: int) -> float:
    """Official per-category score. 1 multi-hop: `multi_hop_f1`; 2 temporal, 4 single-hop: `f1_score`;
    3 open-domain: `f1_score` against the gold up to its first ';' (stripped); 5 adversarial: `adversarial_score`.
    `answer` is the gold as the official code reads it: str(answer), or adversarial_answer when answer is absent.
    """
    category = int(category)
    if category not in LOCOMO_CATEGORIES:
        raise InputError(f"LoCoMo category must be 1..5, got {category}")
    answer = str(answer)
    if category == 5:
        return adversarial_score(prediction)
    if category == 1:
        return multi_hop_f1(prediction, answer)
    if category == 3:
        answer = answer.split(";")[0].strip()
    return f1_score(prediction, answer)


def aggregate_qa(scored: Iterable[tuple[int, float]]) -> dict:
    """Mean score overall and per official category name from (category, score) pairs.

    {'n': count, 'overall': mean, 'by_category': {name: {'n': count, 'mean': mean}}}; means are 0.0 when empty.
    """
    scored = list(scored)
    by_cat: dict[str, dict] = {}
    for cat, name in LOCOMO_CATEGORIES.items():
        vals = [s for c, s in scored if int(c) == cat]
        if vals:
            by_cat[name] = {"n": len(vals), "mean": sum(vals) / len(vals)}
    total = sum(s for _, s in scored)
    return {"n": len(scored), "overall": total / len(scored) if scored else 0.0, "by_category": by_cat}
