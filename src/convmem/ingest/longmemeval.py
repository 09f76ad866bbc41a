"""LongMemEval (xiaowu0162/LongMemEval; oracle, _s, _m files): one user per question (`question_id`), sessions from
`haystack_session_ids` dated by `haystack_dates` ("2023/05/20 (Sat) 02:21", declared UTC). Every turn, assistant
turns included, gets the id `<session_id>_<i+1>` (i its index in the session); `has_answer` is kept in metadata.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from convmem.errors import FormatError
from convmem.ingest._util import as_list, build, field
from convmem.models import Session, Turn


def parse_date(text: str, *, source: str, item: Any) -> datetime:
    try:
        return datetime.strptime(text.strip(), "%Y/%m/%d (%a) %H:%M").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise FormatError(f"date {text!r} is not like '2023/05/20 (Sat) 02:21'", source=source, item=item) from exc


def parse(data: Any, *, source: str, user: str | None = None) -> list[Session]:
    sessions = []
    for i, q in enumerate(as_list(data, source=source)):
        qid = field(q, "question_id", (str, int), source=source, item=i)
        ids = field(q, "haystack_session_ids", list, source=source, item=f"{i} ({qid})")
        dates = field(q, "haystack_dates", list, source=source, item=f"{i} ({qid})")
        bodies = field(q, "haystack_sessions", list, source=source, item=f"{i} ({qid})")
        if not len(ids) == len(dates) == len(bodies):
            raise FormatError("haystack_session_ids, haystack_dates and haystack_sessions differ in length",
                              source=source, item=f"{i} ({qid})")
        for sid, date, body in zip(ids, dates, bodies):
            where = f"{i} ({qid}) session {sid}"
            if not isinstance(date, str):
                raise FormatError("haystack date must be a string", source=source, item=where)
            started = parse_date(date, source=source, item=where)
            if not isinstance(body, list):
                raise FormatError("session must be a list of turns", source=source, item=where)
            turns = []
            for j, t in enumerate(body):
                at = f"{where} turn {j}"
                role = field(t, "role", str, source=source, item=at)
                meta = {"has_answer": bool(t["has_answer"])} if isinstance(t, dict) and "has_answer" in t else {}
                turns.append(Turn(speaker=role, role=role, text=field(t, "content", str, source=source, item=at),
                                  turn_id=f"{sid}_{j + 1}", metadata=meta))
            if not turns:
                continue
            sessions.append(build(lambda: Session(user=user or str(qid), session_id=sid, started_at=started,
                                                  turns=turns), source=source, item=where))
    return sessions
