"""Memory as tools: OpenAI function-calling schemas for remember / search / context / facts / instructions, and one
dispatcher.

Any agent framework that speaks OpenAI "tools" can read and write memory the way it calls any other function:

    from convmem import Memory
    from convmem.tools import TOOLS, call_tool

    mem = Memory("memory.db")
    response = client.chat.completions.create(model=..., messages=..., tools=TOOLS)
    for call in response.choices[0].message.tool_calls or []:
        result = call_tool(mem, call.function.name, call.function.arguments, user="ana")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})

The application binds the user (`call_tool(..., user="ana")`), so a model can never reach another user's memory;
`tool_schemas(with_user=True)` adds a `user` parameter for trusted callers instead. `forget` is left out of `TOOLS`
(a model should not erase memory on its own); `tool_schemas(include_forget=True)` adds it. The MCP server
(`convmem mcp`) serves the same tools through this dispatcher.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

from convmem import results
from convmem.errors import InputError

_USER = {"type": "string", "description": "Whose memory (the end user's id)."}
_ABOUT = {"type": "string", "description": "A person's name: turns spoken by them or mentioning them rank first "
                                          "(what memory knows about that person)."}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "remember": {
        "description": "Store something worth remembering about the user (a fact, preference, plan or event), "
                       "as one dated turn of today's memory session.",
        "parameters": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "description": "What to remember, in one or two sentences."},
                "speaker": {"type": "string", "description": "Who said it (default: the user's id)."},
                "role": {"type": "string", "description": "Role of the speaker: user (default) or assistant."},
                "session": {"type": "string",
                            "description": "Session id to append to (default: memory-YYYY-MM-DD, today in UTC)."},
            },
            "required": ["text"],
        },
    },
    "search": {
        "description": "Search the user's long-term memory; returns the best matching turns, each dated and "
                       "with its turn id.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for, in natural language."},
                "k": {"type": "integer", "minimum": 1, "maximum": 50, "description": "How many hits (default 5)."},
                "since": {"type": "string", "description": "Only turns at or after this ISO-8601 date-time."},
                "until": {"type": "string", "description": "Only turns at or before this ISO-8601 date-time."},
                "about": _ABOUT,
            },
            "required": ["query"],
        },
    },
    "context": {
        "description": "Get a compact, dated, cited block of the memories most relevant to a question, under a "
                       "token budget, ready to read before answering. Line [n] of the text is turn citations[n-1].",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The question to answer."},
                "budget_tokens": {"type": "integer", "minimum": 50, "maximum": 8000,
                                  "description": "Token budget of the block (default 1000)."},
                "about": _ABOUT,
            },
            "required": ["query"],
        },
    },
    "facts": {
        "description": "Facts about the user (and people they talk about) as valid now or at a date: where they "
                       "live, work, what they started or stopped, ... each with when it became true and its turn id.",
        "parameters": {
            "type": "object",
            "properties": {
                "at": {"type": "string", "description": "ISO-8601 date or date-time (default: now)."},
                "subject": {"type": "string", "description": "Only facts about this speaker."},
            },
            "required": [],
        },
    },
    "instructions": {
        "description": "The user's standing instructions and preferences (allergies, diet, language, format, ...); "
                       "with `query`, only those that apply to that request.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "The request to select instructions for."}},
            "required": [],
        },
    },
    "forget": {
        "description": "Erase the user's stored memory, or one session of it. Cannot be undone.",
        "parameters": {
            "type": "object",
            "properties": {"session": {"type": "string", "description": "Only this session id."}},
            "required": [],
        },
    },
}


def tool_schemas(*, with_user: bool = False, include_forget: bool = False) -> list[dict[str, Any]]:
    """OpenAI `tools=` entries: [{"type": "function", "function": {"name", "description", "parameters"}}]."""
    out = []
    for name, schema in _SCHEMAS.items():
        if name == "forget" and not include_forget:
            continue
        fn = copy.deepcopy(schema)
        fn["parameters"]["additionalProperties"] = False
        if with_user:
            fn["parameters"]["properties"] = {"user": _USER, **fn["parameters"]["properties"]}
            fn["parameters"]["required"] = ["user", *fn["parameters"]["required"]]
        out.append({"type": "function", "function": {"name": name, **fn}})
    return out


TOOLS = tool_schemas()
TOOL_NAMES = tuple(_SCHEMAS)


def daily_session(prefix: str, when: datetime | None = None) -> str:
    """`prefix-YYYY-MM-DD` (UTC): the session that collects one day's turns when no session is named."""
    return f"{prefix}-{(when or datetime.now(timezone.utc)).astimezone(timezone.utc):%Y-%m-%d}"


