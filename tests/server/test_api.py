"""The REST API in-process: routes mirror the library, JSON errors with stable codes, 4xx (never 500) for bad input."""

from __future__ import annotations

import copy

import pytest

from server_helpers import SESSION_A


def _session(sid: str, day: int, text: str, user: str = "ana") -> dict:
    return {"user": user, "session_id": sid, "started_at": f"2024-05-{day:02d}T10:00:00Z",
            "turns": [{"speaker": "Ana", "role": "user", "text": text}]}


def test_routes_mirror_the_library(client, memory):
    r = client.post("/v1/sessions", json=SESSION_A)
    assert r.status_code == 200 and r.json() == {"outcome": "added", "user": "ana", "session_id": "s1", "turns": 2}
    assert client.post("/v1/sessions", json=SESSION_A).json()["outcome"] == "unchanged"

    hits = client.post("/v1/search", json={"user": "ana", "query": "when is the wedding?", "k": 1}).json()["hits"]
    assert [h["turn_id"] for h in hits] == ["s1_1"] and "Sintra" in hits[0]["text"]
    assert hits[0]["timestamp"].startswith("2024-03-01")
    assert hits == [h.to_dict() for h in memory.search("when is the wedding?", user="ana", k=1)]

    ctx = client.post("/v1/context", json={"user": "ana", "query": "when is the wedding?", "budget_tokens": 200})
    body = ctx.json()
    assert ctx.status_code == 200 and "Sintra" in body["text"] and body["tokens"] <= 200
    assert body["citations"][0]["turn_id"] == "s1_1"

    stats = client.get("/v1/stats").json()
    assert (stats["tenant"], stats["users"], stats["sessions"], stats["turns"]) == ("default", 1, 1, 2)
    assert "location" not in stats  # no server paths in answers

    assert client.get("/v1/users").json()["users"] == ["ana"]
    assert client.delete("/v1/users/ana/sessions/s1").json() == {"user": "ana", "session_id": "s1",
                                                                 "removed_turns": 2}
    assert client.post("/v1/search", json={"user": "ana", "query": "wedding"}).json() == {"hits": []}


def test_import_any_format_and_pagination(client):
    data = [_session(f"d{i}", i + 1, f"Day {i}: I walked the dog.") for i in range(5)]
    report = client.post("/v1/import", json={"format": "convmem", "data": data}).json()
    assert (report["sessions_added"], report["turns_written"], report["users"]) == (5, 5, ["ana"])
    openai_style = {"messages": [{"role": "user", "content": "I play the cello."}]}
    r = client.post("/v1/import", json={"format": "openai", "data": openai_style, "user": "ben"})
    assert r.status_code == 200, r.text

    first = client.get("/v1/users/ana/sessions", params={"limit": 2}).json()
    assert [s["session_id"] for s in first["sessions"]] == ["d0", "d1"] and first["next_offset"] == 2
    seen = [s["session_id"] for s in first["sessions"]]
    offset = first["next_offset"]
    while offset is not None:
        page = client.get("/v1/users/ana/sessions", params={"limit": 2, "offset": offset}).json()
        seen += [s["session_id"] for s in page["sessions"]]
        offset = page["next_offset"]
    assert seen == [f"d{i}" for i in range(5)]
    assert client.get("/v1/users/nobody/sessions").json()["sessions"] == []


def test_openapi_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [("/v1/sessions", "post"), ("/v1/import", "post"), ("/v1/search", "post"),
                         ("/v1/context", "post"), ("/v1/users/{user}/sessions", "get"), ("/v1/stats", "get"),
                         ("/v1/users/{user}", "delete"), ("/v1/users/{user}/sessions/{session}", "delete"),
                         ("/v1/chat/completions", "post")]:
        assert method in paths[path], (path, method)


def _bad(session_patch: dict | None = None, turn_patch: dict | None = None) -> dict:
    s = copy.deepcopy(SESSION_A)
    s.update(session_patch or {})
    if turn_patch:
        s["turns"][0].update(turn_patch)
    return s


