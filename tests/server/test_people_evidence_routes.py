"""Per-speaker views and the "no evidence" signal over HTTP: `about` on /v1/search and /v1/context, `evidence` in
the context, /v1/users/{user}/people; the same names as `Memory`."""

from __future__ import annotations

SESSION = {"user": "ana", "session_id": "g1", "started_at": "2024-01-10T18:00:00Z", "turns": [
    {"speaker": "Ana", "text": "Anyone up for hiking this weekend?"},
    {"speaker": "Bea Silva", "text": "I can't, my knee still hurts from the marathon."},
    {"speaker": "Carl", "text": "I'm in! I just bought new hiking boots."},
    {"speaker": "Ana", "text": "Great, Carl. Bea, get well soon!"}]}


def test_about_people_and_evidence_routes(client):
    assert client.post("/v1/sessions", json=SESSION).status_code == 200
    hits = client.post("/v1/search", json={"user": "ana", "query": "knee and boots", "k": 2, "about": "Bea"}).json()
    assert hits["hits"][0]["speaker"] == "Bea Silva"
    people = client.get("/v1/users/ana/people").json()["people"]
    assert [(p["name"], p["turns"]) for p in people] == [("Ana", 2), ("Bea Silva", 1), ("Carl", 1)]
    ctx = client.post("/v1/context", json={"user": "ana", "query": "What is my dentist's name in Porto?"}).json()
    assert ctx["evidence"]["found"] is False and "No evidence in memory" in ctx["text"]
    ctx = client.post("/v1/context", json={"user": "ana", "query": "Does Bea's knee still hurt from the marathon?",
                                           "about": "Bea"}).json()
    assert ctx["evidence"]["found"] is True and "marathon" in ctx["text"]
    bad = client.post("/v1/search", json={"user": "ana", "query": "knee", "about": ""})
    assert bad.status_code in (400, 422) and "about" in bad.text