def _arguments(arguments: Any) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        from convmem.providers.chat_json import JSONOutputError, parse_json_output

        try:
            arguments = parse_json_output(arguments)
        except JSONOutputError as exc:
            raise InputError(f"tool arguments are not a JSON object: {exc.reason}") from exc
    if not isinstance(arguments, dict):
        raise InputError("tool arguments must be a JSON object")
    return arguments


def _get(args: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None,
         required: bool = False) -> Any:
    value = args.get(name)
    if value is None:
        if required:
            raise InputError(f"argument {name!r} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"argument {name!r} must be a {getattr(kind, '__name__', 'value')}")
    return value


def call_tool(memory: Any, name: str, arguments: Any = None, *, user: str | None = None) -> dict[str, Any]:
    """Run one memory tool. `arguments` is a dict or the JSON string a model wrote; returns a JSON-ready dict.

    Bad arguments raise `InputError` with a message a model can act on (send it back as the tool result).
    """
    if name not in _SCHEMAS:
        raise InputError(f"unknown tool {name!r}; the memory tools are {', '.join(TOOL_NAMES)}")
    args = _arguments(arguments)
    allowed = set(_SCHEMAS[name]["parameters"]["properties"]) | ({"user"} if user is None else set())
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise InputError(f"{name}: unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    who = user if user is not None else _get(args, "user", (str, int), required=True)

    if name == "remember":
        text = _get(args, "text", str, required=True)
        if not text.strip():
            raise InputError("argument 'text' must not be empty")
        session = _get(args, "session", (str, int)) or daily_session("memory")
        turn = {"speaker": _get(args, "speaker", str) or str(who), "role": _get(args, "role", str) or "user",
                "text": text, "timestamp": datetime.now(timezone.utc)}
        stored = memory.add_turns([turn], user=who, session=session)
        return {"stored": stored, "user": str(who), "session": str(session)}
    if name == "search":
        hits = memory.search(_get(args, "query", str, required=True), user=who, k=_get(args, "k", int, 5),
                             since=_get(args, "since", str), until=_get(args, "until", str),
                             about=_get(args, "about", str))
        return {"hits": [{"turn_id": h.turn_id, "session_id": h.session_id, "timestamp": h.timestamp.isoformat(),
                          "speaker": h.speaker, "role": h.role, "text": h.text, "score": round(h.score, 4)}
                         for h in hits]}
    if name == "context":
        ctx = memory.context(_get(args, "query", str, required=True), user=who,
                             budget_tokens=_get(args, "budget_tokens", int, 1000), about=_get(args, "about", str))
        return {"text": ctx.text, "tokens": ctx.tokens, "citations": [c.turn_id for c in ctx.citations],
                "evidence": ctx.evidence}
    if name == "facts":
        return results.facts(memory, who, at=_get(args, "at", str), subject=_get(args, "subject", str))
    if name == "instructions":
        return results.instructions(memory, who, query=_get(args, "query", str))
    removed = memory.forget(user=who, session=_get(args, "session", (str, int)))
    return {"removed_turns": removed}


def result_text(result: dict[str, Any]) -> str:
    """A tool result as the string an OpenAI `tool` message carries."""
    return json.dumps(result, ensure_ascii=False)
