"""The Python API: `Memory`. The CLI, HTTP server and MCP tools are thin mirrors of these methods."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from convmem.context.assemble import assemble
from convmem.context.instructions import render_instructions
from convmem.errors import InputError
from convmem.extract.memory import FactsAndInstructions
from convmem.extract.summary_memory import SessionSummaries
from convmem.index.fact_keys import fact_texts
from convmem.index.user_index import TURN_KEYS, IndexCache, UserIndex, embed_missing
from convmem.ingest import parse_sessions, read_data
from convmem.models import DEFAULT_TENANT, Context, Hit, Session, Turn, check_id, check_storable, parse_time
from convmem.providers.embedders import Embedder, load_embedder
from convmem.providers.tokens import TokenCounter, default_counter
from convmem.retrieve import abstain
from convmem.retrieve.about import about_mask, boost_about, check_about, people
from convmem.retrieve.config import RetrievalConfig, get_retriever
from convmem.retrieve.rerank import RERANKERS, LikelihoodCache, QuestionScorer, rerank
from convmem.retrieve.search import rank, score_turns, session_doc_scores, turn_mask
from convmem.retrieve.updates import order_updates, preferred
from convmem.store import Store, open_store

GRANULARITIES = ("turn", "session")


def default_db_path() -> str:
    """`$CONVMEM_DB`, else memory.db in the user data folder (created on first use)."""
    env = os.environ.get("CONVMEM_DB")
    if env:
        return env
    import platformdirs

    folder = platformdirs.user_data_dir("convmem")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "memory.db")


@dataclass
class ImportReport:
    sessions_added: int = 0
    sessions_unchanged: int = 0
    sessions_replaced: int = 0
    turns_written: int = 0
    texts_embedded: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    users: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["turns_per_second"] = self.turns_written / self.seconds if self.seconds else 0.0
        return out


def _names(value: Sequence[str] | None, what: str) -> list[str] | None:
    """A speakers/roles filter: None or a list of strings (a bare string would match its letters)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple, set)) or not all(
            isinstance(v, str) for v in value):
        raise InputError(f"{what} must be a list of names")
    return list(value)


