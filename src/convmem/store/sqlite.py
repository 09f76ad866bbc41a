"""The embedded backend: one SQLite file in WAL mode, append-only numbered migrations.

Writes of one session happen in one transaction (all its turns or none). `secure_delete` is on, so forgotten
text is overwritten in the file, not just unlinked. One connection guarded by a lock serves all threads; other
processes are waited for (busy_timeout) rather than failing. Each migration runs in one transaction: a failed one
leaves the file as it was.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from convmem.errors import InputError, StoreError
from convmem.models import Fact, Instruction, Session, Turn
from convmem.store import derived
from convmem.store.base import (
    Derived, TurnRow, group_by_model, restore_sessions, revision_clock, session_hash, session_summary, text_hash,
)
from convmem.store.sqlite_schema import MIGRATIONS


_SQL = derived.Dialect(ph="?", prefix="", ts=lambda dt: dt.timestamp())


#: WAL pages between automatic checkpoints (SQLite's default is 1000)
_WAL_AUTOCHECKPOINT_PAGES = 10000

#: bound variables per statement: SQLite >= 3.32 allows 32766, older builds 999 (minus tenant and model)
_MAX_VARIABLES = 30000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900


#: how long a statement waits for another process's lock before it fails (busy_timeout)
_BUSY_SECONDS = 30


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _metadata(text: str) -> dict[str, Any]:
    return {} if text == "{}" else json.loads(text)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class SQLiteStore:
    """`Store` on one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]):
        self.location = str(path)
        if self.location != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.location))
            if not os.path.isdir(parent):
                raise InputError(f"cannot create the database {self.location!r}: folder {parent!r} does not exist")
        try:
            self._db = sqlite3.connect(self.location, check_same_thread=False, isolation_level=None,
                                       timeout=_BUSY_SECONDS)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the database {self.location!r}: {exc}") from exc
        self._lock = threading.RLock()
        db = self._db
        try:
            db.execute(f"PRAGMA busy_timeout = {_BUSY_SECONDS * 1000}")
            if self.location != ":memory:":
                self._enter_wal()
            db.execute("PRAGMA synchronous = NORMAL")
            # checkpoint every ~40 MB of WAL instead of every 4 MB: each checkpoint syncs the WAL and the file,
            # about half of a commit's wall time on average. Commits stay atomic and the file never corrupt; on
            # power loss what was committed since the last checkpoint can be lost, as before (docs/reliability.md)
            db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
            db.execute("PRAGMA secure_delete = ON")
            db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.OperationalError as exc:
            db.close()
            if _is_busy(exc):
                raise StoreError(f"{self.location} stayed locked by another process for too long ({exc}); "
                                 "try again") from exc
            raise InputError(f"{self.location!r} is not a convmem SQLite database ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            db.close()
            raise InputError(f"{self.location!r} is not a convmem SQLite database ({exc})") from exc
        except BaseException:
            db.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------------------
    def _enter_wal(self) -> None:
        """Switch a new file to WAL, waiting out other connections that open it at the same moment.

        The switch takes an exclusive lock without calling the busy handler, so when several processes create the
        same file at once all but one get "database is locked" at once, not after busy_timeout. It is retried here
        for as long as busy_timeout would have waited. On a file already in WAL the statement takes no lock.
        """
        deadline = time.monotonic() + _BUSY_SECONDS
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _migrate(self) -> None:
        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        if done and max(done) > len(MIGRATIONS):
            raise StoreError(
                f"{self.location} was written by a newer convmem (schema {max(done)}); upgrade convmem to open it"
            )
        for version, migration in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            try:
                with self._tx() as tx:
                    if tx.execute("SELECT 1 FROM schema_migrations WHERE version=?", (version,)).fetchone():
                        continue  # another process opening the new file applied it while this one waited
                    migration(tx)
                    tx.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (version, migration.__name__, datetime.now(timezone.utc).isoformat()),
                    )
            except sqlite3.DatabaseError as exc:
                if not done:
                    raise  # a new file, or not a convmem database: reported as such by __init__
                raise StoreError(
                    f"upgrading {self.location} to schema {version} ({migration.__name__}) failed and was rolled "
                    f"back, the file is unchanged: {exc}"
                ) from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._busy():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock, self._busy():
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """Another process held the file past busy_timeout (30 s): a StoreError (HTTP 503), not a raw sqlite3 error."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            raise StoreError(f"{self.location} stayed locked by another process for too long ({exc}); "
                             "try again") from exc

    @staticmethod
    def _bump(tx: sqlite3.Connection, tenant: str, user: str) -> None:
        # revisions grow with the clock (microseconds), so a user forgotten and written again never repeats a
        # revision another process may have cached
        tx.execute(
            "INSERT INTO users (tenant, user_id, revision, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tenant, user_id) DO UPDATE SET revision = MAX(revision + 1, excluded.revision)",
            (tenant, user, revision_clock(), datetime.now(timezone.utc).isoformat()),
        )

    @staticmethod
    def _turn_values(tenant: str, user: str, session_id: str, started_ts: float, turn: Turn) -> tuple:
        ts = turn.timestamp.timestamp() if turn.timestamp else started_ts
        return (
            tenant, user, session_id, turn.position, turn.turn_id, turn.speaker, turn.role, turn.text, ts,
            turn.timestamp.isoformat() if turn.timestamp else None,
            json.dumps(turn.metadata, ensure_ascii=False, default=str) if turn.metadata else "{}",
            text_hash(turn.text),
        )

    # -- writes ---------------------------------------------------------------------------------------------
    def add_session(self, tenant: str, session: Session, derived_rows: Derived | None = None) -> str:
        digest = session_hash(session)
        started_ts = session.started_at.timestamp()
        with self._tx() as tx:
            row = tx.execute(
                "SELECT content_hash FROM sessions WHERE tenant=? AND user_id=? AND session_id=?",
                (tenant, session.user, session.session_id),
            ).fetchone()
            if row and row[0] == digest:
                return "unchanged"
            if row:
                tx.execute(
                    "DELETE FROM turns WHERE tenant=? AND user_id=? AND session_id=?",
                    (tenant, session.user, session.session_id),
                )
            tx.execute(
                "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant, session.user, session.session_id, session.started_at.isoformat(), started_ts,
                    json.dumps(session.participants, ensure_ascii=False),
                    json.dumps(session.metadata, ensure_ascii=False, default=str), digest,
                ),
            )
            tx.executemany(
                "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._turn_values(tenant, session.user, session.session_id, started_ts, t) for t in session.turns],
            )
            self._bump(tx, tenant, session.user)
            if row or derived_rows:
                derived.write_derived(tx, _SQL, tenant, session.user, *(derived_rows or ([], [])),
                                      replace_session=session.session_id)
            if row:
                self._drop_orphan_embeddings(tx, tenant)
        return "replaced" if row else "added"

    def add_turns(self, tenant: str, user: str, session_id: str, turns: Sequence[Turn], started_at: datetime) -> int:
        with self._tx() as tx:
            row = tx.execute(
                "SELECT started_ts FROM sessions WHERE tenant=? AND user_id=? AND session_id=?",
                (tenant, user, session_id),
            ).fetchone()
            if row is None:
                started_ts = started_at.timestamp()
                speakers = list(dict.fromkeys(t.speaker for t in turns))
                tx.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, '{}', '')",
                    (tenant, user, session_id, started_at.isoformat(), started_ts, json.dumps(speakers)),
                )
                existing: set[str] = set()
                next_pos = 0
            else:
                started_ts = row[0]
                existing = {
                    r[0]
                    for r in tx.execute(
                        "SELECT turn_id FROM turns WHERE tenant=? AND user_id=? AND session_id=?",
                        (tenant, user, session_id),
                    )
                }
                next_pos = tx.execute(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM turns WHERE tenant=? AND user_id=? AND session_id=?",
                    (tenant, user, session_id),
                ).fetchone()[0]
            new = []
            for turn in turns:
                turn.turn_id = turn.turn_id or f"{session_id}_{next_pos + 1}"
                if turn.turn_id in existing:
                    continue
                turn.position = next_pos
                next_pos += 1
                existing.add(turn.turn_id)
                new.append(self._turn_values(tenant, user, session_id, started_ts, turn))
            tx.executemany("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new)
            # the session's content changed: a later add_session of the same id must not count as unchanged
            tx.execute(
                "UPDATE sessions SET content_hash = '' WHERE tenant=? AND user_id=? AND session_id=?",
                (tenant, user, session_id),
            )
            if new:
                self._bump(tx, tenant, user)
        return len(new)

    def forget(self, tenant: str, user: str, session_id: str | None = None) -> int:
        where, args = "tenant=? AND user_id=?", [tenant, user]
        if session_id is not None:
            where, args = where + " AND session_id=?", args + [session_id]
        with self._tx() as tx:
            removed = tx.execute(f"DELETE FROM turns WHERE {where}", args).rowcount
            tx.execute(f"DELETE FROM sessions WHERE {where}", args)
            derived.forget_derived(tx, _SQL, tenant, user, session_id)
            if session_id is None:
                tx.execute("DELETE FROM users WHERE tenant=? AND user_id=?", (tenant, user))
            else:
                self._bump(tx, tenant, user)
            self._drop_orphan_embeddings(tx, tenant)
        # secure_delete zeroes the freed pages, but the WAL still holds the pages as they were before: fold it
        # into the file and truncate it, so forgotten text is gone from disk when forget returns
        self.checkpoint()
        return removed

    def add_user(self, tenant: str, user: str) -> bool:
        with self._tx() as tx:
            now = datetime.now(timezone.utc).isoformat()
            return tx.execute("INSERT OR IGNORE INTO users VALUES (?, ?, 0, ?)", (tenant, user, now)).rowcount == 1

    @staticmethod
    def _drop_orphan_embeddings(tx: sqlite3.Connection, tenant: str) -> None:
        tx.execute(
            "DELETE FROM embeddings WHERE tenant=? AND NOT EXISTS"
            " (SELECT 1 FROM turns t WHERE t.tenant = embeddings.tenant AND t.text_hash = embeddings.text_hash)",
            (tenant,),
        )

    # -- reads ----------------------------------------------------------------------------------------------
    def user_turns(self, tenant: str, user: str) -> list[TurnRow]:
        rows = self._read(
            "SELECT t.session_id, t.turn_id, t.position, t.speaker, t.role, t.text, t.ts, s.started_ts,"
            " t.metadata, t.text_hash FROM turns t JOIN sessions s"
            " ON s.tenant = t.tenant AND s.user_id = t.user_id AND s.session_id = t.session_id"
            " WHERE t.tenant=? AND t.user_id=? ORDER BY s.started_ts, t.session_id, t.position",
            (tenant, user),
        )
        starts: dict[float, datetime] = {}  # one datetime per session start, not one per turn
        return [
            TurnRow(r[0], r[1], r[2], r[3], r[4], r[5], _utc(r[6]),
                    starts.get(r[7]) or starts.setdefault(r[7], _utc(r[7])), _metadata(r[8]), r[9])
            for r in rows
        ]

    def revision(self, tenant: str, user: str) -> int:
        rows = self._read("SELECT revision FROM users WHERE tenant=? AND user_id=?", (tenant, user))
        return rows[0][0] if rows else 0

    def sessions(self, tenant: str, user: str, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT s.session_id, s.started_at, s.participants, s.metadata,"
            " (SELECT COUNT(*) FROM turns t WHERE t.tenant=s.tenant AND t.user_id=s.user_id"
            "  AND t.session_id=s.session_id) FROM sessions s WHERE s.tenant=? AND s.user_id=?"
            " ORDER BY s.started_ts, s.session_id LIMIT ? OFFSET ?",
            (tenant, user, limit, offset),
        )
        return [session_summary(r) for r in rows]

    def users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]:
        rows = self._read(
            "SELECT user_id FROM users WHERE tenant=? ORDER BY user_id LIMIT ? OFFSET ?", (tenant, limit, offset)
        )
        return [r[0] for r in rows]

    def stats(self, tenant: str) -> dict[str, Any]:
        users, sessions, turns, vectors = self._read(
            "SELECT (SELECT COUNT(*) FROM users WHERE tenant=:t), (SELECT COUNT(*) FROM sessions WHERE tenant=:t),"
            " (SELECT COUNT(*) FROM turns WHERE tenant=:t), (SELECT COUNT(*) FROM embeddings WHERE tenant=:t)",
            {"t": tenant},
        )[0]
        with self._lock, self._busy():
            extra = derived.derived_counts(self._db, _SQL, tenant)
        out = {"backend": "sqlite", "location": self.location, "tenant": tenant, "users": users,
               "sessions": sessions, "turns": turns, "embeddings": vectors, **extra}
        if self.location != ":memory:" and os.path.exists(self.location):
            out["file_bytes"] = sum(
                os.path.getsize(p) for p in (self.location, self.location + "-wal") if os.path.exists(p)
            )
        return out

    def tenants(self) -> list[str]:
        rows = self._read(
            "SELECT tenant FROM users UNION SELECT tenant FROM sessions UNION SELECT tenant FROM embeddings ORDER BY 1"
        )
        return [r[0] for r in rows]

    def iter_sessions(self, tenant: str, *, user: str | None = None) -> Iterator[Session]:
        users = [user] if user is not None else [r[0] for r in self._read(
            "SELECT DISTINCT user_id FROM sessions WHERE tenant=? ORDER BY user_id", (tenant,)
        )]
        for user in users:
            with self._lock:  # one read transaction: the sessions and their turns from the same snapshot
                self._db.execute("BEGIN")
                try:
                    sessions = self._db.execute(
                        "SELECT session_id, started_at, participants, metadata FROM sessions"
                        " WHERE tenant=? AND user_id=? ORDER BY started_ts, session_id", (tenant, user),
                    ).fetchall()
                    turns = self._db.execute(
                        "SELECT session_id, position, turn_id, speaker, role, text, timestamp, metadata FROM turns"
                        " WHERE tenant=? AND user_id=? ORDER BY session_id, position", (tenant, user),
                    ).fetchall()
                finally:
                    self._db.execute("COMMIT")
            yield from restore_sessions(user, sessions, turns)

    # -- facts and standing instructions (SQL shared with PostgreSQL in store/derived.py) ----------------------
    def put_derived(self, tenant: str, user: str, facts: Sequence[Fact], instructions: Sequence[Instruction], *,
                    replace_session: str | None = None, facts_only: bool = False) -> int:
        with self._tx() as tx:
            if replace_session is not None and not tx.execute(
                    "SELECT 1 FROM sessions WHERE tenant=? AND user_id=? AND session_id=?",
                    (tenant, user, replace_session)).fetchone():
                return 0  # forgotten meanwhile: nothing derived from it may come back
            if facts or replace_session is not None:
                self._bump(tx, tenant, user)  # facts are dense keys of their turns (fact_keys): indexes rebuild
            else:
                tx.execute("INSERT OR IGNORE INTO users VALUES (?, ?, 0, ?)",
                           (tenant, user, datetime.now(timezone.utc).isoformat()))
            return derived.write_derived(tx, _SQL, tenant, user, facts, instructions,
                                         replace_session=replace_session, replace_facts_only=facts_only)

    def facts(self, tenant: str, user: str) -> list[Fact]:
        with self._lock, self._busy():
            return derived.read_facts(self._db, _SQL, tenant, user)

    def instructions(self, tenant: str, user: str) -> list[Instruction]:
        with self._lock, self._busy():
            return derived.read_instructions(self._db, _SQL, tenant, user)

    def remove_instruction(self, tenant: str, user: str, instruction_id: str) -> bool:
        with self._tx() as tx:
            return derived.remove_instruction(tx, _SQL, tenant, user, instruction_id)

    def iter_derived(self, tenant: str) -> Iterator[tuple[str, list[Fact], list[Instruction]]]:
        with self._lock, self._busy():
            users = derived.derived_users(self._db, _SQL, tenant)
        for user in users:
            yield user, self.facts(tenant, user), self.instructions(tenant, user)

    # -- embedding cache ------------------------------------------------------------------------------------
    def get_embeddings(self, tenant: str, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(wanted), _MAX_VARIABLES):
            chunk = wanted[i : i + _MAX_VARIABLES]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT text_hash, vector FROM embeddings WHERE tenant=? AND model=? AND text_hash IN ({marks})",
                [tenant, model, *chunk],
            )
            by_size: dict[int, list[tuple[str, bytes]]] = {}
            for h, blob in rows:
                by_size.setdefault(len(blob), []).append((h, blob))
            for size, group in by_size.items():  # decode all vectors of one dimension in one call
                matrix = np.frombuffer(b"".join(b for _, b in group), dtype=np.float32).reshape(len(group), -1)
                out.update(zip([h for h, _ in group], matrix))
        return out

    def put_embeddings(self, tenant: str, model: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        with self._tx() as tx:
            tx.executemany(
                "INSERT OR IGNORE INTO embeddings (tenant, model, text_hash, vector) VALUES (?, ?, ?, ?)",
                [(tenant, model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()],
            )

    def iter_embeddings(self, tenant: str, *, batch: int = 1000) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        after = ("", "")
        while True:
            rows = self._read(
                "SELECT model, text_hash, vector FROM embeddings WHERE tenant=? AND (model, text_hash) > (?, ?)"
                " ORDER BY model, text_hash LIMIT ?",
                (tenant, *after, batch),
            )
            if not rows:
                return
            yield from group_by_model([(m, h, np.frombuffer(blob, dtype=np.float32)) for m, h, blob in rows])
            after = (rows[-1][0], rows[-1][1])

    def checkpoint(self) -> bool:
        """Fold the WAL into the main file and truncate it (run by `forget`). False when another connection's
        open read transaction kept the WAL from being truncated (a later checkpoint finishes the job)."""
        with self._lock:
            row = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not row or row[0] == 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
