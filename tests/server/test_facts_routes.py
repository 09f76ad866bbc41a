"""The facts and instructions routes: the same names and results as `Memory`, errors as JSON."""

from __future__ import annotations

SESSIONS = [
    {"user": "ana", "session_id": "s1", "started_at": "2024-01-10T10:00:00Z",
     "turns": [{"speaker": "Ana", "text": "I live in Lisbon. I'm allergic to peanuts."}]},
    {"user": "ana", "session_id": "s2", "started_at": "2024-03-05T10:00:00Z",
     "turns": [{"speaker": "Ana", "text": "I moved to Berlin!"}]},
]


def test_facts_and_instructions_routes(client):
    for s in SESSIONS:
        assert client.post("/v1/sessions", json=s).status_code == 200
    facts = client.get("/v1/users/ana/facts").json()["facts"]
    assert [(f["attribute"], f["value"], f["valid_until"]) for f in facts] == [("lives in", "Berlin", None)]
    assert client.get("/v1/users/ana/facts", params={"at": "2024-02-01"}).json()["facts"][0]["value"] == "Lisbon"
    timeline = client.get("/v1/users/ana/facts/timeline").json()["facts"]
    assert [(f["value"], f["valid_until"]) for f in timeline] == [("Lisbon", "2024-03-05T10:00:00+00:00"),
                                                                ("Berlin", None)]
    report = client.get("/v1/users/ana/facts/contradictions").json()["contradictions"]
    assert report[0]["attribute"] == "lives in" and not report[0]["conflicting"]
    bad = client.get("/v1/users/ana/facts", params={"at": "someday"})
    assert bad.status_code in (400, 422) and "ISO-8601" in bad.text

    added = client.post("/v1/users/ana/instructions", json={"text": "Always book aisle seats."}).json()
    assert added["kind"] == "general" and added["source"] == "api"
    assert client.post("/v1/users/ana/instructions", json={"text": "x", "kind": "mood"}).status_code == 422
    listed = client.get("/v1/users/ana/instructions").json()["instructions"]
    assert {i["source"] for i in listed} == {"api", "turn"}
    picked = client.get("/v1/users/ana/instructions", params={"query": "Find me a flight"}).json()["instructions"]
    assert [i["instruction_id"] for i in picked][-1] == added["instruction_id"] and picked[0]["reason"]
    ctx = client.post("/v1/context", json={"user": "ana", "query": "Find me a flight", "budget_tokens": 500}).json()
    assert ctx["text"].startswith("Standing instructions") and len(ctx["instructions"]) == 2
    plain = client.post("/v1/context", json={"user": "ana", "query": "Find me a flight", "instructions": False})
    assert plain.json()["text"].startswith("Memory:") and plain.json()["instructions"] == []
    url = f"/v1/users/ana/instructions/{added['instruction_id']}"
    assert client.delete(url).json()["removed"] is True
    assert client.delete(url).status_code == 404
