"""Forgetting is verified, not assumed: after forget(user) or forget(session) a unique canary is gone from the
SQLite file and its WAL (no explicit checkpoint needed), from the embedding cache, from the in-memory index of this
`Memory` and of a second `Memory` on the same file, and from every PostgreSQL table (see docs/postgres.md for what
VACUUM does with the dead row versions on disk).
"""

from __future__ import annotations

import uuid

import pytest

from convmem import Memory
from convmem.store.base import text_hash

from reliability_helpers import HashEmbedder


def _session(user: str, sid: str, text: str, canary: str = "") -> dict:
    return {"user": user, "session_id": sid, "started_at": "2024-01-01T00:00:00Z",
            "metadata": {"note": canary} if canary else {},
            "turns": [{"speaker": f"Speaker{canary}" if canary else "U", "role": "user", "text": text,
                       "metadata": {"tag": canary} if canary else {}}]}


def _traces(folder, needles: list[bytes]) -> list[str]:
    return [f"{p.name}: {n!r}" for p in folder.iterdir() if p.is_file() for n in needles if n in p.read_bytes()]


@pytest.mark.parametrize("scope", ["session", "user"])
def test_forgotten_canary_leaves_no_trace_in_sqlite_file_wal_caches(tmp_path, scope):
    canary = f"canary{uuid.uuid4().hex[:10]}"
    text = f"the passphrase is {canary} zebra"
    db = tmp_path / "m.db"
    mem, other = Memory(db, embedder=HashEmbedder()), Memory(db, embedder=HashEmbedder())
    mem.add_session(_session("u", "gone", text, canary))
    mem.add_session(_session("u", "kept", "an ordinary day at the park"))
    mem.add_session(_session("v", "s", "unrelated text of another user"))
    # both objects have built (and cached) an index holding the canary
    assert canary in mem.search(canary, user="u", k=1)[0].text
    assert canary in other.search(canary, user="u", k=1)[0].text
    assert mem.store.get_embeddings("default", "hash-16", [text_hash(text)])

    removed = mem.forget(user="u", session="gone" if scope == "session" else None)
    assert removed == (1 if scope == "session" else 2)

    for m in (mem, other):  # the second object sees the new revision and never serves its stale index
        assert all(canary not in h.text for h in m.search(canary, user="u", k=10))
        assert all(canary not in ctx_line for ctx_line in m.context(canary, user="u").text.splitlines())
        cached = [r for index in m.indexes._items.values() for r in index.rows]
        assert all(canary not in r.text and canary not in r.speaker for r in cached)
    assert not mem.store.get_embeddings("default", "hash-16", [text_hash(text)])
    assert [s["session_id"] for s in mem.sessions(user="u")] == (["kept"] if scope == "session" else [])
    assert mem.search("unrelated", user="v", k=1)  # the other user is untouched
    needles = [canary.encode(), text_hash(text).encode()]
    assert not _traces(tmp_path, needles), "forget() alone must not leave the text in the file or its WAL"
    mem.close()
    other.close()
    assert not _traces(tmp_path, needles)


def test_forget_through_the_server_leaves_no_trace(tmp_path):
    from fastapi.testclient import TestClient

    from convmem.server import create_app

    canary = f"canary{uuid.uuid4().hex[:10]}"
    db = tmp_path / "s.db"
    mem = Memory(db, embedder=HashEmbedder())
    with TestClient(create_app(mem)) as client:
        assert client.post("/v1/sessions", json=_session("u", "s", f"my pin is {canary}", canary)).status_code == 200
        assert client.post("/v1/search", json={"user": "u", "query": canary}).json()["hits"]
        assert client.delete("/v1/users/u/sessions/s").status_code == 200
        assert client.post("/v1/search", json={"user": "u", "query": canary}).json()["hits"] == []
    mem.close()
    assert not _traces(tmp_path, [canary.encode()])


@pytest.mark.postgres
@pytest.mark.parametrize("scope", ["session", "user"])
def test_forgotten_canary_rows_are_gone_from_postgres(pg_server_url, scope):
    psycopg = pytest.importorskip("psycopg")
    from convmem.bench.reliability import fresh_pg_database

    url = fresh_pg_database(pg_server_url)
    canary = f"canary{uuid.uuid4().hex[:10]}"
    text = f"the passphrase is {canary}"
    mem, other = Memory(url, embedder=HashEmbedder()), Memory(url, embedder=HashEmbedder())
    mem.add_session(_session("u", "gone", text, canary))
    mem.add_session(_session("u", "kept", "an ordinary day"))
    assert other.search(canary, user="u", k=1)
    mem.forget(user="u", session="gone" if scope == "session" else None)
    assert all(canary not in h.text for h in other.search(canary, user="u", k=10))
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'convmem'")]
        assert {"turns", "sessions", "embeddings", "users"} <= set(tables)
        for table in tables:
            hits = conn.execute(f"SELECT count(*) FROM convmem.{table} t WHERE t::text LIKE %s",
                                (f"%{canary}%",)).fetchone()[0]
            assert hits == 0, table
        assert conn.execute("SELECT count(*) FROM convmem.embeddings WHERE text_hash = %s",
                            (text_hash(text),)).fetchone()[0] == 0
    mem.close()
    other.close()
