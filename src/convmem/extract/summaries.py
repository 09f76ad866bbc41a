"""Session summaries: extractive without an LLM, abstractive with one (Conversation Chronicles / ReBot).

Extractive (`extractive_summary`): the session's most central sentences, with their speaker. A turn's centrality is
the cosine of its MiniLM vector to the mean vector of the session (the vectors are the ones the user's index already
holds, so nothing is embedded again); without vectors (a lexical-only retriever), the cosine of its bag of stems to
the session's. Turns are picked by maximal marginal relevance (centrality minus half the similarity to a turn
already picked), at most `max_items`, leaving out turns with fewer than three content words besides the speakers'
names ("Hey!", "Thanks, Caroline!"); from each, the sentence whose words occur in most of the session's turns
(names left out, questions count half). Sentences are cut at 25 words and the summary at `max_words` words (~40-80
tokens), written in the order they were said: `Caroline: I went to a LGBTQ support group yesterday ...`.

Abstractive (`llm_summary`): a chat model is shown the session, one line per turn, and asked for two or three
sentences in the third person; its answer is cut at `max_words` words. A failed call or an empty answer leaves the
extractive summary in place (see `Memory.summaries`); a failed call raises the provider's error.

Summaries are derived on read from the user's index and cached by the user's revision (see `Memory.summaries`),
not stored: the extractive one needs no model call (0.4 s for a 419-turn, 19-session LoCoMo conversation on the
loaded 2-core development machine, once per revision of the user), so storing it would only add a table to migrate,
forget and keep in step with the summarizer.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from convmem.index.text import analyze

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
MAX_SENTENCE_WORDS = 25


@dataclass(slots=True)
class SessionSummary:
    session_id: str
    started_at: str
    text: str
    method: str  # "extractive" or "llm"
    turn_ids: list[str] = field(default_factory=list)  # the turns it was taken from (extractive)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def cut_words(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " …"


def _bag_vectors(texts: Sequence[str]) -> np.ndarray:
    """Unit rows of stem counts (the fallback when the index holds no embeddings)."""
    vocab: dict[str, int] = {}
    bags = [analyze(t) for t in texts]
    for bag in bags:
        for term in bag:
            vocab.setdefault(term, len(vocab))
    out = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
    for i, bag in enumerate(bags):
        for term in bag:
            out[i, vocab[term]] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def central_order(vectors: np.ndarray, max_items: int, diversity: float = 0.5) -> list[int]:
    """Row positions picked by maximal marginal relevance to the rows' mean direction (unit rows in)."""
    centroid = vectors.sum(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    centrality = vectors @ centroid
    picked: list[int] = []
    while len(picked) < min(max_items, len(vectors)):
        penalty = (vectors @ vectors[picked].T).max(axis=1) if picked else np.zeros(len(vectors))
        gain = centrality - diversity * penalty
        gain[picked] = -np.inf
        picked.append(int(np.argmax(gain)))
    return picked


def best_sentence(text: str, weights: dict[str, float], skip: frozenset[str] = frozenset(),
                  min_terms: int = 3) -> str:
    """The sentence of `text` whose stems weigh most (questions count half; sentences with fewer than `min_terms`
    stems outside `skip`, such as "Thanks, Caroline!", only when there is nothing else), cut at
    MAX_SENTENCE_WORDS words."""
    best, best_score = text, -1.0
    for s in sentences(text) or [text]:
        terms = set(analyze(s)) - skip
        score = sum(weights.get(t, 0.0) for t in terms) / np.sqrt(len(terms) + 1)
        if s.rstrip().endswith("?"):
            score *= 0.5
        if len(terms) < min_terms:
            score -= 1e6
        if score > best_score:
            best, best_score = s, score
    return cut_words(best, MAX_SENTENCE_WORDS)


def extractive_summary(texts: Sequence[str], speakers: Sequence[str], vectors: np.ndarray | None, *,
                       max_items: int = 3, max_words: int = 60, min_terms: int = 3) -> tuple[str, list[int]]:
    """(summary, positions of the turns used) of one session's turns, in order. Turns with fewer than
    `min_terms` content stems besides the speakers' names ("Hey!", "Thanks, Caroline!") are passed over unless all
    are that short; names do not weigh in the choice of a sentence (they occur everywhere)."""
    if not texts:
        return "", []
    names = frozenset(analyze(" ".join(set(speakers))))
    terms = [set(analyze(t)) - names for t in texts]
    keep = [i for i, ts in enumerate(terms) if len(ts) >= min_terms] or list(range(len(texts)))
    if vectors is None or vectors.ndim != 2 or vectors.shape[1] == 0:
        vecs = _bag_vectors([texts[i] for i in keep])
    else:
        vecs = vectors[keep].astype(np.float32)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    picked = sorted(keep[j] for j in central_order(vecs, max_items))
    doc_freq: dict[str, float] = {}
    for ts in terms:
        for term in ts:
            doc_freq[term] = doc_freq.get(term, 0.0) + 1.0
    parts, used, words = [], [], 0
    for i in picked:
        s = best_sentence(texts[i], doc_freq, names, min_terms)
        n = len(s.split())
        if parts and words + n > max_words:
            continue
        parts.append(f"{speakers[i]}: {s}")
        used.append(i)
        words += n
    return cut_words(" ".join(parts), max_words), used


def session_rows(index: Any) -> list[list[int]]:
    """Row positions of each session of a UserIndex, in the order of `index.session_ids`."""
    out: list[list[int]] = [[] for _ in index.session_ids]
    for i, s in enumerate(index.session_index.tolist()):
        out[s].append(i)
    return out


def session_key(index: Any, rows: Sequence[int]) -> tuple:
    """What a session's summary depends on: its id and the hashes of its turns' texts, in order."""
    return (index.session_ids[int(index.session_index[rows[0]])], tuple(index.rows[i].text_hash for i in rows))


def index_summaries(index: Any, *, max_items: int = 3, max_words: int = 60,
                    memo: dict | None = None) -> list[SessionSummary]:
    """The extractive summary of every session of a UserIndex, oldest first. `memo` ({session_key: summary}) is
    read and filled, so an unchanged session is not summarised again when another one changed."""
    has_vectors = index.vectors.ndim == 2 and index.vectors.shape[1] > 0 and len(index.vectors) == len(index.rows)
    memo = {} if memo is None else memo
    out = []
    for s, rows in enumerate(session_rows(index)):
        key = ("extractive", *session_key(index, rows))
        if key not in memo:
            texts = [index.rows[i].text for i in rows]
            speakers = [index.rows[i].speaker for i in rows]
            text, used = extractive_summary(texts, speakers, index.vectors[rows] if has_vectors else None,
                                            max_items=max_items, max_words=max_words)
            first = index.rows[rows[0]]
            memo[key] = SessionSummary(index.session_ids[s], first.session_start.isoformat(), text, "extractive",
                                       [index.rows[rows[j]].turn_id for j in used])
        out.append(memo[key])
    return out


LLM_PROMPT = ("You summarise a conversation. Write two or three short sentences in the third person, naming the "
              "speakers, about what happened in their lives and what they decided. No preamble.")


def llm_summary(model: Any, lines: Sequence[str], *, max_words: int = 60, max_chars: int = 6000) -> str:
    """An abstractive summary of one session's lines ("speaker: text") by a chat model ('' if it says nothing)."""
    body, size = [], 0
    for line in lines:
        size += len(line) + 1
        if size > max_chars:
            break
        body.append(line)
    messages = [{"role": "system", "content": LLM_PROMPT}, {"role": "user", "content": "\n".join(body)}]
    reply = model.complete(messages, max_tokens=max(32, int(max_words * 1.6)))
    return cut_words(" ".join(str(reply).split()), max_words)
