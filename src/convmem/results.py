"""What the HTTP routes and the MCP tools answer for one `Memory` operation: a JSON-ready dict, one function per
operation, named like the `Memory` method it calls.

`convmem.server.routes` returns these dicts as response bodies and `convmem.server.mcp_server` (through
`convmem.tools.call_tool` for the tools an OpenAI model may also call) returns them as tool results, so both
surfaces give the same fields for the same names: pages of users and sessions, the stats a tenant may see, facts,
instructions and summaries as `to_dict()` records. Bad arguments raise `InputError` (`NotFound` for a session or
instruction that does not exist); a user with no memory is empty, not an error, as in the library (a user known
only to another tenant must look the same as one nobody knows).
"""

from __future__ import annotations

from typing import Any, Callable

from convmem.errors import InputError

PAGE_LIMIT = 100  # default page of `users` and `sessions`
MAX_PAGE_LIMIT = 1000
PRIVATE_STATS = ("location", "file_bytes")  # server paths and whole-database sizes are not a tenant's business


def _page(fetch: Callable[[int, int], list[Any]], limit: Any, offset: Any) -> tuple[list[Any], dict[str, Any]]:
    """One page of `fetch(limit, offset)`, fetched with limit+1 to know whether there is more: the items and the
    `limit`, `offset`, `next_offset` (None on the last page) fields."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InputError(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}")
    items = fetch(limit + 1, offset)  # `Memory` checks the offset
    return items[:limit], {"limit": limit, "offset": offset,
                           "next_offset": offset + limit if len(items) > limit else None}


def users(memory: Any, *, limit: int = PAGE_LIMIT, offset: int = 0) -> dict[str, Any]:
    page, window = _page(lambda n, o: memory.users(limit=n, offset=o), limit, offset)
    return {"users": page, **window}


def sessions(memory: Any, user: str, *, limit: int = PAGE_LIMIT, offset: int = 0) -> dict[str, Any]:
    page, window = _page(lambda n, o: memory.sessions(user=user, limit=n, offset=o), limit, offset)
    return {"user": str(user), "sessions": page, **window}


def people(memory: Any, user: str) -> dict[str, Any]:
    return {"user": str(user), "people": memory.people(user)}


def stats(memory: Any) -> dict[str, Any]:
    return {k: v for k, v in memory.stats().items() if k not in PRIVATE_STATS}


def facts(memory: Any, user: str, *, at: str | None = None, subject: str | None = None) -> dict[str, Any]:
    return {"user": str(user), "facts": [f.to_dict() for f in memory.facts(user, at=at, subject=subject)]}


def fact_timeline(memory: Any, user: str, *, subject: str | None = None) -> dict[str, Any]:
    return {"user": str(user), "facts": [f.to_dict() for f in memory.fact_timeline(user, subject=subject)]}


def contradictions(memory: Any, user: str, *, subject: str | None = None) -> dict[str, Any]:
    return {"user": str(user), "contradictions": memory.contradictions(user, subject=subject)}


def instructions(memory: Any, user: str, *, query: str | None = None) -> dict[str, Any]:
    """`Memory.instructions`, or with `query` `Memory.applicable_instructions` (each with its score and reason)."""
    rows = [s.to_dict() for s in memory.applicable_instructions(user, query)] if query is not None else \
        [i.to_dict() for i in memory.instructions(user)]
    return {"user": str(user), "instructions": rows}


def add_instruction(memory: Any, user: str, text: str, *, kind: str | None = None) -> dict[str, Any]:
    return memory.add_instruction(user, text, kind=kind).to_dict()


def remove_instruction(memory: Any, user: str, instruction_id: str) -> dict[str, Any]:
    memory.remove_instruction(user, instruction_id)
    return {"user": str(user), "instruction_id": str(instruction_id), "removed": True}


def summaries(memory: Any, user: str, *, method: str | None = None, session: str | None = None) -> dict[str, Any]:
    return {"user": str(user), "summaries": [s.to_dict() for s in memory.summaries(user, method=method,
                                                                                 session=session)]}
