"""BM25 (Okapi, Lucene-style idf) over one user's documents as a sparse matrix: scoring a query is one sparse
column gather and a sum."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import sparse

from convmem.index.text import _WORD, STOPWORDS, analyze, stem


def term_of(word: str) -> str | None:
    """The term `analyze` makes of one lower-cased word match, or None for a stopword."""
    word = word.replace("’", "'")
    if word in STOPWORDS:
        return None
    if word.endswith("'s"):
        word = word[:-2]
    return stem(word)


class BM25Index:
    def __init__(self, docs: Sequence[str], *, k1: float = 1.2, b: float = 0.75):
        # Vectorised construction (same matrix as analysing doc by doc): the words of all documents are found
        # with one regex call per document, each distinct word is analysed once (stopword, possessive, stem),
        # and term frequencies, lengths and weights are computed with numpy.
        n = len(docs)
        findall = _WORD.findall
        word_ids: dict[str, int] = {}
        setdefault = word_ids.setdefault
        tokens: list[int] = []
        counts = np.zeros(n, dtype=np.int64)
        for i, doc in enumerate(docs):
            words = findall(doc.lower())
            counts[i] = len(words)
            tokens.extend([setdefault(w, len(word_ids)) for w in words])
        vocab: dict[str, int] = {}
        word_term = np.full(len(word_ids), -1, dtype=np.int64)
        for w, wid in word_ids.items():  # first-occurrence order, so term ids come out in first-occurrence order
            term = term_of(w)
            if term is not None:
                word_term[wid] = vocab.setdefault(term, len(vocab))
        self.vocab = vocab
        v = len(vocab)
        terms = word_term[np.asarray(tokens, dtype=np.int64)] if tokens else np.zeros(0, dtype=np.int64)
        doc_of = np.repeat(np.arange(n, dtype=np.int64), counts)
        keep = terms >= 0
        terms, doc_of = terms[keep], doc_of[keep]
        lengths = np.bincount(doc_of, minlength=n).astype(np.float32)
        pairs, tf_counts = np.unique(doc_of * max(v, 1) + terms, return_counts=True)
        r, c = pairs // max(v, 1), pairs % max(v, 1)
        tf = tf_counts.astype(np.float32)
        df = np.bincount(c, minlength=v).astype(np.float32)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        avg = float(lengths.mean()) if n else 0.0
        norm = k1 * (1 - b + b * lengths[r] / max(avg, 1e-9))
        weights = idf[c] * tf * (k1 + 1) / (tf + norm)
        self.matrix = sparse.csc_matrix((weights, (r, c)), shape=(n, v), dtype=np.float32)
        self.n = n

    def query_terms(self, query: str) -> list[int]:
        return [self.vocab[t] for t in dict.fromkeys(analyze(query)) if t in self.vocab]

    def score(self, query: str) -> np.ndarray:
        """BM25 score of every document for the query (zeros where nothing matches)."""
        cols = self.query_terms(query)
        if not cols or not self.n:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self.matrix[:, cols].sum(axis=1)).ravel().astype(np.float32)
