"""The per-user index: the user's turns, their BM25 matrix and their embedding matrix, cached by revision."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Sequence

import numpy as np

from convmem.extract.text import is_user_role
from convmem.index.fact_keys import fact_key_texts
from convmem.index.lexical import BM25Index
from convmem.index.phrase_keys import phrase_texts
from convmem.index.rounds import RoundDocs
from convmem.index.statement_keys import best_of_keys, statement_texts
from convmem.providers.embedders import Embedder
from convmem.retrieve.timeexpr import RELATIVE_WORDS, resolve_in_turn, told_dates
from convmem.store.base import Store, TurnRow


@lru_cache(maxsize=65536)
def _date_keys(text: str, said_at: datetime) -> str:
    if text.isascii():
        if not RELATIVE_WORDS.search(text.lower()):
            return ""
    return " ".join(resolve_in_turn(text, said_at))


@lru_cache(maxsize=65536)
def _told_spans(text: str, said_at: datetime) -> tuple[tuple[float, float], ...]:
    return tuple((r.start.timestamp(), r.end.timestamp()) for r in told_dates(text, said_at))


def lexical_text(row: TurnRow, date_keys: bool = True) -> str:
    """What the lexical index sees of a turn: the speaker's name, the text, and the calendar dates its relative
    dates stand for ("yesterday" said on 8 May 2023 -> "7 May 2023 Sunday"). The date keys of a (text, time) are
    cached, so rebuilding a user's index after new turns arrive does not resolve the old turns again."""
    keys = _date_keys(row.text, row.timestamp) if date_keys else ""
    return f"{row.speaker}: {row.text} {keys}" if keys else f"{row.speaker}: {row.text}"


