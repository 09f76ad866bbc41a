"""OpenAI-style chat: a `messages` list ({"role", "content", "name"?}), bare or inside an object.

    [{"role": "user", "content": "Hi, I'm Ana"}, {"role": "assistant", "content": "Hello Ana!"}]
    {"session_id": "c1", "user": "ana", "started_at": "2024-05-08T10:00:00Z", "messages": [...]}
    a list of such objects, or one per line (JSON Lines)

Without `started_at` (or OpenAI's `created`, epoch seconds) the session is dated by the file's modification time;
without `session_id` the id is a hash of the messages, so importing the same file twice adds nothing.
`system` messages are skipped (instructions to a model are not memories of the user); content given as a list of
parts keeps its text parts.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from typing import Any

from convmem.errors import FormatError
from convmem.ingest._util import build, field
from convmem.models import Session, Turn


def _content(msg: dict, *, source: str, item: Any) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if not all(isinstance(t, str) for t in texts):
            raise FormatError("a text part's 'text' must be a string", source=source, item=item)
        return "\n".join(texts)
    if content is None:
        return ""
    raise FormatError("message content must be a string or a list of parts", source=source, item=item)


def _started(obj: dict, source: str) -> Any:
    for key in ("started_at", "created"):
        if obj.get(key) is not None:
            return obj[key]
    try:
        return datetime.fromtimestamp(os.path.getmtime(source), tz=timezone.utc)
    except OSError:
        return datetime.now(timezone.utc)


def parse(data: Any, *, source: str, user: str | None = None) -> list[Session]:
    if isinstance(data, list) and data and all(isinstance(m, dict) and "role" in m for m in data):
        data = [{"messages": data}]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise FormatError("expected a messages list, an object with 'messages', or a list of those", source=source)
    sessions = []
    for i, obj in enumerate(data):
        messages = field(obj, "messages", list, source=source, item=i)
        owner = user or field(obj, "user", (str, int), source=source, item=i, required=False)
        if owner is None:
            raise FormatError("no user: pass --user (or give a 'user' field)", source=source, item=i)
        turns = []
        for j, msg in enumerate(messages):
            role = field(msg, "role", str, source=source, item=f"{i} message {j}")
            if role == "system":
                continue
            text = _content(msg, source=source, item=f"{i} message {j}")
            speaker = msg.get("name") if isinstance(msg.get("name"), str) and msg["name"].strip() else role
            turns.append(Turn(speaker=speaker, role=role, text=text))
        sid = obj.get("session_id") or obj.get("id") or hashlib.sha256(
            json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ).hexdigest()[:16]
        sessions.append(
            build(lambda: Session(user=owner, session_id=sid, started_at=_started(obj, source), turns=turns),
                  source=source, item=i)
        )
    return sessions
