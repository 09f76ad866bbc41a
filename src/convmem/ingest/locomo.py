"""LoCoMo (snap-research/LoCoMo, `locomo10.json`): one user per conversation (`sample_id`), one session per
`session_N` dated by `session_N_date_time` ("1:56 pm on 8 May, 2023", declared UTC), turn id = `dia_id`.

Both people are role "participant"; turns that share a photo get its caption appended as
"[shares a photo: <blip_caption>]" (LoCoMo's own QA baselines show the caption the same way), and keep
img_url / blip_caption / query in their metadata.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from convmem.errors import FormatError
from convmem.ingest._util import as_list, build, field
from convmem.models import Session, Turn

_SESSION = re.compile(r"^session_(\d+)$")


def parse_date(text: str, *, source: str, item: Any) -> datetime:
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    raise FormatError(f"date {text!r} is not like '1:56 pm on 8 May, 2023'", source=source, item=item)


def parse(data: Any, *, source: str, user: str | None = None) -> list[Session]:
    sessions = []
    for i, sample in enumerate(as_list(data, source=source)):
        sample_id = field(sample, "sample_id", (str, int), source=source, item=i)
        conv = field(sample, "conversation", dict, source=source, item=i)
        owner = user or str(sample_id)
        numbers = sorted(int(m.group(1)) for k in conv if (m := _SESSION.match(k)))
        for n in numbers:
            where = f"{i} ({sample_id}) session_{n}"
            raw = conv[f"session_{n}"]
            if not isinstance(raw, list):
                raise FormatError("session must be a list of turns", source=source, item=where)
            if not raw:
                continue
            date = field(conv, f"session_{n}_date_time", str, source=source, item=where)
            started = parse_date(date, source=source, item=where)
            turns = []
            for j, t in enumerate(raw):
                at = f"{where} turn {j}"
                text = field(t, "text", str, source=source, item=at)
                meta = {k: t[k] for k in ("img_url", "blip_caption", "query") if k in t}
                if isinstance(t.get("blip_caption"), str):
                    text = f"{text} [shares a photo: {t['blip_caption']}]"
                turns.append(Turn(speaker=field(t, "speaker", str, source=source, item=at), role="participant",
                                  text=text, turn_id=field(t, "dia_id", str, source=source, item=at), metadata=meta))
            participants = [p for p in (conv.get("speaker_a"), conv.get("speaker_b")) if isinstance(p, str)]
            sessions.append(build(
                lambda: Session(user=owner, session_id=f"session_{n}", started_at=started, turns=turns,
                                participants=participants or [], metadata={"date_time": date}),
                source=source, item=where))
    return sessions
