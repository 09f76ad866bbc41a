"""convmem's own session format (JSON: one session or a list; JSON Lines: one session per line).

    {"user": "ana", "session_id": "s1", "started_at": "2024-05-08T13:56:00+02:00",
     "participants": ["Ana", "assistant"],                      # optional (default: the speakers)
     "metadata": {...},                                         # optional
     "turns": [{"speaker": "Ana", "role": "user", "text": "...",
                "timestamp": "...", "turn_id": "...", "metadata": {...}}]}   # last three optional
"""

from __future__ import annotations

from typing import Any

from convmem.errors import FormatError
from convmem.ingest._util import as_list, build, field
from convmem.models import Session, Turn


def parse_session(obj: Any, *, source: str, item: Any, user: str | None = None) -> Session:
    sid = field(obj, "session_id", (str, int), source=source, item=item)
    where = f"{item} (session {sid!r})"
    owner = user or field(obj, "user", (str, int), source=source, item=where)
    started = field(obj, "started_at", (str, int, float), source=source, item=where)
    raw_turns = field(obj, "turns", list, source=source, item=where)
    turns = []
    for i, t in enumerate(raw_turns):
        at = f"{where} turn {i}"
        text = field(t, "text", str, source=source, item=at)
        role = field(t, "role", str, source=source, item=at, required=False) or "user"
        speaker = field(t, "speaker", str, source=source, item=at, required=False) or role
        turns.append(
            Turn(speaker=speaker, role=role, text=text,
                 turn_id=field(t, "turn_id", (str, int), source=source, item=at, required=False),
                 timestamp=field(t, "timestamp", (str, int, float), source=source, item=at, required=False),
                 metadata=field(t, "metadata", dict, source=source, item=at, required=False) or {})
        )
    participants = field(obj, "participants", list, source=source, item=where, required=False) or []
    if not all(isinstance(p, str) for p in participants):
        raise FormatError("participants must be a list of names", source=source, item=where)
    return build(
        lambda: Session(user=owner, session_id=sid, started_at=started, turns=turns, participants=participants,
                        metadata=field(obj, "metadata", dict, source=source, item=where, required=False) or {}),
        source=source, item=where,
    )


def parse(data: Any, *, source: str, user: str | None = None) -> list[Session]:
    return [parse_session(obj, source=source, item=i, user=user) for i, obj in enumerate(as_list(data, source=source))]
