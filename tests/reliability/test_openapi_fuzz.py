"""schemathesis against the server's own OpenAPI schema (in-process ASGI): no answer is ever a 5xx.

The chat proxy gets an in-process echo model, so its routes are fuzzed too (without one they answer 503
no_upstream by design). CONVMEM_FUZZ_EXAMPLES raises the examples per operation (default 10).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from convmem.providers.chat import ChatModel, Completion  # noqa: E402

from reliability_helpers import HashEmbedder  # noqa: E402

EXAMPLES = int(os.environ.get("CONVMEM_FUZZ_EXAMPLES", "0")) or 10


class Echo(ChatModel):
    name = "echo"

    def generate(self, messages, *, max_tokens=256, temperature=0.0, stop=None):
        last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else ""
        return Completion(text=str(last)[:200], model=self.name)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from convmem import Memory
    from convmem.keys import KeyStore
    from convmem.server import create_app
    from convmem.server.local_llm import ChatModelBackend

    db = str(tmp_path_factory.mktemp("fuzz") / "api.db")
    mem = Memory(db, embedder=HashEmbedder())
    mem.add_session({"user": "ana", "session_id": "s1", "started_at": "2024-05-08T10:00:00Z",
                     "turns": [{"speaker": "Ana", "text": "My sister marries in Sintra."}]})
    yield create_app(mem, keys=KeyStore(db), upstream=ChatModelBackend(Echo()), max_body_bytes=256 * 1024)
    mem.close()


def test_no_server_errors(app):
    """Every operation of /openapi.json, fuzzed (schemathesis' pytest plugin does not load on this pytest: its
    strategies are driven by hypothesis directly)."""
    from hypothesis import given

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    seen: dict[str, set[int]] = {}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CONVMEM_FUZZ_EXAMPLES"),
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call()
            seen.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])

        fuzz()
    print(seen)
    assert all(codes for codes in seen.values())


def test_oversized_payloads_get_413(app):
    from fastapi.testclient import TestClient

    big = {"user": "ana", "session_id": "big", "started_at": "2024-01-01T00:00:00Z",
           "turns": [{"text": "x" * (300 * 1024)}]}
    with TestClient(app) as client:
        r = client.post("/v1/sessions", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        def chunks():  # no Content-Length: the limit is enforced while the body streams in
            for _ in range(40):
                yield b"x" * 10_000

        r = client.post("/v1/import", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert "s1" in {s["session_id"] for s in client.get("/v1/users/ana/sessions").json()["sessions"]}