BAD_REQUESTS = [
    ("POST", "/v1/sessions", {}),
    ("POST", "/v1/sessions", _bad({"turns": []})),
    ("POST", "/v1/sessions", _bad({"started_at": "next tuesday"})),
    ("POST", "/v1/sessions", _bad({"started_at": None})),
    ("POST", "/v1/sessions", _bad({"user": ""})),
    ("POST", "/v1/sessions", _bad({"user": "a\x00b"})),
    ("POST", "/v1/sessions", _bad({"user": "x" * 300})),
    ("POST", "/v1/sessions", _bad({"turn": []})),
    ("POST", "/v1/sessions", _bad(turn_patch={"text": None})),
    ("POST", "/v1/sessions", _bad(turn_patch={"text": 12})),
    ("POST", "/v1/sessions", _bad(turn_patch={"speaker": "  "})),
    ("POST", "/v1/sessions", _bad(turn_patch={"timestamp": "soon"})),
    ("POST", "/v1/sessions", _bad(turn_patch={"metadata": [1]})),
    ("POST", "/v1/sessions", _bad({"turns": [{"text": "a", "turn_id": "x"}, {"text": "b", "turn_id": "x"}]})),
    ("POST", "/v1/sessions", [SESSION_A]),
    ("POST", "/v1/sessions", "just a string"),
    ("POST", "/v1/import", {"format": "convmem"}),
    ("POST", "/v1/import", {"format": "yaml", "data": []}),
    ("POST", "/v1/import", {"format": "convmem", "data": [{"user": "bob"}]}),
    ("POST", "/v1/import", {"format": "openai", "data": {"messages": "nope"}, "user": "bob"}),
    ("POST", "/v1/import", {"format": "locomo", "data": {"not": "locomo"}}),
    ("POST", "/v1/import", {"format": "longmemeval", "data": [{"question_id": 1}]}),
    ("POST", "/v1/import", {"format": "convmem", "data": 42}),
    ("POST", "/v1/search", {"user": "ana"}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "k": 0}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "k": "ten"}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "k": 10 ** 9}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "granularity": "word"}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "since": "yesterday"}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "until": [2024]}),
    ("POST", "/v1/search", {"user": "ana", "query": ["x"]}),
    ("POST", "/v1/search", {"user": None, "query": "x"}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "neighbours": -1}),
    ("POST", "/v1/search", {"user": "ana", "query": "x", "colour": "red"}),
    ("POST", "/v1/context", {"user": "ana", "query": "x", "budget_tokens": 0}),
    ("POST", "/v1/context", {"user": "ana", "query": "x", "budget_tokens": 1.5}),
    ("POST", "/v1/context", {"query": "x"}),
    ("GET", "/v1/users/ana/sessions?limit=0", None),
    ("GET", "/v1/users/ana/sessions?limit=abc", None),
    ("GET", "/v1/users/ana/sessions?offset=-1", None),
    ("GET", "/v1/users?limit=100000", None),
    ("GET", "/v1/users/" + "u" * 300 + "/sessions", None),
    ("DELETE", "/v1/users/nobody", None),
    ("DELETE", "/v1/users/ana/sessions/nothing", None),
    ("GET", "/v1/nothing-here", None),
    ("PATCH", "/v1/stats", None),
    ("POST", "/v1/chat/completions", {"messages": []}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "user": "ana"}),
]


@pytest.mark.parametrize("method, path, body", BAD_REQUESTS, ids=[f"{m} {p[:40]} {i}" for i, (m, p, _) in
                                                                 enumerate(BAD_REQUESTS)])
def test_bad_input_is_a_json_4xx_never_500(client, method, path, body):
    client.post("/v1/sessions", json=SESSION_A)
    r = client.request(method, path, json=body) if body is not None else client.request(method, path)
    assert 400 <= r.status_code < 500 or (path == "/v1/chat/completions" and r.status_code == 503), r.text
    error = r.json()["error"]
    assert isinstance(error["code"], str) and error["code"] and len(error["message"]) > 10, error


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"user": "ana", "query": "x"'])
def test_malformed_json_is_400(client, raw):
    r = client.post("/v1/search", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["error"]["code"] in ("invalid_json", "invalid_request")


def test_error_codes_are_the_library_codes(client):
    r = client.post("/v1/search", json={"user": "ana", "query": "x", "since": "yesterday"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_input")
    assert "ISO-8601" in r.json()["error"]["message"]
    r = client.post("/v1/import", json={"format": "convmem", "data": [{"user": "bob"}]})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_format")
    assert "session_id" in r.json()["error"]["message"]
    r = client.delete("/v1/users/nobody")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


def test_request_size_limit_is_413(client):
    big = {"format": "convmem", "data": [_session(f"b{i}", 1, "x" * 1000) for i in range(100)]}
    r = client.post("/v1/import", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(100):
            yield b" " * 1024

    r = client.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "--max-body-mb" in r.json()["error"]["message"]
    assert client.get("/v1/stats").json()["sessions"] == 0
