"""The MCP tools beyond remember/search/context/facts/instructions/forget: one per `Memory` operation, named like it
and like its HTTP route, answering what the route answers (both are `convmem.results`). Called through the MCP
server object with the SDK's own client (in-process), on a real SQLite memory."""

from __future__ import annotations

import asyncio

import pytest

mcp = pytest.importorskip("mcp")

SESSIONS = [
    {"user": "ana", "session_id": "s1", "started_at": "2024-01-10T10:00:00Z", "turns": [
        {"speaker": "Ana", "text": "I live in Lisbon. I'm allergic to peanuts."},
        {"speaker": "Bea Silva", "text": "My knee still hurts from the marathon."},
        {"speaker": "Ana", "text": "Get well soon, Bea!"}]},
    {"user": "ana", "session_id": "s2", "started_at": "2024-03-05T10:00:00Z", "turns": [
        {"speaker": "Ana", "text": "I moved to Berlin!"},
        {"speaker": "assistant", "role": "assistant", "text": "Congratulations on the move to Berlin."}]},
    {"user": "ben", "session_id": "b1", "started_at": "2024-02-01T08:00:00Z", "turns": [
        {"speaker": "Ben", "text": "I play the cello."}]},
]
NEW_TOOLS = {"users", "sessions", "people", "stats", "fact_timeline", "contradictions", "summaries",
             "add_instruction", "remove_instruction"}


@pytest.fixture
def loaded(memory):
    for session in SESSIONS:
        memory.add_session(session)
    return memory


