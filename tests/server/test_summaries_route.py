"""GET /v1/users/{user}/summaries: the same names and results as `Memory.summaries`, errors as JSON."""

from __future__ import annotations


def test_summaries_route(client):
    session = {"user": "ana", "session_id": "s1", "started_at": "2024-01-10T10:00:00Z", "turns": [
        {"speaker": "Ana", "text": "My sister Lena is getting married in Porto in June."},
        {"speaker": "Bot", "role": "assistant", "text": "A June wedding in Porto sounds lovely."}]}
    assert client.post("/v1/sessions", json=session).status_code == 200
    body = client.get("/v1/users/ana/summaries").json()
    assert body["user"] == "ana" and [s["session_id"] for s in body["summaries"]] == ["s1"]
    assert body["summaries"][0]["method"] == "extractive" and "Porto" in body["summaries"][0]["text"]
    assert client.get("/v1/users/ana/summaries", params={"session": "s1"}).json()["summaries"][0]["turn_ids"]
    assert client.get("/v1/users/ana/summaries", params={"session": "nope"}).status_code == 404
    bad = client.get("/v1/users/ana/summaries", params={"method": "llm"})  # the server has no chat model
    assert bad.status_code in (400, 422) and "chat model" in bad.text