def _window(limit: Any, offset: Any) -> tuple[int, int]:
    """limit >= 1 and offset >= 0, both below 2**62 (a larger offset reached SQLite as an OverflowError)."""
    for value, what, low in ((limit, "limit", 1), (offset, "offset", 0)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**62:
            raise InputError(f"{what} must be an integer from {low} to 2**62")
    return limit, offset


def _coerce_session(session: Session | dict[str, Any]) -> Session:
    if isinstance(session, Session):
        return session
    if not isinstance(session, dict):  # a list would parse, and all but its first session be dropped silently
        raise InputError(f"a session must be an object (dict), got {type(session).__name__}")
    return parse_sessions(session, "convmem", source="<session>")[0]


class Memory(FactsAndInstructions, SessionSummaries):
    """Long-term memory for conversations, in one SQLite file or a PostgreSQL database.

    Facts that change over time (`facts`, `fact_timeline`, `contradictions`) and standing instructions
    (`add_instruction`, `instructions`, `applicable_instructions`, `remove_instruction`) are extracted at import
    by rules, or facts by `chat_model` with `facts_extractor="llm"` (see docs/memory.md). `summaries` gives one
    summary per session (extractive, or by `chat_model`); the context uses them for relevant sessions whose turns
    did not fit, within `context_summary_share` of its budget.

    >>> mem = Memory("memory.db")
    >>> mem.add_session({"user": "ana", "session_id": "s1", "started_at": "2024-05-08T10:00:00Z",
    ...                  "turns": [{"speaker": "Ana", "role": "user", "text": "My sister marries in June."}]})
    >>> mem.search("when is the wedding?", user="ana")
    """

    def __init__(self, path_or_url: str | os.PathLike[str] | None = None, *, embedder: Embedder | str | None = None,
                 tenant: str = DEFAULT_TENANT, retriever: str | RetrievalConfig = "convmem",
                 token_counter: TokenCounter | None = None, store: Store | None = None,
                 facts_extractor: str = "rules", chat_model: Any = None):
        self._init_understanding(facts_extractor, chat_model)
        self.retriever = get_retriever(retriever)
        if self.retriever.rerank not in RERANKERS:
            raise InputError(f"rerank must be one of {RERANKERS}, got {self.retriever.rerank!r}")
        self._reranker: Any = None
        self.rerank_cache = LikelihoodCache()
        self.store: Store = store or open_store(os.fspath(path_or_url) if path_or_url else default_db_path())
        self.tenant = check_id(tenant, "tenant")
        self._embedder_spec = embedder
        self._embedder: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        self._embedder_lock = threading.Lock()
        self._counter = token_counter
        self.indexes = IndexCache(self.store, self._embedder_for_index, date_keys=self.retriever.date_keys,
                                  keys=self.retriever.key_kinds())

    # -- components, loaded on first use --------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = load_embedder(self._embedder_spec)
            return self._embedder

    @property
    def reranker(self) -> QuestionScorer:
        """The model of the second stage (`rerank="lm"`): `chat_model` when it is a local model, else the packaged
        SmolLM2-135M on every core (an endpoint cannot score a given text's likelihood)."""
        with self._embedder_lock:
            if self._reranker is None:
                from convmem.providers.llm_local import LocalTransformers

                chat = self._chat_spec
                self._reranker = chat if isinstance(chat, LocalTransformers) else \
                    LocalTransformers(threads=os.cpu_count() or 1)
            return self._reranker

    def _embedder_for_index(self) -> Embedder | None:
        return self.embedder if self.retriever.dense else None

    @property
    def token_counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = default_counter()
        return self._counter

    def for_tenant(self, tenant: str) -> "Memory":
        """The same store and models, scoped to another tenant."""
        other = Memory.__new__(Memory)
        other.__dict__.update(self.__dict__)
        other.tenant = check_id(tenant, "tenant")
        return other

    # -- writing --------------------------------------------------------------------------------------------
    def add_session(self, session: Session | dict[str, Any]) -> str:
        """Store one session atomically. Returns 'added', 'unchanged' (same id and content) or 'replaced'."""
        report = self.add_sessions([_coerce_session(session)])
        if report.sessions_added:
            return "added"
        return "replaced" if report.sessions_replaced else "unchanged"

    def add_sessions(self, sessions: Sequence[Session], *, progress: Callable[[int], None] | None = None,
                     chunk_turns: int = 2048, embed: bool = True) -> ImportReport:
        """Store sessions (each atomically), embedding new texts in large batches. Idempotent.

        `embed=False` stores the text only; vectors are then computed on the first search of each user.
        """
        sessions = list(sessions)
        for s in sessions:  # all of them before anything is written
            s.check_storable()
        report = ImportReport()
        start = time.perf_counter()
        embed = embed and self.retriever.dense
        chunk: list[Session] = []

        def flush() -> None:
            texts: dict[str, str] = {}
            for s in chunk:
                outcome = self.store.add_session(self.tenant, s, self._derive(s))
                self._after_write(s, outcome)
                if embed:
                    # unchanged sessions too: an import killed after writing but before embedding is completed
                    # by running it again (only vectors missing from the cache are computed)
                    from convmem.store.base import text_hash

                    texts.update((text_hash(t.text), t.text) for t in s.turns)
                    for kind in self.retriever.key_kinds():  # the keys read from the turns' own text
                        if kind in TURN_KEYS:
                            texts.update(TURN_KEYS[kind](s.turns)[0])
                if outcome == "unchanged":
                    report.sessions_unchanged += 1
                    continue
                report.sessions_added += outcome == "added"
                report.sessions_replaced += outcome == "replaced"
                report.turns_written += len(s.turns)
            if embed and self.retriever.fact_keys:  # the chunk's facts as stored now (rules and LLM)
                for user in {s.user for s in chunk}:
                    ids = {s.session_id for s in chunk if s.user == user}
                    texts.update(fact_texts(f for f in self.store.facts(self.tenant, user) if f.session_id in ids))
            if texts:
                t0 = time.perf_counter()
                before = len(texts)
                have = self.store.get_embeddings(self.tenant, self.embedder.name, texts.keys())
                embed_missing(self.store, self.tenant, self.embedder, {h: t for h, t in texts.items() if h not in have})
                report.texts_embedded += before - len(have)
                report.embed_seconds += time.perf_counter() - t0
            if progress:
                progress(sum(len(s.turns) for s in chunk))
            chunk.clear()

        size = 0
        for s in sessions:
            chunk.append(s)
            size += len(s.turns)
            if size >= chunk_turns:
                flush()
                size = 0
        if chunk:
            flush()
        report.users = sorted({s.user for s in sessions})
        report.seconds = time.perf_counter() - start
        return report

    def add_turns(self, turns: Sequence[Turn | dict[str, Any]], *, user: str, session: str,
                  started_at: datetime | str | None = None) -> int:
        """Append turns to a session (created, dated `started_at` or now, if it does not exist)."""
        user, session = check_id(user, "user"), check_id(session, "session")
        if not isinstance(turns, (list, tuple)):
            raise InputError("turns must be a list of turns")
        parsed = []
        for i, t in enumerate(turns):
            if isinstance(t, dict):
                t = Turn(speaker=t.get("speaker") or t.get("role") or "user", role=t.get("role") or "user",
                         text=t.get("text"), turn_id=t.get("turn_id"), timestamp=t.get("timestamp"),
                         metadata=t.get("metadata") or {})
            if not isinstance(t, Turn):
                raise InputError(f"turn {i}: expected an object with speaker, role and text")
            if not isinstance(t.text, str):
                raise InputError(f"turn {i}: text must be a string")
            for name in ("speaker", "role"):
                if not isinstance(getattr(t, name), str) or not getattr(t, name).strip():
                    raise InputError(f"turn {i}: {name} must be a non-empty string")
            if not isinstance(t.metadata, dict):
                raise InputError(f"turn {i}: metadata must be an object")
            t.turn_id = check_id(t.turn_id, f"turn {i} turn_id") if t.turn_id is not None else None
            check_storable([t.speaker, t.role, t.text, t.metadata], f"turn {i}")
            t.timestamp = parse_time(t.timestamp, what=f"turn {i} timestamp") if t.timestamp else None
            parsed.append(t)
        start = parse_time(started_at, what="started_at") if started_at else datetime.now(timezone.utc)
        added = self.store.add_turns(self.tenant, user, session, parsed, start)
        if any(t.timestamp is None for t in parsed):  # they take the session's start, which may be older
            start = next((parse_time(r["started_at"]) for r in self.store.sessions(self.tenant, user, limit=10**6)
                          if r["session_id"] == session), start)
        self._derive_turns(user, session, parsed, start)
        return added

    def import_file(self, path: str | os.PathLike[str], *, format: str = "convmem", user: str | None = None,
                    progress: Callable[[int], None] | None = None, embed: bool = True) -> ImportReport:
        """Import a file (JSON, JSON Lines, optionally .gz). The whole file is validated before anything is written."""
        sessions = parse_sessions(read_data(path), format, source=os.fspath(path), user=user)
        return self.add_sessions(sessions, progress=progress, embed=embed)

    def forget(self, *, user: str, session: str | None = None) -> int:
        """Remove a user's memory (or one session): turns, embeddings, index entries. Returns turns removed."""
        session = check_id(session, "session") if session is not None else None
        removed = self.store.forget(self.tenant, check_id(user, "user"), session)
        self.indexes.drop(self.tenant, user)
        return removed

    # -- reading --------------------------------------------------------------------------------------------
    def index(self, user: str) -> UserIndex:
        return self.indexes.get(self.tenant, check_id(user, "user"))

    def embed_query(self, query: str) -> np.ndarray | None:
        return self.embedder.embed(query) if self.retriever.dense else None

    def scores(self, query: str, *, user: str, query_vector: np.ndarray | None = None,
               now: datetime | str | None = None, granularity: str = "turn") -> tuple[UserIndex, np.ndarray]:
        """The user's index and one relevance score per turn (for benchmarks and custom rankers).

        `now` is when the question is asked (default: the current time); "last Saturday" is resolved against it.
        With granularity="session" the scores are those whose per-session max ranks sessions
        (`session_dense_weight`).
        """
        index, scores, _ = self._scores(query, user, query_vector, now, granularity)
        return index, scores

    def _scores(self, query: str, user: str, query_vector: np.ndarray | None, now: datetime | str | None,
                granularity: str) -> tuple[UserIndex, np.ndarray, np.ndarray | None]:
        """(index, turn scores, session-document scores or None)."""
        if not isinstance(query, str):
            raise InputError("query must be a string")
        index = self.index(user)
        qvec = query_vector if query_vector is not None else (self.embed_query(query) if index.rows else None)
        when = parse_time(now, what="now") if now else datetime.now(timezone.utc)
        config = self.retriever
        if granularity != "session":
            return index, self._reranked(index, query, score_turns(index, query, qvec, config, when)), None
        scores = score_turns(index, query, qvec, replace(config, dense_weight=config.session_dense_weight), when)
        docs = session_doc_scores(index, query, qvec, config) if config.session_doc_weight and index.rows else None
        return index, self._reranked(index, query, scores), docs

    def _reranked(self, index: UserIndex, query: str, scores: np.ndarray) -> np.ndarray:
        config = self.retriever
        if config.rerank == "none" or len(scores) < 2:
            return scores
        return rerank(index, scores, query, self.reranker, depth=config.rerank_depth, weight=config.rerank_weight,
                      counter=self.token_counter, cache=self.rerank_cache)

    def search(self, query: str, *, user: str, k: int = 10, granularity: str = "turn",
               since: datetime | str | None = None, until: datetime | str | None = None,
               speakers: Sequence[str] | None = None, roles: Sequence[str] | None = None,
               neighbours: int = 0, query_vector: np.ndarray | None = None,
               now: datetime | str | None = None, about: str | None = None) -> list[Hit]:
        """The k best turns (or sessions) of one user's memory for a query, asked at `now` (default: now).

        `about`: a person's name; turns spoken by them or mentioning them rank higher (a boost, not a filter:
        see `convmem.retrieve.about`)."""
        if granularity not in GRANULARITIES:
            raise InputError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError("k must be a positive integer")
        speakers, roles, about = _names(speakers, "speakers"), _names(roles, "roles"), check_about(about)
        index, scores, docs = self._scores(query, user, query_vector, now, granularity)
        if about:
            scores = boost_about(scores, about_mask(index, about))
        mask = turn_mask(index, since=parse_time(since, what="since") if since else None,
                         until=parse_time(until, what="until") if until else None, speakers=speakers, roles=roles)
        return rank(index, scores, mask, k=k, granularity=granularity, session_agg=self.retriever.session_agg,
                    neighbours=neighbours, doc_scores=docs, doc_weight=self.retriever.session_doc_weight,
                    session_diversity=self.retriever.session_diversity,
                    update_similarity=self.retriever.update_similarity,
                    update_closeness=self.retriever.update_closeness, prefer=preferred(query))

    #: the share of a context's memory budget that summaries of sessions without a turn in it may take (0: none),
    #: and how many of the most relevant sessions (by their best turn) may be summarised
    context_summary_share: float = 0.1
    context_summary_sessions: int = 3

    def context(self, query: str, *, user: str, budget_tokens: int = 2000, since: datetime | str | None = None,
                until: datetime | str | None = None, speakers: Sequence[str] | None = None,
                query_vector: np.ndarray | None = None, now: datetime | str | None = None,
                instructions: bool = True, about: str | None = None) -> Context:
        """A dated, cited block of the most relevant memories, never over `budget_tokens`.

        The user's standing instructions that apply to `query` come first, in their own section (at most half
        the budget); the memories fill the rest. `instructions=False` leaves them out (memories only).
        `about` ranks the turns about one person first (as in `search`). `Context.evidence` is the "no evidence
        in memory" signal (`evidence`); when nothing is found, a line after the memories says so."""
        if not isinstance(budget_tokens, int) or isinstance(budget_tokens, bool) or budget_tokens < 1:
            raise InputError("budget_tokens must be a positive integer")
        speakers, about = _names(speakers, "speakers"), check_about(about)
        qvec = query_vector if query_vector is not None else (self.embed_query(query) if self.index(user).rows
                                                               else None)
        index, scores = self.scores(query, user=user, query_vector=qvec, now=now)
        signal = abstain.evidence(index, query, qvec)
        if about:
            scores = boost_about(scores, about_mask(index, about))
        mask = turn_mask(index, since=parse_time(since, what="since") if since else None,
                         until=parse_time(until, what="until") if until else None, speakers=speakers)
        order = [int(i) for i in np.argsort(-np.where(mask, scores, -np.inf), kind="stable") if mask[i]]
        order = order_updates(index, order, similarity=self.retriever.update_similarity, prefer=preferred(query),
                              scores=scores[order], closeness=self.retriever.update_closeness)
        chosen = [s.to_dict() for s in self._select(self.instructions(user), query, query_vector)] \
            if instructions else []
        section = render_instructions(chosen)
        while chosen and self.token_counter.count(section) > budget_tokens // 2:
            chosen.pop()  # least applicable first
            section = render_instructions(chosen)
        note = "" if signal.found else abstain.NO_EVIDENCE.format(p=1.0 - signal.confidence)
        if note and self.token_counter.count(note) > budget_tokens // 2:
            note = ""  # a tiny budget: the memories (or EMPTY) and Context.evidence say it
        spent = self.token_counter.count(section + "\n\n") if section else 0
        spent += self.token_counter.count("\n\n" + note) if note else 0
        when = parse_time(now, what="now") if now else datetime.now(timezone.utc)
        summaries = self._summary_texts(user, index) if self.context_summary_share and index.rows else None
        while True:
            ctx = assemble(index, order, query=query, budget_tokens=max(budget_tokens - spent, 1),
                           counter=self.token_counter, max_turn_tokens=self.retriever.context_turn_tokens,
                           full_turns=self.retriever.context_full_turns,
                           tail_turn_tokens=self.retriever.context_tail_tokens,
                           now=when, summaries=summaries, summary_share=self.context_summary_share,
                           summary_sessions=self.context_summary_sessions)
            ctx.evidence = signal.to_dict()
            if not section and not note:
                return ctx
            text = "\n\n".join(part for part in (section, ctx.text, note) if part)
            tokens = self.token_counter.count(text)
            if tokens > budget_tokens and not ctx.text and note:
                note = ""  # section and note each fit half the budget; joined they can be a token over
                continue
            if tokens <= budget_tokens or not ctx.text:
                break
            spent += tokens - budget_tokens  # counts of joined text can differ by a token from their sum
        ctx.text, ctx.tokens, ctx.instructions, ctx.budget_tokens = text, tokens, chosen, budget_tokens
        return ctx

    def evidence(self, query: str, *, user: str, query_vector: np.ndarray | None = None) -> abstain.Evidence:
        """Whether the user's memory holds evidence for `query`: a calibrated P(evidence) (`confidence`), `found`
        and the retrieval features behind it (`convmem.retrieve.abstain`; no LLM)."""
        if not isinstance(query, str):
            raise InputError("query must be a string")
        index = self.index(user)
        qvec = query_vector if query_vector is not None else (self.embed_query(query) if index.rows else None)
        return abstain.evidence(index, query, qvec)

    def people(self, user: str) -> list[dict[str, Any]]:
        """The people a user's memory knows (every speaker): roles, turns, sessions, mentions by the others, first
        and last time they spoke; most turns first (`convmem.retrieve.about.people`)."""
        return people(self.index(user))

    def sessions(self, *, user: str, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        limit, offset = _window(limit, offset)
        return self.store.sessions(self.tenant, check_id(user, "user"), limit=limit, offset=offset)

    def users(self, *, limit: int = 1000, offset: int = 0) -> list[str]:
        limit, offset = _window(limit, offset)
        return self.store.users(self.tenant, limit=limit, offset=offset)

    def stats(self) -> dict[str, Any]:
        return self.store.stats(self.tenant)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