def call(memory, calls: list[tuple[str, dict]]) -> list:
    """Each (tool, arguments) through `create_mcp_server(memory)`, in order, in one client session."""
    from convmem.server.mcp_server import create_mcp_server

    async def session() -> list:
        async with mcp.Client(create_mcp_server(memory)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            return [tools] + [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(asyncio.wait_for(session(), timeout=120))


def ok(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error(result) -> str:
    """A tool error: one line saying what was wrong (with convmem's code), never a traceback."""
    assert result.is_error
    text = result.content[0].text
    assert "Traceback" not in text and "\n" not in text.strip()
    return text


def test_new_tools_are_listed_with_the_library_names(loaded):
    tools, = call(loaded, [])
    assert NEW_TOOLS <= tools and {"remember", "search", "context", "facts", "instructions", "forget"} <= tools


def test_users_and_sessions_page_like_the_routes(loaded):
    _, first, rest, bad, too_many, ana, page, nobody, bad_user = call(loaded, [
        ("users", {"limit": 1}), ("users", {"limit": 1, "offset": 1}), ("users", {"limit": 0}),
        ("users", {"limit": 5000}), ("sessions", {"user": "ana"}), ("sessions", {"user": "ana", "limit": 1}),
        ("sessions", {"user": "nobody"}), ("sessions", {"user": ""})])
    assert ok(first) == {"users": ["ana"], "limit": 1, "offset": 0, "next_offset": 1}
    assert ok(rest) == {"users": ["ben"], "limit": 1, "offset": 1, "next_offset": None}
    assert "invalid_input" in error(bad) and "limit must be an integer from 1 to 1000" in error(too_many)
    rows = ok(ana)["sessions"]
    assert [(r["session_id"], r["turns"]) for r in rows] == [("s1", 3), ("s2", 2)]
    assert rows[0]["participants"] == ["Ana", "Bea Silva"] and ok(ana)["next_offset"] is None
    assert [r["session_id"] for r in ok(page)["sessions"]] == ["s1"] and ok(page)["next_offset"] == 1
    assert ok(nobody)["sessions"] == []  # as over HTTP: a user with no memory is empty, whoever else has one
    assert "user must be a non-empty string" in error(bad_user)


def test_people_and_stats(loaded):
    _, people, nobody, stats = call(loaded, [("people", {"user": "ana"}), ("people", {"user": "nobody"}),
                                             ("stats", {})])
    body = ok(people)
    assert body["user"] == "ana"
    assert [(p["name"], p["turns"], p["sessions"]) for p in body["people"]] == [
        ("Ana", 3, 2), ("Bea Silva", 1, 1), ("assistant", 1, 1)]
    bea = body["people"][1]
    assert bea["mentioned_by_others"] == 1 and bea["first_seen"].startswith("2024-01-10")
    assert ok(nobody) == {"user": "nobody", "people": []}
    counts = ok(stats)
    assert (counts["tenant"], counts["users"], counts["sessions"], counts["turns"]) == ("default", 2, 3, 6)
    assert counts["facts"] >= 2 and counts["instructions"] >= 1
    assert "location" not in counts and "file_bytes" not in counts  # the server's paths stay private, as over HTTP


def test_fact_timeline_and_contradictions(loaded):
    _, timeline, contradictions, bea, bad_subject, bad_date = call(loaded, [
        ("fact_timeline", {"user": "ana"}), ("contradictions", {"user": "ana"}),
        ("fact_timeline", {"user": "ana", "subject": "Bea Silva"}), ("contradictions", {"user": "ana", "subject": " "}),
        ("facts", {"user": "ana", "at": "someday"})])
    facts = ok(timeline)["facts"]
    assert [(f["subject"], f["attribute"], f["value"], f["valid_until"]) for f in facts] == [
        ("Ana", "lives in", "Lisbon", "2024-03-05T10:00:00+00:00"), ("Ana", "lives in", "Berlin", None)]
    assert facts[0]["turn_id"] == "s1_1" and facts[1]["session_id"] == "s2"
    report = ok(contradictions)["contradictions"]
    assert [(g["subject"], g["attribute"], g["conflicting"]) for g in report] == [("Ana", "lives in", False)]
    assert [c["value"] for c in report[0]["changes"]] == ["Lisbon", "Berlin"]
    assert ok(bea)["facts"] == []
    assert "subject must be a non-empty string" in error(bad_subject)
    assert "invalid_input" in error(bad_date) and "ISO-8601" in error(bad_date)


def test_summaries(loaded):
    _, every, one, missing, nobody, llm, bogus = call(loaded, [
        ("summaries", {"user": "ana"}), ("summaries", {"user": "ana", "session": "s2"}),
        ("summaries", {"user": "ana", "session": "nope"}), ("summaries", {"user": "nobody", "session": "s1"}),
        ("summaries", {"user": "ana", "method": "llm"}), ("summaries", {"user": "ana", "method": "bogus"})])
    rows = ok(every)["summaries"]
    assert [(s["session_id"], s["method"]) for s in rows] == [("s1", "extractive"), ("s2", "extractive")]
    assert "Lisbon" in rows[0]["text"] and rows[0]["started_at"].startswith("2024-01-10")
    only = ok(one)["summaries"]
    assert [s["session_id"] for s in only] == ["s2"] and "Berlin" in only[0]["text"] and only[0]["turn_ids"]
    assert "not_found" in error(missing) and "no session 'nope'" in error(missing)
    assert "not_found" in error(nobody) and "'nobody'" in error(nobody)
    assert "chat model" in error(llm)  # this server has none
    assert "method must be one of" in error(bogus)


def test_add_and_remove_instruction(loaded):
    _, added, again, listed, bad_kind, empty = call(loaded, [
        ("add_instruction", {"user": "ana", "text": "Always book aisle seats."}),
        ("add_instruction", {"user": "ana", "text": "Always book aisle seats."}),
        ("instructions", {"user": "ana"}),
        ("add_instruction", {"user": "ana", "text": "Be cheerful.", "kind": "mood"}),
        ("add_instruction", {"user": "ana", "text": "  "})])
    ins = ok(added)
    assert (ins["text"], ins["kind"], ins["source"]) == ("Always book aisle seats.", "general", "api")
    assert ok(again)["instruction_id"] == ins["instruction_id"]  # idempotent per text
    texts = {(i["source"], i["text"]) for i in ok(listed)["instructions"]}
    assert ("api", "Always book aisle seats.") in texts and any(s == "turn" and "peanuts" in t for s, t in texts)
    assert "kind must be one of" in error(bad_kind) and "non-empty string" in error(empty)

    _, removed, twice, nobody, listed = call(loaded, [
        ("remove_instruction", {"user": "ana", "instruction_id": ins["instruction_id"]}),
        ("remove_instruction", {"user": "ana", "instruction_id": ins["instruction_id"]}),
        ("remove_instruction", {"user": "nobody", "instruction_id": ins["instruction_id"]}),
        ("instructions", {"user": "ana"})])
    assert ok(removed) == {"user": "ana", "instruction_id": ins["instruction_id"], "removed": True}
    assert "not_found" in error(twice) and "not_found" in error(nobody)
    assert all(i["instruction_id"] != ins["instruction_id"] for i in ok(listed)["instructions"])


def without_nulls(value):
    """The HTTP response models write absent optional fields (an instruction's `score`) as null."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return [without_nulls(v) for v in value] if isinstance(value, list) else value


def test_tools_answer_what_the_routes_answer(loaded, client):
    """Same name, same result: each read tool and its HTTP route, on the same memory."""
    pairs = [("users", {}, "/v1/users"), ("sessions", {"user": "ana"}, "/v1/users/ana/sessions"),
             ("people", {"user": "ana"}, "/v1/users/ana/people"), ("stats", {}, "/v1/stats"),
             ("fact_timeline", {"user": "ana"}, "/v1/users/ana/facts/timeline"),
             ("contradictions", {"user": "ana"}, "/v1/users/ana/facts/contradictions"),
             ("summaries", {"user": "ana"}, "/v1/users/ana/summaries"),
             ("facts", {"user": "ana"}, "/v1/users/ana/facts"),
             ("instructions", {"user": "ana"}, "/v1/users/ana/instructions")]
    _, *answers = call(loaded, [(name, args) for name, args, _ in pairs])
    for (name, _, route), result in zip(pairs, answers):
        assert without_nulls(ok(result)) == without_nulls(client.get(route).json()), name
