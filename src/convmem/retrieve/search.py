"""Scoring and ranking one user's turns for a query."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import numpy as np

from convmem.index.user_index import UserIndex
from convmem.models import Hit
from convmem.retrieve.config import RetrievalConfig
from convmem.retrieve.fusion import rrf, weighted


def score_turns(index: UserIndex, query: str, qvec: np.ndarray | None, config: RetrievalConfig) -> np.ndarray:
    """One fused relevance score per turn (higher is better)."""
    n = len(index.rows)
    lists = []
    if config.lexical:
        lists.append(index.lexical.score(query))
    if config.dense and qvec is not None and index.vectors.shape[1]:
        lists.append(index.vectors @ qvec)
    if not lists:
        return np.zeros(n)
    if len(lists) == 1:
        return lists[0].astype(np.float64)
    if config.fusion == "weighted":
        return weighted(lists[0], lists[1], config.dense_weight)
    return rrf(lists, config.rrf_k)


def turn_mask(index: UserIndex, *, since: datetime | None = None, until: datetime | None = None,
              speakers: Sequence[str] | None = None, roles: Sequence[str] | None = None) -> np.ndarray:
    mask = np.ones(len(index.rows), dtype=bool)
    if since is not None:
        mask &= index.timestamps >= since.timestamp()
    if until is not None:
        mask &= index.timestamps <= until.timestamp()
    if speakers:
        wanted = {s.casefold() for s in speakers}
        mask &= np.fromiter((r.speaker.casefold() in wanted for r in index.rows), bool, len(index.rows))
    if roles:
        wanted = {r.casefold() for r in roles}
        mask &= np.fromiter((r.role.casefold() in wanted for r in index.rows), bool, len(index.rows))
    return mask


def session_scores(index: UserIndex, scores: np.ndarray, mask: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Score of each session from its turns' scores, and the index of its best turn (-1 when all masked)."""
    m = len(index.session_ids)
    best = np.full(m, -np.inf)
    best_turn = np.full(m, -1, dtype=np.int64)
    masked = np.where(mask, scores, -np.inf)
    order = np.argsort(masked, kind="stable")  # ascending: later writes win, so the max stays
    best[index.session_index[order]] = masked[order]
    best_turn[index.session_index[order]] = order
    best_turn[~np.isfinite(best)] = -1
    if how == "max+mean":
        sums = np.bincount(index.session_index, weights=np.where(mask, scores, 0.0), minlength=m)
        counts = np.maximum(np.bincount(index.session_index, weights=mask.astype(float), minlength=m), 1)
        best = np.where(np.isfinite(best), best + 0.1 * sums / counts, best)
    return best, best_turn


def make_hit(index: UserIndex, i: int, score: float) -> Hit:
    r = index.rows[i]
    return Hit(session_id=r.session_id, turn_id=r.turn_id, speaker=r.speaker, role=r.role, timestamp=r.timestamp,
               text=r.text, score=float(score), position=r.position, metadata=r.metadata)


def neighbours_of(index: UserIndex, i: int, width: int) -> list[Hit]:
    """Turns within `width` positions of turn i in the same session (rows are in session, position order)."""
    out = []
    sess = index.session_index[i]
    for j in range(max(0, i - width), min(len(index.rows), i + width + 1)):
        if j != i and index.session_index[j] == sess:
            out.append(make_hit(index, j, 0.0))
    return out


def rank(index: UserIndex, scores: np.ndarray, mask: np.ndarray, *, k: int, granularity: str,
         session_agg: str = "max", neighbours: int = 0) -> list[Hit]:
    if granularity == "session":
        sscores, best_turn = session_scores(index, scores, mask, session_agg)
        order = [s for s in np.argsort(-sscores, kind="stable") if best_turn[s] >= 0][:k]
        hits = [make_hit(index, int(best_turn[s]), sscores[s]) for s in order]
        idx = [int(best_turn[s]) for s in order]
    else:
        masked = np.where(mask, scores, -np.inf)
        idx = [int(i) for i in np.argsort(-masked, kind="stable")[: min(k, int(mask.sum()))]]
        hits = [make_hit(index, i, scores[i]) for i in idx]
    if neighbours:
        for hit, i in zip(hits, idx):
            hit.neighbours = neighbours_of(index, i, neighbours)
    return hits
