"""SQLite schema upgrades in place: a file written by an older convmem is converted when opened, in one
transaction, and every stored vector survives bit for bit.

The old schema is written here by hand (the DDL of schema 2, as released), not by running the old migrations, so
the test keeps checking the upgrade from what is really on users' disks even if the migration code changes.
"""

from __future__ import annotations

import sqlite3
import struct

import numpy as np
import pytest

import convmem.store.sqlite as sqlite_store
import convmem.store.sqlite_schema as sqlite_schema
from convmem.errors import StoreError
from convmem.store import open_store, text_hash

#: schema 2 (m001_initial + m002_facts_instructions) as convmem wrote it, embeddings WITHOUT ROWID
SCHEMA_2 = """
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE users (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, PRIMARY KEY (tenant, user_id)
) WITHOUT ROWID;
CREATE TABLE sessions (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL,
    started_at TEXT NOT NULL, started_ts REAL NOT NULL, participants TEXT NOT NULL,
    metadata TEXT NOT NULL, content_hash TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, session_id)
) WITHOUT ROWID;
CREATE TABLE turns (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL, position INTEGER NOT NULL,
    turn_id TEXT NOT NULL, speaker TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL,
    ts REAL NOT NULL, timestamp TEXT, metadata TEXT NOT NULL, text_hash TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, session_id, position),
    UNIQUE (tenant, user_id, session_id, turn_id)
) WITHOUT ROWID;
CREATE INDEX turns_by_hash ON turns (tenant, text_hash);
CREATE TABLE embeddings (
    tenant TEXT NOT NULL, model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (tenant, model, text_hash)
) WITHOUT ROWID;
CREATE TABLE facts (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT NOT NULL, turn_id TEXT NOT NULL,
    seq INTEGER NOT NULL, position INTEGER NOT NULL, subject TEXT NOT NULL, attribute TEXT NOT NULL,
    value TEXT NOT NULL, valid_from TEXT NOT NULL, valid_ts REAL NOT NULL, extractor TEXT NOT NULL,
    evidence TEXT NOT NULL, PRIMARY KEY (tenant, user_id, session_id, turn_id, seq)
) WITHOUT ROWID;
CREATE TABLE instructions (
    tenant TEXT NOT NULL, user_id TEXT NOT NULL, instruction_id TEXT NOT NULL, text TEXT NOT NULL,
    kind TEXT NOT NULL, always_on INTEGER NOT NULL, source TEXT NOT NULL, session_id TEXT, turn_id TEXT,
    created_at TEXT NOT NULL, created_ts REAL NOT NULL, PRIMARY KEY (tenant, user_id, instruction_id)
) WITHOUT ROWID;
CREATE INDEX instructions_by_session ON instructions (tenant, user_id, session_id);
INSERT INTO schema_migrations VALUES (1, 'm001_initial', '2026-01-01T00:00:00+00:00');
INSERT INTO schema_migrations VALUES (2, 'm002_facts_instructions', '2026-01-01T00:00:00+00:00');
"""

#: float32 bit patterns a float round trip could lose: NaNs with payloads and sign, infinities, -0.0, subnormals
ODD_BITS = [0x7FC00000, 0x7FC00001, 0xFFC12345, 0x7F800001, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001,
            0x807FFFFF, 0x7F7FFFFF, 0x00800000]


