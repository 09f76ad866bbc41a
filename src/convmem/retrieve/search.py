"""Scoring and ranking one user's turns for a query."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Sequence

import numpy as np

from convmem.index.user_index import UserIndex
from convmem.models import Hit
from convmem.retrieve.assistant import weigh_assistant
from convmem.retrieve.config import RetrievalConfig
from convmem.retrieve.events import event_bounds, inside_event_bounds
from convmem.retrieve.timeexpr import TimeCues, day_key, question_cues
from convmem.retrieve.fusion import minmax, rrf, weighted
from convmem.retrieve.updates import order_updates

# words, with inner apostrophes kept (O'Brien, don't) but a possessive 's split off (Caroline's -> Caroline)
_NAME = re.compile(r"[^\W\d_][\w-]*(?:['\u2019](?!s\b)[\w-]+)*")


def score_turns(index: UserIndex, query: str, qvec: np.ndarray | None, config: RetrievalConfig,
                now: datetime | None = None) -> np.ndarray:
    """One fused relevance score per turn (higher is better). `now` is when the question is asked."""
    n = len(index.rows)
    cues = question_cues(query, now) if (config.time_boost or config.order_boost) else TimeCues()
    day_keys = " ".join(day_key(r.start) for r in cues.ranges if r.end - r.start <= timedelta(days=1))
    lexical_query = f"{query} {day_keys}" if day_keys else query
    dense = config.dense and qvec is not None and index.vectors.shape[1] > 0
    scores = fuse([index.lexical.score(lexical_query)] if config.lexical else [],
                  [index.cosines(qvec)] if dense else [], config, n)
    if config.value == "round" and n:
        rounds = index.rounds()
        per_round = fuse([rounds.lexical.score(lexical_query)] if config.lexical else [],
                         [rounds.cosines(index, qvec)] if dense else [], config, len(rounds.vectors))
        scores = per_round[rounds.round_of] + 1e-3 * scores  # the round's score; its own breaks ties inside it
    if config.speaker_boost:
        scores = boost_named_speakers(index, query, scores, config.speaker_boost)
    if config.neighbour_weights or config.answer_weight:
        spread = spread_to_neighbours(scores, index.session_index, config.neighbour_weights)
        if config.answer_weight:
            spread = answers_from_questions(scores, spread, index.answers, config.answer_weight)
        scores = np.where(index.dialogue, spread, scores)
    if config.assistant_weight != 1.0:
        scores = weigh_assistant(scores, index.assistant, query, config.assistant_weight)
    if config.time_boost and cues.ranges:
        inside = np.zeros(n, dtype=bool)
        for r in cues.ranges:
            inside |= (index.timestamps >= r.start.timestamp()) & (index.timestamps <= r.end.timestamp())
        if config.told_date_boost and not inside.all():
            told, narrow = told_inside(index, cues)
            inside |= told
            scores = scores * np.where(narrow, 1.0 + config.told_date_boost, 1.0)
        scores = scores * np.where(inside, 1.0 + config.time_boost, 1.0)
    if config.event_bounds and config.time_boost and n:
        bounds = event_bounds(query)
        inside = inside_event_bounds(index.lexical, index.timestamps, bounds) if bounds else None
        if inside is not None:
            scores = scores * np.where(inside, 1.0 + config.time_boost, 1.0)
    if config.session_prior and n:
        scores = scores + config.session_prior * session_doc_scores(index, query, qvec, config)[index.session_index]
    if config.order_boost and cues.order and n > 1:
        lo, hi = index.timestamps.min(), index.timestamps.max()
        age = (index.timestamps - lo) / (hi - lo) if hi > lo else np.zeros(n)
        scores = scores * (1.0 + config.order_boost * (age if cues.order == "latest" else 1.0 - age))
    return scores


#: a range at most this long names a day or a week: a turn dating its event there is pointed at, not just near
_NARROW = timedelta(days=14)


def told_inside(index: UserIndex, cues: TimeCues) -> tuple[np.ndarray, np.ndarray]:
    """Which turns date their own events inside a range the question names ("I went to the Art Cube on 2/15" for
    "in February", "I planted tomatoes today" said two weeks before "two weeks ago"), and which of them inside a
    narrow one (a day or a week). `score_turns` counts the first as inside the range wherever they were said, and
    boosts the second once more: across a month or a year many turns say "yesterday", across a week few do.
    It does neither when the range holds every turn: then the range says nothing about which turn is meant."""
    turn, start, end = index.told()
    told = np.zeros(len(index.rows), dtype=bool)
    narrow = np.zeros(len(index.rows), dtype=bool)
    for r in cues.ranges:
        hit = turn[(start <= r.end.timestamp()) & (end >= r.start.timestamp())]
        told[hit] = True
        if r.end - r.start <= _NARROW:
            narrow[hit] = True
    return told, narrow


def fuse(lexical: list[np.ndarray], dense: list[np.ndarray], config: RetrievalConfig, n: int) -> np.ndarray:
    """One score per document from its lexical and dense scores (either list may be empty)."""
    lists = lexical + dense
    if not lists:
        return np.zeros(n)
    if len(lists) == 1:
        return minmax(lists[0])
    if config.fusion == "weighted":
        return weighted(lists[0], lists[1], config.dense_weight)
    return rrf(lists, config.rrf_k)


def boost_named_speakers(index: UserIndex, query: str, scores: np.ndarray, boost: float) -> np.ndarray:
    """Turns spoken by someone the query names ("What did Caroline ...") score (1 + boost) times higher."""
    words = {w.casefold() for w in _NAME.findall(query)}
    named = [s for s in index.speakers if s.casefold() in words or s.split()[0].casefold() in words]
    if not named:
        return scores
    mask = np.isin(index.speaker_index, [index.speakers.index(s) for s in named])
    return scores * np.where(mask, 1.0 + boost, 1.0)


def spread_to_neighbours(scores: np.ndarray, session_index: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Each turn also gets weight_d times the best score of the turns d positions away in its session.

    A conversation answers where it is asked: the turn after a matching question (or before a matching reply)
    is often the evidence. This is LongMemEval's round-level value, generalised to any window. `score_turns`
    applies it in dialogues only: in a session with one speaker (notes, a user-turns-only memory) adjacent
    messages are separate statements, and spreading them measurably hurts (docs/retrieval.md).
    """
    out = scores.astype(np.float64).copy()
    for d, w in enumerate(weights, start=1):
        if not w or d >= len(scores):
            continue
        same = session_index[d:] == session_index[:-d]
        before = np.zeros_like(out)
        after = np.zeros_like(out)
        before[d:] = np.where(same, scores[:-d], 0.0)
        after[:-d] = np.where(same, scores[d:], 0.0)
        out += w * np.maximum(before, after)
    return out


