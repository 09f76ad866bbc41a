"""The standing-instructions section of a context block: the user's own rules, to be applied, kept apart from
the quoted memories (which are data, never instructions)."""

from __future__ import annotations

import json
from typing import Any, Sequence

HEADER = ("Standing instructions this user gave (apply them to this request unless it says otherwise; when two "
          "conflict, the later one holds):")


def instruction_line(item: dict[str, Any]) -> str:
    day = str(item.get("created_at", ""))[:10]
    return f"- [{item['instruction_id']}] {day} ({item['kind']}): {json.dumps(item['text'], ensure_ascii=False)}"


def render_instructions(items: Sequence[dict[str, Any]]) -> str:
    """The section for `Context.instructions` ('' when there are none)."""
    if not items:
        return ""
    return "\n".join([HEADER, *(instruction_line(i) for i in items)])
