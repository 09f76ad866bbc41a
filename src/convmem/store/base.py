"""The storage contract every backend honours, and the row type the indexes are built from.

Every method takes the tenant first: scoping by tenant happens here, in the store layer, not in the routes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from convmem.models import Session, Turn


def text_hash(text: str) -> str:
    """Content hash used to never embed the same text twice."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


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

    def add_session(self, tenant: str, session: Session) -> str:
        """Write a session; returns 'added', 'unchanged' (same id and content) or 'replaced'."""

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

    def put_embeddings(self, tenant: str, model: str, vectors: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...
