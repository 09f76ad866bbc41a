"""The LongMemEval paper's `flat-bm25` baseline, as in the authors' `run_retrieval.py`.

Official rule (`DenseRetrievalMaster.run_flat_retrieval`, retriever 'flat-bm25'): rank_bm25's `BM25Okapi` with
default parameters, built per question over that question's corpus (`lme_corpus`: user turns only); documents and
query are tokenised with `str.split(" ")` (single spaces, case and punctuation kept, empty tokens kept); the
ranking is the indices sorted by descending score.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from convmem.bench.datasets import lme_corpus, lme_gold, load_longmemeval
from convmem.bench.metrics import KS, aggregate, evaluate_rankings
from convmem.errors import require


def tokenize(text: str) -> list[str]:
    """Official tokenisation: split on single spaces, nothing else (no lowercasing, no punctuation removal)."""
    return text.split(" ")


_WORDS = re.compile(r"\w+")


def tokenize_words(text: str) -> list[str]:
    """`flat-bm25-words`: lowercased runs of word characters (punctuation dropped). Not the protocol's rule: a
    second baseline, because the issue's LoCoMo flat-BM25 figure (0.497) is not what the protocol's rule gives."""
    return _WORDS.findall(text.lower())


TOKENIZERS = {"flat-bm25": tokenize, "flat-bm25-words": tokenize_words}


def rank_docs(query: str, docs: list[str], baseline: str = "flat-bm25") -> list[int]:
    """Indices of `docs`, best BM25Okapi score first.

    Ties: a stable ascending sort reversed, so tied documents come later-in-corpus first. The official
    `np.argsort(scores)[::-1]` uses numpy's default, unstable sort, whose order of ties depends on the array size
    and the CPU's SIMD support; the stable sort keeps the ranking the same on every machine. (On LongMemEval_S
    dev the two orders differ for some tied tail documents but give the same averaged figures to 4 decimals.)
    """
    if not docs:
        return []
    rank_bm25 = require("rank_bm25", "bench", "the flat-bm25 baseline")
    tok = TOKENIZERS[baseline]
    scores = rank_bm25.BM25Okapi([tok(d) for d in docs]).get_scores(tok(query))
    return np.argsort(scores, kind="stable")[::-1].tolist()


def rank(item: Mapping, granularity: str, baseline: str = "flat-bm25") -> list[str]:
    """Ranked official corpus ids (session ids, or `<session_id>_<i+1>` turn ids) for one LongMemEval item."""
    corpus = lme_corpus(item, granularity)
    order = rank_docs(str(item["question"]), [text for _, text in corpus], baseline)
    return [corpus[i][0] for i in order]


def flat_bm25_longmemeval(path, limit: int | None = None, ks=KS) -> dict:
    """Run flat-bm25 at session and turn granularity; official aggregated metrics (abstention excluded).

    Returns {'session': aggregate(...), 'turn': aggregate(...)}; the turn run holds both 'turn' figures and
    the turn->session 'session' figures, as the official script reports them.
    """
    items = load_longmemeval(path, limit)
    out = {}
    for granularity in ("session", "turn"):
        records = evaluate_rankings(
            (
                {
                    "question_id": it["question_id"],
                    "question_type": it["question_type"],
                    "granularity": granularity,
                    "ranked_ids": rank(it, granularity),
                    "gold": lme_gold(it, granularity),
                }
                for it in items
            ),
            ks,
        )
        out[granularity] = aggregate(records)
    return out
