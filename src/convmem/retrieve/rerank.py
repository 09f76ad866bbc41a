"""Second stage: a local language model re-scores the first stage's best turns.

The score of a turn is how likely the model finds the question after it (query likelihood, as in "UPR",
Sachan et al. 2022): the mean log-probability per token of the question following
"Passage: <the turn>\\nA question about this passage:". No training, and any causal LM will do; the packaged one is
SmolLM2-135M-Instruct (`convmem.providers.llm_local`). An OpenAI-compatible endpoint does not return the
likelihood of a given text, so the second stage runs on a local model only.

Only the `depth` best turns are re-scored. Their new order is the first stage's z-scored score plus `weight` x the
z-scored likelihood; their scores are mapped back into the range the first stage gave them, so they stay above
every turn that was not re-scored and the steps after scoring (filters, knowledge-update order, session grouping)
work on them unchanged. Long turns are cut to the sentences around the best match (`trim_to_match`) first.

Cost: one forward pass over `depth` short passages per question, seconds on two CPU cores (docs/retrieval.md),
so it is off by default. Likelihoods are cached per (question, passage), so the same question asked again (a
search, then its context) pays once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol, Sequence

import numpy as np

from convmem.context.assemble import trim_to_match
from convmem.index.text import analyze
from convmem.index.user_index import UserIndex
from convmem.providers.tokens import TokenCounter

RERANKERS = ("none", "lm")
PASSAGE_TOKENS = 160  # a turn is cut to this many tokens around its best match before it is scored


class QuestionScorer(Protocol):
    def question_likelihood(self, question: str, passages: Sequence[str]) -> np.ndarray: ...


class LikelihoodCache:
    """The last `size` (question, passage) -> likelihood scores; safe to share between threads."""

    def __init__(self, size: int = 4096):
        self.size = size
        self._items: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def scores(self, scorer: QuestionScorer, question: str, passages: Sequence[str]) -> np.ndarray:
        with self._lock:
            known = {}
            for p in dict.fromkeys(passages):
                if (question, p) in self._items:
                    self._items.move_to_end((question, p))
                    known[p] = self._items[(question, p)]
        missing = [p for p in dict.fromkeys(passages) if p not in known]
        if missing:  # scored outside the lock: the model is slow, and other questions' hits need not wait
            known.update(zip(missing, (float(x) for x in scorer.question_likelihood(question, missing))))
            with self._lock:
                for p in missing:
                    self._items[(question, p)] = known[p]
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return np.asarray([known[p] for p in passages], dtype=float)


def passage(index: UserIndex, i: int, terms: set[str], counter: TokenCounter) -> str:
    """Turn i as the model reads it: cut around its best match; in a dialogue, with the speaker's name."""
    row = index.rows[i]
    text = trim_to_match(row.text, terms, PASSAGE_TOKENS, counter)
    return f"{row.speaker}: {text}" if index.dialogue[i] else text


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def rerank(index: UserIndex, scores: np.ndarray, query: str, scorer: QuestionScorer, *, depth: int,
           weight: float, counter: TokenCounter, cache: LikelihoodCache | None = None) -> np.ndarray:
    """The scores with the `depth` best turns re-scored (see the module docstring); the others unchanged."""
    n = min(depth, len(scores))
    if n < 2 or weight <= 0 or not query.strip():
        return scores
    top = np.argsort(-scores, kind="stable")[:n]
    terms = set(analyze(query))
    texts = [passage(index, int(i), terms, counter) for i in top]
    likelihood = cache.scores(scorer, query, texts) if cache else scorer.question_likelihood(query, texts)
    first = scores[top]
    combined = _z(first) + weight * _z(np.asarray(likelihood, dtype=float))
    span = combined.max() - combined.min()
    if span <= 0:
        return scores
    lo, hi = first.min(), first.max()
    out = scores.astype(float, copy=True)
    out[top] = lo + (hi - lo) * (combined - combined.min()) / span if hi > lo else lo + combined - combined.min()
    return out
