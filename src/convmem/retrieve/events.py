"""Time bounds set by an event the memory holds: "before I moved", "after the accident", "since I started my new
job", "before the 'Run for the Cure' event" (issue 4, time-aware retrieval).

Such a bound names no date; the memory knows when the event happened. The clause after the bound word is looked
up in the user's turns (BM25 over the same index), and the best-matching turn's date is the event's date. Turns on
the asked side of it ("before", "prior to", "until": up to a day after it; "after", "since": from a day before it,
so the event's own turns count as either side) then get the time boost like a named range does. A clause that is
itself a date ("before April 10, 2023", "since last week") is a bound of the existing rules (`timeexpr`), which
give it no range, and is not looked up here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from convmem.index.lexical import BM25Index
from convmem.retrieve.timeexpr import AGO, DATE_NAME, DAY_WORD, LAST_UNIT, LAST_WEEKDAY

_OPENING = r"(?:(?i:I|I've|I'd|I'm|my|we|our|the|her|his|their|he|she|they)\b|[A-Z][\w'\u2019-]+)"
_EVENT = re.compile(rf"\b((?i:before|after|since|prior to|until|till))\s+({_OPENING}[^?,;.!]*)")
#: where the event clause ends and the rest of the question goes on ("... before the meeting did I ...")
_CLAUSE_END = re.compile(r"\s+(?:did|do|does|was|were|is|are|have|has|had|and|when|how|what|which|who|that I)\b.*$",
                         re.I)
#: the event's own day counts as on both sides of it (a turn of that day may state it, or what led to it)
_DAY = 86400.0


@dataclass(frozen=True)
class EventBound:
    before: bool  # True: the time asked about is up to the event; False: from the event on
    clause: str  # the event as the question words it ("I moved to Lisbon")


def event_bounds(question: str) -> list[EventBound]:
    """The event-anchored bounds of a question, in order (none for date bounds such as "before May 7")."""
    out = []
    for m in _EVENT.finditer(question):
        clause = _CLAUSE_END.sub("", m.group(2)).strip(" '\"")
        if not clause or re.search(r"\d", clause) or DATE_NAME.match(clause):
            continue
        if AGO.search(clause) or LAST_UNIT.search(clause) or LAST_WEEKDAY.search(clause) or DAY_WORD.match(clause):
            continue
        out.append(EventBound(before=m.group(1).casefold() in ("before", "prior to", "until", "till"), clause=clause))
    return out


def inside_event_bounds(lexical: BM25Index, timestamps: np.ndarray, bounds: list[EventBound]) -> np.ndarray | None:
    """Which turns lie on the asked side of every event found in the memory; None when no event was found (no
    turn shares a word with its clause)."""
    inside = np.ones(len(timestamps), dtype=bool)
    found = False
    for bound in bounds:
        scores = lexical.score(bound.clause)
        if not len(scores) or scores.max() <= 0:
            continue
        found = True
        when = float(timestamps[int(np.argmax(scores))])
        inside &= (timestamps <= when + _DAY) if bound.before else (timestamps >= when - _DAY)
    return inside if found else None