def answers_from_questions(scores: np.ndarray, spread: np.ndarray, answers: np.ndarray, weight: float) -> np.ndarray:
    """A reply to a question (`UserIndex.answers`) scores at least its own score plus `weight` x the question's.

    Between people the question often holds the words a later question uses ("What are your plans for the
    summer?") and the reply holds the answer ("Researching adoption agencies"): LongMemEval's round value, with the
    reply given a larger share of its question than the plain neighbour share (`neighbour_weights`)."""
    if not answers.any():
        return spread
    question = np.zeros_like(spread)
    question[1:] = scores[:-1]
    return np.where(answers, np.maximum(spread, scores + weight * question), spread)


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


def session_doc_scores(index: UserIndex, query: str, qvec: np.ndarray | None, config: RetrievalConfig) -> np.ndarray:
    """Each session scored as one document (BM25 over its joined turns + cosine to its mean turn vector, each
    min-max normalised, weighted 50/50): evidence spread over several turns of a session adds up here."""
    docs = index.sessions()
    lists = []
    if config.lexical:
        lists.append(minmax(docs.lexical.score(query)))
    if config.dense and qvec is not None and docs.vectors.shape[1]:
        lists.append(minmax(docs.vectors @ qvec))
    return sum(lists) / len(lists) if lists else np.zeros(len(index.session_ids))


def session_scores(index: UserIndex, scores: np.ndarray, mask: np.ndarray, how: str,
                   doc_scores: np.ndarray | None = None, doc_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Score of each session from its turns' scores (plus `doc_weight` x its score as one document), and the
    index of its best turn (-1 when all masked)."""
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
    if doc_scores is not None and doc_weight:
        best = np.where(np.isfinite(best), best + doc_weight * doc_scores, best)
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


def diversify(order: np.ndarray, scores: np.ndarray, session_index: np.ndarray, decay: float, k: int) -> list[int]:
    """Greedy re-ranking of the first 3k of `order`: a turn's score is multiplied by `decay` for every turn of its
    session already picked (MMR with the session as the redundancy measure), so evidence spread over sessions
    can reach the top k. The rest of `order` follows unchanged."""
    pool = [int(i) for i in order[: 3 * k]]
    picked: list[int] = []
    seen: dict[int, int] = {}
    while pool and len(picked) < k:
        best = max(pool, key=lambda i: scores[i] * decay ** seen.get(int(session_index[i]), 0))
        pool.remove(best)
        picked.append(best)
        seen[int(session_index[best])] = seen.get(int(session_index[best]), 0) + 1
    return picked + pool + [int(i) for i in order[3 * k:]]


def rank(index: UserIndex, scores: np.ndarray, mask: np.ndarray, *, k: int, granularity: str,
         session_agg: str = "max", neighbours: int = 0, doc_scores: np.ndarray | None = None,
         doc_weight: float = 0.0, session_diversity: float = 1.0, update_similarity: float = 0.0,
         update_closeness: float = 0.0, prefer: str = "latest") -> list[Hit]:
    """The k best turns or sessions. `update_similarity` > 0: statements of the same thing made in different
    sessions are ordered `prefer`="latest" (or "first") first (`convmem.retrieve.updates`)."""
    if granularity == "session":
        sscores, best_turn = session_scores(index, scores, mask, session_agg, doc_scores, doc_weight)
        order = [s for s in np.argsort(-sscores, kind="stable") if best_turn[s] >= 0]
        if update_similarity:
            session_of = {int(best_turn[s]): int(s) for s in order}
            order = [session_of[i] for i in order_updates(
                index, [best_turn[s] for s in order], similarity=update_similarity, prefer=prefer,
                scores=[sscores[s] for s in order], closeness=update_closeness)]
        order = order[:k]
        hits = [make_hit(index, int(best_turn[s]), sscores[s]) for s in order]
        idx = [int(best_turn[s]) for s in order]
    else:
        masked = np.where(mask, scores, -np.inf)
        order = np.argsort(-masked, kind="stable")[: int(mask.sum())]
        if update_similarity:
            order = np.asarray(order_updates(index, order, similarity=update_similarity, prefer=prefer,
                                             scores=scores[order], closeness=update_closeness), dtype=int)
        if session_diversity < 1.0:
            order = diversify(order, scores, index.session_index, session_diversity, min(k, 50))
        idx = [int(i) for i in order[:k]]
        hits = [make_hit(index, i, scores[i]) for i in idx]
    if neighbours:
        for hit, i in zip(hits, idx):
            hit.neighbours = neighbours_of(index, i, neighbours)
    return hits