def odd_vector(dim: int) -> bytes:
    bits = (ODD_BITS * (dim // len(ODD_BITS) + 1))[:dim]
    return struct.pack(f"<{dim}I", *bits)


def old_vectors() -> dict[tuple[str, str, str], bytes]:
    """(tenant, model, hash) -> the stored float32 bytes: 384-dim MiniLM-sized vectors (over a page's 1 KB local
    payload, so they used overflow pages), small ones, odd bit patterns, and keys sorting around each other."""
    rng = np.random.default_rng(3)
    out: dict[tuple[str, str, str], bytes] = {}
    for tenant in ("acme", "default", "zeta"):
        for i in range(260):
            text = f"{tenant} text {i}"
            out[(tenant, "minilm", text_hash(text))] = rng.standard_normal(384).astype(np.float32).tobytes()
        for i in range(40):
            out[(tenant, "small", text_hash(f"small {i}"))] = rng.standard_normal(4).astype(np.float32).tobytes()
    out[("acme", "minilm", "odd-384")] = odd_vector(384)
    out[("acme", "small", "odd-11")] = odd_vector(11)
    out[("acme", "wide", text_hash("wide"))] = rng.standard_normal(1024).astype(np.float32).tobytes()
    out[("acme", "empty-dim", "zero")] = b""
    return out


def write_schema_2(path: str, vectors: dict[tuple[str, str, str], bytes]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN")
    for statement in SCHEMA_2.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO users VALUES ('acme', 'ana', 5, '2026-01-01T00:00:00+00:00')")
    db.execute("INSERT INTO sessions VALUES ('acme', 'ana', 's1', '2026-01-01T00:00:00+00:00', 1767225600.0,"
               " '[\"Ana\"]', '{}', 'h')")
    db.execute("INSERT INTO turns VALUES ('acme', 'ana', 's1', 0, 's1_1', 'Ana', 'user', 'acme text 0',"
               " 1767225600.0, NULL, '{}', ?)", (text_hash("acme text 0"),))
    db.executemany("INSERT INTO embeddings VALUES (?, ?, ?, ?)", [(*k, v) for k, v in vectors.items()])
    db.execute("COMMIT")
    db.close()


def raw_vectors(path: str) -> dict[tuple[str, str, str], bytes]:
    db = sqlite3.connect(path)
    try:
        return {(t, m, h): bytes(v) for t, m, h, v in db.execute("SELECT tenant, model, text_hash, vector"
                                                                 " FROM embeddings")}
    finally:
        db.close()


def schema_of(path: str) -> tuple[set[int], dict[str, str]]:
    db = sqlite3.connect(path)
    try:
        versions = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
        objects = {name: sql or "" for name, sql in db.execute("SELECT name, sql FROM sqlite_schema")}
        return versions, objects
    finally:
        db.close()


def test_schema_2_file_is_upgraded_and_every_vector_survives_bit_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_schema, "_MIGRATE_CHUNK", 97)  # several copy steps, the last one partial
    path = str(tmp_path / "old.db")
    vectors = old_vectors()
    write_schema_2(path, vectors)
    assert "WITHOUT ROWID" in schema_of(path)[1]["embeddings"]

    store = open_store(path)
    try:
        versions, objects = schema_of(path)
        assert versions == {1, 2, 3}
        assert "WITHOUT ROWID" not in objects["embeddings"] and "embeddings_key" in objects
        assert "embeddings_m002" not in objects
        # through the store: every vector, every model, bit for bit
        for tenant, model in sorted({(t, m) for t, m, _ in vectors}):
            wanted = {h: v for (t, m, h), v in vectors.items() if (t, m) == (tenant, model)}
            got = store.get_embeddings(tenant, model, list(wanted))
            assert set(got) == set(wanted)
            assert all(got[h].dtype == np.float32 and got[h].tobytes() == v for h, v in wanted.items())
        exported = {(t, m, h): v.tobytes() for t in store.tenants() for m, chunk in store.iter_embeddings(t)
                    for h, v in chunk.items()}
        assert exported == vectors
        assert store.stats("acme")["embeddings"] == sum(k[0] == "acme" for k in vectors)
        # the store still works on the new table: first write wins, new keys are added, orphans are dropped
        key = ("acme", "minilm", text_hash("acme text 1"))
        store.put_embeddings("acme", "minilm", {key[2]: np.zeros(384, np.float32), "new": np.ones(384, np.float32)})
        assert store.get_embeddings("acme", "minilm", [key[2]])[key[2]].tobytes() == vectors[key]
        assert store.get_embeddings("acme", "minilm", ["new"])["new"].tolist() == [1.0] * 384
        assert [r.text for r in store.user_turns("acme", "ana")] == ["acme text 0"]
        store.forget("acme", "ana")
        assert store.stats("acme")["embeddings"] == 0 and store.stats("zeta")["embeddings"] == 300
    finally:
        store.close()
    assert raw_vectors(path) == {k: v for k, v in vectors.items() if k[0] != "acme"}
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # same columns as schema 2: the previous version's insert still works (and still ignores a stored key)
    db.execute("INSERT OR IGNORE INTO embeddings VALUES ('zeta', 'small', ?, x'00')", (text_hash("small 0"),))
    db.execute("INSERT OR IGNORE INTO embeddings VALUES ('zeta', 'small', 'other', x'00')")
    assert db.execute("SELECT count(*) FROM embeddings WHERE tenant = 'zeta'").fetchone() == (301,)
    db.close()


class FailingConnection:
    """A connection that fails the n-th statement starting with `prefix`, as a full disk would."""

    def __init__(self, db: sqlite3.Connection, prefix: str, n: int):
        self.db, self.prefix, self.left = db, prefix, n

    def execute(self, sql: str, args=()):
        if sql.strip().startswith(self.prefix):
            self.left -= 1
            if self.left == 0:
                raise sqlite3.OperationalError("database or disk is full (simulated)")
        return self.db.execute(sql, args)


@pytest.mark.parametrize("fail_at", [("DELETE FROM embeddings_m002", 3), ("CREATE UNIQUE INDEX", 1)])
def test_failed_upgrade_leaves_the_file_unchanged(tmp_path, monkeypatch, fail_at):
    monkeypatch.setattr(sqlite_schema, "_MIGRATE_CHUNK", 50)
    path = str(tmp_path / "old.db")
    vectors = old_vectors()
    write_schema_2(path, vectors)
    before = schema_of(path)
    real = sqlite_store.MIGRATIONS[2]

    def m003_embeddings_rowid(db):
        real(FailingConnection(db, *fail_at))

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS[:2], m003_embeddings_rowid])
    with pytest.raises(StoreError, match="schema 3 .* rolled back, the file is unchanged: database or disk is full"):
        open_store(path)
    assert schema_of(path) == before
    assert raw_vectors(path) == vectors
    monkeypatch.undo()

    store = open_store(path)  # the next open converts it
    try:
        assert schema_of(path)[0] == {1, 2, 3}
        got = store.get_embeddings("acme", "minilm", [h for t, m, h in vectors if (t, m) == ("acme", "minilm")])
        assert all(got[h].tobytes() == vectors[("acme", "minilm", h)] for h in got) and len(got) == 261
    finally:
        store.close()
    assert raw_vectors(path) == vectors


def test_new_file_gets_the_rowid_table(tmp_path):
    path = str(tmp_path / "new.db")
    open_store(path).close()
    versions, objects = schema_of(path)
    assert versions == {1, 2, 3}
    assert "WITHOUT ROWID" not in objects["embeddings"] and "embeddings_key" in objects
