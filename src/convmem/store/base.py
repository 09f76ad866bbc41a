"""The storage contract every backend honours, and the row type the indexes are built from.

Every method takes the tenant first: scoping by tenant happens here, in the store layer, not in the routes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Protocol, Sequence

import numpy as np

from convmem.models import Fact, Instruction, Session, Turn

#: what is extracted from a session and written with it: (fact statements, recognised instructions)
Derived = tuple[Sequence[Fact], Sequence[Instruction]]


def text_hash(text: str) -> str:
    """Content hash used to never embed the same text twice."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def revision_clock() -> int:
    """A user's new revision is at least this (microseconds since the epoch): revisions never repeat, even for a
    user that was forgotten and written again, so no process can mistake a stale cached index for a fresh one."""
    import time

    return time.time_ns() // 1000


def session_hash(session: Session) -> str:
    """Content hash of a whole session: equal hashes mean a re-import changes nothing."""
    payload = {
        "started_at": session.started_at.isoformat(),
        "participants": session.participants,
        "metadata": session.metadata,
        "turns": [
            [t.turn_id, t.speaker, t.role, t.text, t.timestamp.isoformat() if t.timestamp else None, t.metadata]
            for t in session.turns
        ],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def session_summary(row: Sequence[Any]) -> dict[str, Any]:
    """What `Store.sessions` returns for one row (session_id, started_at ISO, participants JSON, metadata JSON,
    turn count), the same for every backend."""
    return {"session_id": row[0], "started_at": row[1], "participants": json.loads(row[2]),
            "metadata": json.loads(row[3]), "turns": row[4]}


def restore_session(user: str, session_id: str, started_at: datetime, turns: list[Turn], participants: list[str],
                    metadata: dict[str, Any]) -> Session:
    """A stored session as it was written, without re-validating it (stored turns keep their ids and positions;
    a session created by `add_turns` with no turns has none)."""
    session = object.__new__(Session)
    session.user, session.session_id, session.started_at = user, session_id, started_at
    session.turns, session.participants, session.metadata = turns, participants, metadata
    return session


def restore_sessions(user: str, sessions: Iterable[tuple], turns: Iterable[tuple]) -> Iterator[Session]:
    """One user's sessions from stored rows, as the backends export them.

    `sessions`: (session_id, started_at ISO text, participants JSON, metadata JSON), in the order to yield;
    `turns`: (session_id, position, turn_id, speaker, role, text, timestamp ISO text or None, metadata JSON),
    sorted by position within each session.
    """
    by_session: dict[str, list[Turn]] = {}
    for sid, position, turn_id, speaker, role, text, ts_iso, metadata in turns:
        by_session.setdefault(sid, []).append(
            Turn(speaker=speaker, text=text, role=role, turn_id=turn_id,
                 timestamp=datetime.fromisoformat(ts_iso) if ts_iso else None,
                 metadata=json.loads(metadata), position=position)
        )
    for sid, started_iso, participants, metadata in sessions:
        yield restore_session(user, sid, datetime.fromisoformat(started_iso), by_session.get(sid, []),
                              json.loads(participants), json.loads(metadata))


def group_by_model(rows: Sequence[tuple]) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Rows (model, text_hash, vector) sorted by model, as (model, {text_hash: vector}) groups."""
    group: dict[str, np.ndarray] = {}
    model = rows[0][0] if rows else ""
    for m, h, v in rows:
        if m != model:
            yield model, group
            model, group = m, {}
        group[h] = v
    if group:
        yield model, group


@dataclass(slots=True)
class TurnRow:
    """One stored turn with what retrieval needs about its session."""

    session_id: str
    turn_id: str
    position: int
    speaker: str
    role: str
    text: str
    timestamp: datetime
    session_start: datetime
    metadata: dict[str, Any]
    text_hash: str


class Store(Protocol):
    """What a backend must do. `add_session` is atomic: all of a session's turns are written, or none."""

    location: str

    def add_session(self, tenant: str, session: Session, derived_rows: Derived | None = None) -> str:
        """Write a session; returns 'added', 'unchanged' (same id and content) or 'replaced'.

        When it is written, in the same transaction, the facts and recognised instructions of the session it
        replaces are deleted and `derived_rows` (what was extracted from it) are written."""

    def add_turns(self, tenant: str, user: str, session_id: str, turns: Sequence[Turn], started_at: datetime) -> int:
        """Append turns to a session (created if missing); returns how many were new."""

    def user_turns(self, tenant: str, user: str) -> list[TurnRow]:
        """Every turn of one user, in session start then position order."""

    def revision(self, tenant: str, user: str) -> int:
        """A number that changes whenever this user's memory changes (indexes cache on it)."""

    def sessions(self, tenant: str, user: str, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        """Sessions of one user, oldest first."""

    def users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]: ...

    def stats(self, tenant: str) -> dict[str, Any]: ...

    def forget(self, tenant: str, user: str, session_id: str | None = None) -> int:
        """Remove a user's memory (or one session) and everything derived from it; returns turns removed."""

    def get_embeddings(self, tenant: str, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]: ...

    # -- facts and standing instructions ------------------------------------------------------------------------
    def put_derived(self, tenant: str, user: str, facts: Sequence[Fact], instructions: Sequence[Instruction], *,
                    replace_session: str | None = None, facts_only: bool = False) -> int:
        """Add fact statements and instructions (rows already stored are kept; the user is created if needed).
        With `replace_session`, that session's facts (and, unless `facts_only`, its recognised instructions) are
        deleted first, in the same transaction; nothing is written if that session no longer exists. A write of
        facts (or `replace_session`) moves the user's revision (facts are dense keys of turns with `fact_keys`);
        instructions alone do not. Returns rows written."""

    def facts(self, tenant: str, user: str) -> list[Fact]:
        """Every stored fact statement of a user, in time order (valid_until is not set: see extract.timeline)."""

    def instructions(self, tenant: str, user: str) -> list[Instruction]:
        """A user's standing instructions, oldest first."""

    def remove_instruction(self, tenant: str, user: str, instruction_id: str) -> bool: ...

    def iter_derived(self, tenant: str) -> Iterator[tuple[str, list[Fact], list[Instruction]]]:
        """(user, facts, instructions) for every user of a tenant holding any, by user (for `convmem migrate`)."""

    def put_embeddings(self, tenant: str, model: str, vectors: dict[str, np.ndarray]) -> None: ...

    # -- whole-store export and import (used by `convmem migrate`) ---------------------------------------------
    def tenants(self) -> list[str]:
        """Every tenant holding any user, session or embedding, sorted."""

    def iter_sessions(self, tenant: str, *, user: str | None = None) -> Iterator[Session]:
        """Every session of a tenant (or of one `user`) with its turns, as written (ids, positions, original
        timestamps), ordered by user, then start, then session id. Read one user at a time; not one snapshot of the
        whole tenant."""

    def iter_embeddings(self, tenant: str, *, batch: int = 1000) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Every cached vector of a tenant as (model, {text_hash: vector}) chunks, ordered by model and hash."""

    def add_user(self, tenant: str, user: str) -> bool:
        """Make sure a user exists (a user whose last session was forgotten still does); True if it was new.
        Does not change the revision of an existing user."""

    def close(self) -> None: ...
