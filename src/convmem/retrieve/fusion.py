"""Fusing score lists: reciprocal rank fusion, or a weighted sum of min-max normalised scores."""

from __future__ import annotations

import numpy as np


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each entry (ties broken by position)."""
    order = np.argsort(-scores, kind="stable")
    out = np.empty(len(scores), dtype=np.float64)
    out[order] = np.arange(1, len(scores) + 1)
    return out


def rrf(score_lists: list[np.ndarray], k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion (Cormack et al. 2009): sum of 1 / (k + rank)."""
    return sum(1.0 / (k + ranks(s)) for s in score_lists)


def minmax(scores: np.ndarray) -> np.ndarray:
    if not len(scores):
        return scores.astype(np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:  # all equal: all relevant (1) when they match at all, else all 0
        return np.full(len(scores), 1.0 if hi > 0 else 0.0)
    return (scores - lo) / (hi - lo)


def weighted(lexical: np.ndarray, dense: np.ndarray, dense_weight: float) -> np.ndarray:
    return (1 - dense_weight) * minmax(lexical) + dense_weight * minmax(dense)
