"""BM25 (Okapi, Lucene-style idf) over one user's documents as a sparse matrix: scoring a query is one sparse
column gather and a sum."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
from scipy import sparse

from convmem.index.text import analyze


class BM25Index:
    def __init__(self, docs: Sequence[str], *, k1: float = 1.2, b: float = 0.75):
        vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        lengths = np.zeros(len(docs), dtype=np.float32)
        for i, doc in enumerate(docs):
            terms = analyze(doc)
            lengths[i] = len(terms)
            for term, tf in Counter(terms).items():
                rows.append(i)
                cols.append(vocab.setdefault(term, len(vocab)))
                tfs.append(tf)
        self.vocab = vocab
        n = len(docs)
        tf = np.asarray(tfs, dtype=np.float32)
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        df = np.bincount(c, minlength=len(vocab)).astype(np.float32)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        avg = float(lengths.mean()) if n else 0.0
        norm = k1 * (1 - b + b * lengths[r] / max(avg, 1e-9))
        weights = idf[c] * tf * (k1 + 1) / (tf + norm)
        self.matrix = sparse.csc_matrix((weights, (r, c)), shape=(n, len(vocab)), dtype=np.float32)
        self.n = n

    def query_terms(self, query: str) -> list[int]:
        return [self.vocab[t] for t in dict.fromkeys(analyze(query)) if t in self.vocab]

    def score(self, query: str) -> np.ndarray:
        """BM25 score of every document for the query (zeros where nothing matches)."""
        cols = self.query_terms(query)
        if not cols or not self.n:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self.matrix[:, cols].sum(axis=1)).ravel().astype(np.float32)