@dataclass
class UserIndex:
    revision: int
    rows: list[TurnRow]
    lexical: BM25Index
    vectors: np.ndarray  # (n, dim), unit rows
    session_ids: list[str]  # distinct, in chronological order
    session_index: np.ndarray  # (n,) position of each turn's session in session_ids
    timestamps: np.ndarray  # (n,) epoch seconds
    speakers: list[str]  # distinct speaker names
    speaker_index: np.ndarray  # (n,) position of each turn's speaker in speakers
    dialogue: np.ndarray  # (n,) True where the turn's session has two or more speakers (not a monologue)
    assistant: np.ndarray  # (n,) True where the turn's role is "assistant"
    answers: np.ndarray  # (n,) True where the turn is a person's reply to another person's question (`answers_of`)
    key_vectors: np.ndarray | None = None  # (m, dim) the extra dense keys (`RetrievalConfig.key_kinds`), or None
    key_owner: np.ndarray | None = None  # (m,) the turn each key belongs to
    _sessions: "SessionDocs | None" = field(default=None, repr=False)
    _rounds: "RoundDocs | None" = field(default=None, repr=False)
    _told: "tuple[np.ndarray, np.ndarray, np.ndarray] | None" = field(default=None, repr=False)

    def cosines(self, qvec: np.ndarray) -> np.ndarray:
        """Each turn's dense score: its cosine to the query, or with statement keys the best of its keys'."""
        own = self.vectors @ qvec
        if self.key_vectors is None or not len(self.key_vectors):
            return own
        return best_of_keys(own, self.key_vectors @ qvec, self.key_owner)

    def sessions(self) -> "SessionDocs":
        """Each session as one document (built on first use: only session-level search needs it)."""
        if self._sessions is None:
            self._sessions = SessionDocs.build(self)
        return self._sessions

    def rounds(self) -> RoundDocs:
        """Each round (a turn of the session's opener and the replies up to their next turn) as one document
        (built on first use: only `value="round"` needs it)."""
        if self._rounds is None:
            self._rounds = RoundDocs.build(self)
        return self._rounds

    def told(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(turn, start, end), epoch seconds: the dates turns give their own events ("I planted tomatoes today",
        `timeexpr.told_dates`). Built on first use: only a question that names a time needs it. The dates of a
        (text, time) are cached, so rebuilding after new turns arrive does not read the old turns again."""
        if self._told is None:
            spans = [(i, start, end) for i, row in enumerate(self.rows)
                     for start, end in _told_spans(row.text, row.timestamp)]
            turn, start, end = zip(*spans) if spans else ((), (), ())
            self._told = (np.asarray(turn, dtype=np.int64), np.asarray(start, dtype=np.float64),
                          np.asarray(end, dtype=np.float64))
        return self._told


@dataclass
class SessionDocs:
    """Sessions as whole documents: BM25 over each session's turns joined, and the mean of its turn vectors."""

    lexical: BM25Index
    vectors: np.ndarray  # (sessions, dim), unit rows

    @classmethod
    def build(cls, index: UserIndex) -> "SessionDocs":
        docs: list[list[str]] = [[] for _ in index.session_ids]
        for i, row in enumerate(index.rows):
            docs[index.session_index[i]].append(f"{row.speaker}: {row.text}")
        vectors = np.zeros((len(index.session_ids), index.vectors.shape[1]), dtype=np.float32)
        np.add.at(vectors, index.session_index, index.vectors)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return cls(lexical=BM25Index([" ".join(d) for d in docs]), vectors=vectors)


def embed_missing(store: Store, tenant: str, embedder: Embedder, texts: dict[str, str]) -> dict[str, np.ndarray]:
    """Vectors for {hash: text}, from the store's cache where present; the rest embedded once and cached."""
    have = store.get_embeddings(tenant, embedder.name, texts.keys())
    missing = [h for h in texts if h not in have]
    if missing:
        fresh = embedder.embed_batch([texts[h] for h in missing])
        new = dict(zip(missing, fresh))
        store.put_embeddings(tenant, embedder.name, new)
        have.update(new)
    return have


#: the keys read from a turn's own text ({kind: its key texts of some turns}); "fact" keys come from the store
TURN_KEYS = {"statement": statement_texts, "phrase": phrase_texts}


def key_texts(store: Store, tenant: str, user: str, rows: list[TurnRow],
              kinds: Sequence[str]) -> tuple[dict[str, str], list[str], np.ndarray]:
    """The extra dense keys of a user's turns, of the `kinds` asked for ("statement", "phrase", "fact"), in that
    order: ({hash: text}, the hash of each key, the turn each key belongs to)."""
    parts = [TURN_KEYS[kind](rows) for kind in kinds if kind in TURN_KEYS]
    if "fact" in kinds:  # read after the turns: a fact written in between moves the revision (next lookup rebuilds)
        parts.append(fact_key_texts(rows, store.facts(tenant, user)))
    texts: dict[str, str] = {}
    for part in parts:
        texts.update(part[0])
    hashes = [h for part in parts for h in part[1]]
    owners = np.concatenate([part[2] for part in parts]) if parts else np.zeros(0, dtype=np.int64)
    return texts, hashes, owners.astype(np.int64, copy=False)


def build_user_index(store: Store, tenant: str, user: str, embedder: Embedder | None,
                     date_keys: bool = True, *, revision: int | None = None,
                     keys: Sequence[str] = ()) -> UserIndex:
    """`revision`: the user's revision read just before (saves a round trip); read here when not given. Either way
    it is read before the turns, so a write landing in between only makes the next lookup rebuild.
    `keys`: the kinds of extra dense keys to embed (cached like turns) and score by (`RetrievalConfig.key_kinds`):
    "statement", each turn's first-person statement sentences (`convmem.index.statement_keys`); "phrase", its names,
    numbers and key phrases (`convmem.index.phrase_keys`); "fact", each stored fact of a turn, phrased as a sentence
    (`convmem.index.fact_keys`)."""
    if revision is None:
        revision = store.revision(tenant, user)
    rows = store.user_turns(tenant, user)
    if embedder is not None and rows:
        vecs = embed_missing(store, tenant, embedder, {r.text_hash: r.text for r in rows})
        vectors = np.stack([vecs[r.text_hash] for r in rows]).astype(np.float32)
    else:
        vectors = np.zeros((len(rows), embedder.dim if embedder else 0), dtype=np.float32)
    key_vectors = key_owner = None
    if keys and embedder is not None and rows:
        texts, hashes, key_owner = key_texts(store, tenant, user, rows, keys)
        have = embed_missing(store, tenant, embedder, texts) if texts else {}
        key_vectors = (np.stack([have[h] for h in hashes]).astype(np.float32) if hashes
                       else np.zeros((0, vectors.shape[1]), dtype=np.float32))
    session_ids = list(dict.fromkeys(r.session_id for r in rows))
    pos = {s: i for i, s in enumerate(session_ids)}
    speakers = list(dict.fromkeys(r.speaker for r in rows))
    spos = {s: i for i, s in enumerate(speakers)}
    session_index = np.asarray([pos[r.session_id] for r in rows], dtype=np.int64)
    speaker_index = np.asarray([spos[r.speaker] for r in rows], dtype=np.int64)
    voices = [set() for _ in session_ids]
    for si, sp in zip(session_index.tolist(), speaker_index.tolist()):
        voices[si].add(sp)
    return UserIndex(
        revision=revision,
        rows=rows,
        lexical=BM25Index([lexical_text(r, date_keys) for r in rows]),
        vectors=vectors,
        session_ids=session_ids,
        session_index=session_index,
        timestamps=np.asarray([r.timestamp.timestamp() for r in rows], dtype=np.float64),
        speakers=speakers,
        speaker_index=speaker_index,
        dialogue=np.asarray([len(voices[si]) >= 2 for si in session_index.tolist()], dtype=bool),
        assistant=np.asarray([r.role.casefold() == "assistant" for r in rows], dtype=bool),
        answers=answers_of(rows),
        key_vectors=key_vectors,
        key_owner=key_owner,
    )


def answers_of(rows: list[TurnRow]) -> np.ndarray:
    """Which turns reply to a question: the turn before, in the same session, is by another speaker and asks
    something ("?"), and both speakers are people (no assistant, system or tool role). Between people a question
    asks the other about their life, and the reply is what a later question about it needs ("What are your plans
    for the summer?" - "Researching adoption agencies"); a user's question to an assistant is a request, and its
    reply is advice (the assistant prior's business, `convmem.retrieve.assistant`)."""
    out = np.zeros(len(rows), dtype=bool)
    for i in range(1, len(rows)):
        prev, row = rows[i - 1], rows[i]
        out[i] = (prev.session_id == row.session_id and prev.speaker != row.speaker and "?" in prev.text
                  and is_user_role(prev.role) and is_user_role(row.role))
    return out


class IndexCache:
    """LRU of built user indexes; an entry is rebuilt when the user's revision in the store moved on."""

    def __init__(self, store: Store, embedder_fn, capacity: int = 64, date_keys: bool = True,
                 keys: Sequence[str] = ()):
        self.store, self._embedder_fn, self.capacity, self.date_keys = store, embedder_fn, capacity, date_keys
        self.keys = tuple(keys)
        self._items: OrderedDict[tuple[str, str], UserIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant: str, user: str) -> UserIndex:
        key = (tenant, user)
        revision = self.store.revision(tenant, user)
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.revision == revision:
                self._items.move_to_end(key)
                return item
        item = build_user_index(self.store, tenant, user, self._embedder_fn(), self.date_keys, revision=revision,
                                keys=self.keys)
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def drop(self, tenant: str, user: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == tenant and (user is None or k[1] == user)]:
                del self._items[key]
