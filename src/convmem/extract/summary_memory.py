"""`Memory.summaries`: one summary per session (a mixin of `convmem.api.Memory`, kept in its own module).

Derived on read from the user's index and cached by the user's revision, like the index itself: a new, replaced or
forgotten session moves the revision, so the next read summarises again (extractive: ~20 ms a session). Abstractive
summaries (`method="llm"`, the Memory's `chat_model`) are kept the same way, in this process only. Each summary is
also memoised by its session's content (id and turn text hashes), so a turn appended to one session re-summarises
that session only. The context uses the LLM's summary of a session when one was made for its current content and
the extractive one otherwise, so a request never waits for an LLM.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from convmem.errors import InputError
from convmem.extract.summaries import SessionSummary, index_summaries, llm_summary, session_key, session_rows
from convmem.models import check_id

METHODS = ("extractive", "llm")


class SessionSummaries:
    """Session summaries for the context and for `Memory.summaries` (see docs/memory.md)."""

    tenant: str
    _chat_spec: Any
    _chat: Any
    summary_cache_users: int = 64

    def _summary_store(self) -> tuple[OrderedDict, threading.Lock]:
        if "_summary_items" not in self.__dict__:
            self.__dict__["_summary_items"] = OrderedDict()
            self.__dict__["_summary_lock"] = threading.Lock()
        return self.__dict__["_summary_items"], self.__dict__["_summary_lock"]

    def _cached_summaries(self, user: str, index: Any, method: str) -> list[SessionSummary] | None:
        items, lock = self._summary_store()
        with lock:
            entry = items.get((self.tenant, user))
            if entry is None or entry[0] != index.revision:
                return None
            items.move_to_end((self.tenant, user))
            return entry[1].get(method)

    def _memo(self, user: str, index: Any) -> dict:
        """{(method, session id, turn text hashes): summary} of the user, kept across revisions (pruned to the
        sessions of the current one), so a new turn re-summarises its own session only."""
        items, lock = self._summary_store()
        with lock:
            entry = items.get((self.tenant, user))
            memo = entry[2] if entry is not None else {}
        return memo

    def _cache_summaries(self, user: str, index: Any, method: str, summaries: list[SessionSummary],
                         memo: dict) -> None:
        items, lock = self._summary_store()
        with lock:
            key = (self.tenant, user)
            entry = items.get(key)
            if entry is None or entry[0] != index.revision:
                current = {session_key(index, rows) for rows in session_rows(index) if rows}
                memo = {k: v for k, v in memo.items() if (k[1], k[2]) in current}  # forgotten or changed: out
                entry = items[key] = (index.revision, {}, memo)
            entry[1][method] = summaries
            items.move_to_end(key)
            while len(items) > self.summary_cache_users:
                items.popitem(last=False)

    def summaries(self, user: str, *, method: str | None = None,
                  session: str | None = None) -> list[SessionSummary]:
        """One summary per session of `user`, oldest first (or of one `session`).

        `method`: "extractive" (no LLM), "llm" (the Memory's `chat_model`; a session the model says nothing about
        keeps its extractive summary), or None: "llm" when a chat model is configured, else "extractive"."""
        if method is None:
            method = "llm" if self._chat_spec is not None else "extractive"
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {method!r}")
        if method == "llm" and self._chat_spec is None:
            raise InputError("method='llm' needs a chat model: create the Memory with chat_model= "
                             "(e.g. 'smollm2' or an OpenAI-compatible URL)")
        user = check_id(user, "user")
        session = check_id(session, "session") if session is not None else None
        index = self.index(user)  # type: ignore[attr-defined]
        if session is not None and session not in index.session_ids:
            from convmem.errors import NotFound

            raise NotFound(f"user {user!r} has no session {session!r}")
        out = self._extractive(user, index)
        if method == "llm":
            out = self._abstractive(user, index, out, session)
        return [s for s in out if session is None or s.session_id == session]

    def _extractive(self, user: str, index: Any) -> list[SessionSummary]:
        out = self._cached_summaries(user, index, "extractive")
        if out is None:
            memo = self._memo(user, index)
            out = index_summaries(index, memo=memo)
            self._cache_summaries(user, index, "extractive", out, memo)
        return out

    def _abstractive(self, user: str, index: Any, extractive: list[SessionSummary],
                     only: str | None) -> list[SessionSummary]:
        from convmem.providers.chat import load_chat_model

        memo = self._memo(user, index)
        if self._chat is None:
            self._chat = load_chat_model(self._chat_spec)
        out = []
        for rows, base in zip(session_rows(index), extractive):
            key = ("llm", *session_key(index, rows))
            if key not in memo and (only is None or base.session_id == only):
                lines = [f"{index.rows[i].speaker}: {index.rows[i].text}" for i in rows]
                text = llm_summary(self._chat, lines)
                memo[key] = SessionSummary(base.session_id, base.started_at, text, "llm") if text else base
            out.append(memo.get(key, base))
        return out

    def _summary_texts(self, user: str, index: Any) -> list[str]:
        """One text per session of the index for the context: the LLM's where one was made for the session as it
        is now, else the extractive one (the context never calls the LLM)."""
        extractive = self._extractive(user, index)
        memo = self._memo(user, index)
        if not any(k[0] == "llm" for k in memo):
            return [s.text for s in extractive]
        return [memo.get(("llm", *session_key(index, rows)), base).text
                for rows, base in zip(session_rows(index), extractive)]
