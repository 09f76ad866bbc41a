"""Fact statements from a chat model, one call per session, validated before anything is kept.

The model sees one worked example, then the session's user turns, numbered, and answers a JSON list of
`{"turn": n, "attribute": "...", "value": "..."}`. An item is kept only when its turn number exists, attribute
and value are non-empty strings (at most 60 and 120 characters), and the value's words appear in that turn (a
model may rephrase the attribute, not invent the value). Subject, time, session and turn come from the turn itself,
as with the rules; `extractor` is "llm". Output that is not JSON raises `JSONOutputError` (after the retries of
`complete_json`), and the caller keeps the rule facts.
"""

from __future__ import annotations

import re
from typing import Any

from convmem.extract.facts import norm_attribute
from convmem.extract.text import is_user_role
from convmem.models import Fact, Session
from convmem.providers.chat import ChatModel, complete_json
from convmem.providers.chat_json import JSONOutputError

PROMPT = (
    "Extract facts the speaker states about themself that can change over time (where they live, where they "
    "work, their job, what they started or stopped doing, what they bought, their favourite things, names of "
    "their family and pets, their age). Skip questions, wishes, plans and hypotheticals. Answer with only a JSON "
    'list like [{"turn": 1, "attribute": "lives in", "value": "Berlin"}], or [] when there are none.'
)
#: one worked example: without it SmolLM2-135M echoed the messages instead of writing JSON
EXAMPLE = [
    {"role": "user", "content": "1. Tom: I moved to Denver last year.\n2. Tom: My favourite food is sushi. Do you "
                                "like it?\n3. Tom: If I had time I would learn piano."},
    {"role": "assistant", "content": '[{"turn": 1, "attribute": "lives in", "value": "Denver"}, {"turn": 2, '
                                     '"attribute": "favorite food", "value": "sushi"}]'},
]
_WORD = re.compile(r"\w+")


def _grounded(value: str, text: str) -> bool:
    words = set(_WORD.findall(text.casefold()))
    return all(w in words for w in _WORD.findall(value.casefold()))


def items_of(data: Any) -> list:
    """The list of items in a model answer (a bare list, or {"facts": [...]}); JSONOutputError otherwise."""
    if isinstance(data, dict) and isinstance(data.get("facts"), list):
        data = data["facts"]
    if not isinstance(data, list):
        raise JSONOutputError("expected a JSON list of facts", str(data)[:200])
    return data


def parse_items(data: Any, session: Session, numbered: list[int]) -> list[Fact]:
    """The valid facts of a model answer (see the module docstring); raises JSONOutputError if it is no list."""
    data = items_of(data)
    facts: list[Fact] = []
    seqs: dict[int, int] = {}
    for item in data:
        if not isinstance(item, dict):
            continue
        n, attribute, value = item.get("turn"), item.get("attribute"), item.get("value")
        if isinstance(n, str) and n.strip().isdigit():
            n = int(n)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(numbered):
            continue
        if not isinstance(attribute, str) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
            continue
        attribute, value = norm_attribute(attribute.strip()), str(value).strip()
        if not attribute or not value or len(attribute) > 60 or len(value) > 120:
            continue
        turn = session.turns[numbered[n - 1]]
        if not _grounded(value, turn.text):
            continue
        seq = seqs.get(n, 0)
        seqs[n] = seq + 1
        facts.append(Fact(subject=turn.speaker, attribute=attribute, value=value,
                          valid_from=turn.timestamp or session.started_at, session_id=session.session_id,
                          turn_id=str(turn.turn_id), extractor="llm", evidence=turn.text[:300],
                          position=turn.position, seq=seq))
    return facts


def llm_facts(model: ChatModel, session: Session, *, max_chars: int = 6000) -> list[Fact]:
    """The facts a chat model finds in one session's user turns."""
    return llm_facts_raw(model, session, max_chars=max_chars)[0]


def llm_facts_raw(model: ChatModel, session: Session, *, max_chars: int = 6000) -> tuple[list[Fact], int]:
    """(the valid facts, how many items the model wrote): the difference is what validation dropped."""
    numbered = [i for i, t in enumerate(session.turns) if is_user_role(t.role)]
    if not numbered:
        return [], 0
    lines, size = [], 0
    for n, i in enumerate(numbered, 1):
        line = f"{n}. {session.turns[i].speaker}: {session.turns[i].text}"
        size += len(line)
        if size > max_chars:
            numbered = numbered[: n - 1]
            break
        lines.append(line)
    messages = [{"role": "system", "content": PROMPT}, *EXAMPLE, {"role": "user", "content": "\n".join(lines)}]
    data = complete_json(model, messages, max_tokens=400)
    return parse_items(data, session, numbered), len(items_of(data))
