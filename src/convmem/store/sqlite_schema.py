"""The SQLite schema: append-only numbered migrations, each run by `SQLiteStore` in one transaction (a failed one
leaves the file as it was) and recorded in `schema_migrations`."""

from __future__ import annotations

import sqlite3


def _run(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one (executescript would commit the migration's transaction half-way)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_initial(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
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
        """
    )


def m002_facts_instructions(db: sqlite3.Connection) -> None:
    """Fact statements and standing instructions (issue 9), keyed like the other tables."""
    _run(
        db,
        """
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
        CREATE INDEX instructions_by_session ON instructions (tenant, user_id, session_id)
        """
    )


def m003_embeddings_rowid(db: sqlite3.Connection) -> None:
    """Vectors in a rowid table with a unique index on (tenant, model, text_hash), instead of WITHOUT ROWID.

    A WITHOUT ROWID table is a b-tree of index format, which keeps at most ~1 KB of a row on a 4 KB page: each
    1.5 KB MiniLM vector put 489 bytes on a leaf page and the rest on an overflow page of its own, 4.7 KB on disk
    per vector and two page reads for each one a cold user index loads. A rowid table keeps rows up to ~4 KB on
    the leaf: two vectors a page (2.1 KB each, index entry included), one page read, and vectors written together
    (a session's, an import chunk's) stay together in rowid order. Same columns as before, so the statements of
    the previous version still work on the new table.

    Copied in one transaction (by `_migrate`): the file is either converted or unchanged. The copy moves
    `_MIGRATE_CHUNK` vectors at a time and deletes them from the old table, whose freed pages the next chunks
    reuse, so the file does not grow; what the new layout saves stays in the file as free pages (reused by later
    writes; VACUUM returns them). secure_delete stays on, so the freed pages are zeroed and no stale copy of a
    vector outlives a later forget. While the migration runs the WAL grows to about the old table's size (measured:
    102 MB for a 97 MB table of 20,764 vectors, converted in 1.2 s; the file grew 3%).
    """
    _run(
        db,
        """
        ALTER TABLE embeddings RENAME TO embeddings_m002;
        CREATE TABLE embeddings (
            tenant TEXT NOT NULL, model TEXT NOT NULL, text_hash TEXT NOT NULL, vector BLOB NOT NULL
        )
        """
    )
    key = "tenant, model, text_hash"
    while True:
        last = db.execute(f"SELECT {key} FROM embeddings_m002 ORDER BY {key} LIMIT 1 OFFSET ?",
                          (_MIGRATE_CHUNK - 1,)).fetchone()
        where, args = (f"WHERE ({key}) <= (?, ?, ?)", last) if last else ("", ())
        db.execute(f"INSERT INTO embeddings ({key}, vector) SELECT {key}, vector FROM embeddings_m002 {where}"
                   f" ORDER BY {key}", args)
        db.execute(f"DELETE FROM embeddings_m002 {where}", args)
        if last is None:
            break
    _run(
        db,
        """
        DROP TABLE embeddings_m002;
        CREATE UNIQUE INDEX embeddings_key ON embeddings (tenant, model, text_hash)
        """
    )


#: vectors copied per step by m003 (the file grows by about this many vectors' pages at most)
_MIGRATE_CHUNK = 2000


MIGRATIONS = [m001_initial, m002_facts_instructions, m003_embeddings_rowid]
