"""The server backend: PostgreSQL (>= 15) with pgvector, for many app servers and many tenants.

Same contract and behaviour as `SQLiteStore` (same outcomes, orderings, revisions, stats keys); the differences
are where the data lives and how it is fenced:

- Tables live in the schema `convmem`; every primary key and index leads with the tenant (then the user), so the
  tables can be distributed by tenant (Citus) without changing a key. Id columns use the "C" collation, so ids
  sort byte-wise exactly as in SQLite.
- Row-level security is a second fence behind the `WHERE tenant = ...` of every query: each transaction runs
  `SET LOCAL convmem.tenant = '<tenant>'` and the policy hides every other tenant's rows. The policy is FORCEd,
  so it holds for the table owner too (superusers and BYPASSRLS roles still bypass it). See docs/postgres.md.
- One connection per thread (no pool dependency), closed when its thread ends; every write, and every session, is
  one transaction. A broken connection is replaced on the next call.
- Embeddings are a pgvector `vector` column of undeclared dimension, read and written in binary.

The schema (numbered migrations, the row-level-security policy, the version check) and the binary I/O of the
`vector` column are in `convmem.store.postgres_schema`; this module holds the connections and the queries.

`psycopg` is imported lazily: without it, opening a `postgresql://` URL says which extra to install.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from convmem.errors import InputError, StoreError, require
from convmem.models import Fact, Instruction, Session, Turn
from convmem.store import derived
from convmem.store.base import (
    Derived, TurnRow, group_by_model, restore_sessions, revision_clock, session_hash, session_summary, text_hash,
)
from convmem.store.postgres_schema import Vector, migrate, register_vector, vector_oid

T = TypeVar("T")

_SQL = derived.Dialect(ph="%s", prefix="convmem.", ts=lambda dt: dt)

_TURN_COLUMNS = (
    "tenant, user_id, session_id, position, turn_id, speaker, role, text, ts, ts_iso, metadata, text_hash"
)


def redact(url: str) -> str:
    """The URL without its password (for messages and `stats()['location']`)."""
    url = re.sub(r"^(\w+://[^:/@?]*):[^@/?]*@", r"\1:***@", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


class _ThreadConnection:
    """Holds one thread's connection; when the thread ends, its thread-local dies and the connection is closed."""

    __slots__ = ("conn", "__weakref__")

    def __init__(self, conn: Any):
        self.conn = conn
        weakref.finalize(self, conn.close)


class PostgresStore:
    """`Store` on a PostgreSQL database with pgvector. `url`: `postgresql://user:password@host:port/dbname`."""

    def __init__(self, url: str, *, connect_timeout: int = 10):
        self._pg = require("psycopg", "postgres", "PostgreSQL storage")
        self.location = redact(url)
        self._url = url
        self._connect_timeout = connect_timeout
        self._local = threading.local()
        self._connections: weakref.WeakSet = weakref.WeakSet()
        self._closed = self._opened = False
        self._vector_oid: int | None = None
        try:
            params = self._pg.conninfo.conninfo_to_dict(url)
        except self._pg.ProgrammingError as exc:
            raise InputError(f"not a valid PostgreSQL URL {self.location!r}: {exc}") from exc
        self._extra = {k: v for k, v in (("connect_timeout", connect_timeout), ("application_name", "convmem"))
                       if k not in params}
        conn = self._conn()
        try:
            migrate(self._pg, conn, self.location)
            self._vector_oid = vector_oid(conn)
        except BaseException:
            self.close()
            raise
        register_vector(conn, self._vector_oid)
        self._opened = True

    # -- connections ----------------------------------------------------------------------------------------
    def _connect(self) -> Any:
        pg = self._pg
        try:
            conn = pg.connect(self._url, autocommit=True, **self._extra)
        except pg.OperationalError as exc:
            reason = str(exc).strip().replace("\n", " ")
            if self._opened:  # it worked before: the server went away
                raise StoreError(f"lost PostgreSQL at {self.location} and cannot reconnect: {reason}") from exc
            raise InputError(
                f"cannot connect to PostgreSQL at {self.location}: {reason} (check host, port, user, password and "
                "database name, and that the server is running)"
            ) from exc
        except pg.ProgrammingError as exc:
            raise InputError(f"not a valid PostgreSQL URL {self.location!r}: {exc}") from exc
        conn.execute("SET TIME ZONE 'UTC'")
        if self._vector_oid is not None:
            register_vector(conn, self._vector_oid)
        return conn

    def _conn(self) -> Any:
        """This thread's connection, opened (or reopened after a failure) on demand."""
        if self._closed:
            raise StoreError(f"the store {self.location} is closed")
        held = getattr(self._local, "held", None)
        if held is None or held.conn.closed or held.conn.broken:
            held = _ThreadConnection(self._connect())
            self._local.held = held
            self._connections.add(held.conn)
        return held.conn

    @contextmanager
    def _tx(self, tenant: str | None, *, binary: bool = False) -> Iterator[Any]:
        """One transaction fenced to `tenant` (None: every tenant, for listing and export)."""
        pg = self._pg
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor(binary=binary) as cur:
                if tenant is None:
                    cur.execute("SET LOCAL convmem.all_tenants = 'on'")
                else:
                    cur.execute(pg.sql.SQL("SET LOCAL convmem.tenant = {}").format(pg.sql.Literal(tenant)))
                yield cur
        except pg.DataError as exc:
            raise InputError(f"PostgreSQL cannot store this data: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise InputError(f"text is not valid Unicode and cannot be stored: {exc}") from exc
        except (pg.errors.UniqueViolation, pg.errors.DeadlockDetected, pg.errors.SerializationFailure):
            raise  # retried by _write (before OperationalError: deadlocks and serialisation failures are ones)
        except pg.OperationalError as exc:  # the next call reconnects (conn.broken is now set)
            raise StoreError(f"PostgreSQL at {self.location} failed: {exc}") from exc
        except pg.Error as exc:
            raise StoreError(f"PostgreSQL at {self.location} failed: {exc}") from exc

    def _write(self, tenant: str, fn: Callable[[Any], T], attempts: int = 3) -> T:
        """Run `fn(cursor)` in one transaction; retried when a concurrent writer of the same rows won the race."""
        errors = self._pg.errors
        for attempt in range(attempts):
            try:
                with self._tx(tenant) as cur:
                    return fn(cur)
            except (errors.UniqueViolation, errors.DeadlockDetected, errors.SerializationFailure) as exc:
                if attempt == attempts - 1:
                    raise StoreError(f"PostgreSQL at {self.location}: write kept conflicting: {exc}") from exc
        raise AssertionError("unreachable")

    def _read(self, tenant: str | None, sql: str, args: Sequence[Any] = (), *, binary: bool = False) -> list[tuple]:
        with self._tx(tenant, binary=binary) as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    # -- helpers shared by the writes -----------------------------------------------------------------------
    def _bump(self, cur: Any, tenant: str, user: str) -> None:
        cur.execute(
            "INSERT INTO convmem.users (tenant, user_id, revision) VALUES (%s, %s, %s) ON CONFLICT (tenant, user_id)"
            " DO UPDATE SET revision = GREATEST(convmem.users.revision + 1, excluded.revision)",
            (tenant, user, revision_clock()),
        )

    @staticmethod
    def _insert_turns(cur: Any, rows: list[tuple]) -> None:
        # not COPY: PostgreSQL refuses COPY FROM into a table with row-level security for fenced roles
        if rows:
            cur.executemany(f"INSERT INTO convmem.turns ({_TURN_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})", rows)

    @staticmethod
    def _turn_values(tenant: str, user: str, session_id: str, started_at: datetime, turn: Turn) -> tuple:
        return (
            tenant, user, session_id, turn.position, turn.turn_id, turn.speaker, turn.role, turn.text,
            turn.timestamp or started_at, turn.timestamp.isoformat() if turn.timestamp else None,
            json.dumps(turn.metadata, ensure_ascii=False, default=str), text_hash(turn.text),
        )

    @staticmethod
    def _drop_orphan_embeddings(cur: Any, tenant: str) -> None:
        cur.execute(
            "DELETE FROM convmem.embeddings e WHERE e.tenant = %s AND NOT EXISTS"
            " (SELECT 1 FROM convmem.turns t WHERE t.tenant = e.tenant AND t.text_hash = e.text_hash)",
            (tenant,),
        )

    # -- writes ---------------------------------------------------------------------------------------------
    def add_session(self, tenant: str, session: Session, derived_rows: Derived | None = None) -> str:
        digest = session_hash(session)
        key = (tenant, session.user, session.session_id)

        def write(cur: Any) -> str:
            cur.execute(
                "SELECT content_hash FROM convmem.sessions WHERE tenant=%s AND user_id=%s AND session_id=%s"
                " FOR UPDATE", key,
            )
            row = cur.fetchone()
            if row and row[0] == digest:
                return "unchanged"
            values = (session.started_at, session.started_at.isoformat(),
                      json.dumps(session.participants, ensure_ascii=False),
                      json.dumps(session.metadata, ensure_ascii=False, default=str), digest)
            if row:
                cur.execute("DELETE FROM convmem.turns WHERE tenant=%s AND user_id=%s AND session_id=%s", key)
                cur.execute(
                    "UPDATE convmem.sessions SET started_at=%s, started_iso=%s, participants=%s, metadata=%s,"
                    " content_hash=%s WHERE tenant=%s AND user_id=%s AND session_id=%s", (*values, *key),
                )
            else:  # a concurrent writer of the same new session makes this fail; _write retries
                cur.execute("INSERT INTO convmem.sessions VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", (*key, *values))
            self._insert_turns(
                cur, [self._turn_values(*key, session.started_at, t) for t in session.turns]
            )
            self._bump(cur, tenant, session.user)
            if row or derived_rows:
                derived.write_derived(cur, _SQL, tenant, session.user, *(derived_rows or ([], [])),
                                      replace_session=session.session_id)
            if row:
                self._drop_orphan_embeddings(cur, tenant)
            return "replaced" if row else "added"

        return self._write(tenant, write)

    def add_turns(self, tenant: str, user: str, session_id: str, turns: Sequence[Turn], started_at: datetime) -> int:
        key = (tenant, user, session_id)

        def write(cur: Any) -> int:
            cur.execute(
                "SELECT started_at FROM convmem.sessions WHERE tenant=%s AND user_id=%s AND session_id=%s"
                " FOR UPDATE", key,
            )
            row = cur.fetchone()
            if row is None:
                start = started_at
                speakers = list(dict.fromkeys(t.speaker for t in turns))
                cur.execute(
                    "INSERT INTO convmem.sessions VALUES (%s, %s, %s, %s, %s, %s, '{}', '')",
                    (*key, started_at, started_at.isoformat(), json.dumps(speakers)),
                )
                existing: set[str] = set()
                next_pos = 0
            else:
                start = row[0]
                cur.execute(
                    "SELECT turn_id FROM convmem.turns WHERE tenant=%s AND user_id=%s AND session_id=%s", key
                )
                existing = {r[0] for r in cur.fetchall()}
                cur.execute(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM convmem.turns"
                    " WHERE tenant=%s AND user_id=%s AND session_id=%s", key,
                )
                next_pos = cur.fetchone()[0]
            new = []
            for turn in turns:
                turn.turn_id = turn.turn_id or f"{session_id}_{next_pos + 1}"
                if turn.turn_id in existing:
                    continue
                turn.position = next_pos
                next_pos += 1
                existing.add(turn.turn_id)
                new.append(self._turn_values(*key, start, turn))
            self._insert_turns(cur, new)
            # the session's content changed: a later add_session of the same id must not count as unchanged
            cur.execute(
                "UPDATE convmem.sessions SET content_hash = '' WHERE tenant=%s AND user_id=%s AND session_id=%s", key
            )
            if new:
                self._bump(cur, tenant, user)
            return len(new)

        return self._write(tenant, write)

    def add_user(self, tenant: str, user: str) -> bool:
        def write(cur: Any) -> bool:
            cur.execute(
                "INSERT INTO convmem.users (tenant, user_id, revision) VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
                (tenant, user),
            )
            return cur.rowcount == 1

        return self._write(tenant, write)

    def forget(self, tenant: str, user: str, session_id: str | None = None) -> int:
        where, args = "tenant=%s AND user_id=%s", [tenant, user]
        if session_id is not None:
            where, args = where + " AND session_id=%s", args + [session_id]

        def write(cur: Any) -> int:
            cur.execute(f"DELETE FROM convmem.turns WHERE {where}", args)
            removed = cur.rowcount
            cur.execute(f"DELETE FROM convmem.sessions WHERE {where}", args)
            derived.forget_derived(cur, _SQL, tenant, user, session_id)
            if session_id is None:
                cur.execute("DELETE FROM convmem.users WHERE tenant=%s AND user_id=%s", (tenant, user))
            else:
                self._bump(cur, tenant, user)
            self._drop_orphan_embeddings(cur, tenant)
            return removed

        return self._write(tenant, write)

    # -- reads ----------------------------------------------------------------------------------------------
    def user_turns(self, tenant: str, user: str) -> list[TurnRow]:
        rows = self._read(
            tenant,
            "SELECT t.session_id, t.turn_id, t.position, t.speaker, t.role, t.text, t.ts, s.started_at,"
            " t.metadata, t.text_hash FROM convmem.turns t JOIN convmem.sessions s"
            " ON s.tenant = t.tenant AND s.user_id = t.user_id AND s.session_id = t.session_id"
            " WHERE t.tenant=%s AND t.user_id=%s AND s.tenant=%s AND s.user_id=%s"
            " ORDER BY s.started_at, t.session_id, t.position",
            (tenant, user, tenant, user),
        )
        return [TurnRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], {} if r[8] == "{}" else json.loads(r[8]), r[9])
                for r in rows]

    def revision(self, tenant: str, user: str) -> int:
        rows = self._read(tenant, "SELECT revision FROM convmem.users WHERE tenant=%s AND user_id=%s", (tenant, user))
        return rows[0][0] if rows else 0

    def sessions(self, tenant: str, user: str, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._read(
            tenant,
            "SELECT s.session_id, s.started_iso, s.participants, s.metadata,"
            " (SELECT COUNT(*) FROM convmem.turns t WHERE t.tenant = s.tenant AND t.user_id = s.user_id"
            "  AND t.session_id = s.session_id) FROM convmem.sessions s WHERE s.tenant=%s AND s.user_id=%s"
            " ORDER BY s.started_at, s.session_id LIMIT %s OFFSET %s",
            (tenant, user, limit, offset),
        )
        return [session_summary(r) for r in rows]

    def users(self, tenant: str, *, limit: int = 1000, offset: int = 0) -> list[str]:
        rows = self._read(
            tenant, "SELECT user_id FROM convmem.users WHERE tenant=%s ORDER BY user_id LIMIT %s OFFSET %s",
            (tenant, limit, offset),
        )
        return [r[0] for r in rows]

    def stats(self, tenant: str) -> dict[str, Any]:
        users, sessions, turns, vectors, table_bytes = self._read(
            tenant,
            "SELECT (SELECT COUNT(*) FROM convmem.users WHERE tenant=%(t)s),"
            " (SELECT COUNT(*) FROM convmem.sessions WHERE tenant=%(t)s),"
            " (SELECT COUNT(*) FROM convmem.turns WHERE tenant=%(t)s),"
            " (SELECT COUNT(*) FROM convmem.embeddings WHERE tenant=%(t)s),"
            " (SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c"
            "  WHERE c.relnamespace = 'convmem'::regnamespace AND c.relkind = 'r')::bigint",
            {"t": tenant},
        )[0]
        with self._tx(tenant) as cur:
            extra = derived.derived_counts(cur, _SQL, tenant)
        return {"backend": "postgres", "location": self.location, "tenant": tenant, "users": users,
                "sessions": sessions, "turns": turns, "embeddings": vectors, **extra, "table_bytes": table_bytes}

    def tenants(self) -> list[str]:
        rows = self._read(
            None,
            "SELECT tenant FROM convmem.users UNION SELECT tenant FROM convmem.sessions"
            " UNION SELECT tenant FROM convmem.embeddings ORDER BY 1",
        )
        return [r[0] for r in rows]

    def iter_sessions(self, tenant: str, *, user: str | None = None) -> Iterator[Session]:
        users = [user] if user is not None else [r[0] for r in self._read(
            tenant, "SELECT DISTINCT user_id FROM convmem.sessions WHERE tenant=%s ORDER BY user_id", (tenant,)
        )]
        for user in users:
            with self._tx(tenant) as cur:
                cur.execute(
                    "SELECT session_id, started_iso, participants, metadata FROM convmem.sessions"
                    " WHERE tenant=%s AND user_id=%s ORDER BY started_at, session_id", (tenant, user),
                )
                sessions = cur.fetchall()
                cur.execute(
                    "SELECT session_id, position, turn_id, speaker, role, text, ts_iso, metadata FROM convmem.turns"
                    " WHERE tenant=%s AND user_id=%s ORDER BY session_id, position", (tenant, user),
                )
                turns = cur.fetchall()
            yield from restore_sessions(user, sessions, turns)

    # -- facts and standing instructions (SQL shared with SQLite in store/derived.py) ------------------------
    def put_derived(self, tenant: str, user: str, facts: Sequence[Fact], instructions: Sequence[Instruction], *,
                    replace_session: str | None = None, facts_only: bool = False) -> int:
        def write(cur: Any) -> int:
            if replace_session is not None:
                cur.execute("SELECT 1 FROM convmem.sessions WHERE tenant=%s AND user_id=%s AND session_id=%s"
                            " FOR UPDATE", (tenant, user, replace_session))
                if cur.fetchone() is None:
                    return 0  # forgotten meanwhile: nothing derived from it may come back
            if facts or replace_session is not None:
                self._bump(cur, tenant, user)  # facts are dense keys of their turns (fact_keys): indexes rebuild
            else:
                cur.execute("INSERT INTO convmem.users (tenant, user_id, revision) VALUES (%s, %s, 0)"
                            " ON CONFLICT DO NOTHING", (tenant, user))
            return derived.write_derived(cur, _SQL, tenant, user, facts, instructions,
                                         replace_session=replace_session, replace_facts_only=facts_only)

        return self._write(tenant, write)

    def facts(self, tenant: str, user: str) -> list[Fact]:
        with self._tx(tenant) as cur:
            return derived.read_facts(cur, _SQL, tenant, user)

    def instructions(self, tenant: str, user: str) -> list[Instruction]:
        with self._tx(tenant) as cur:
            return derived.read_instructions(cur, _SQL, tenant, user)

    def remove_instruction(self, tenant: str, user: str, instruction_id: str) -> bool:
        return self._write(tenant, lambda cur: derived.remove_instruction(cur, _SQL, tenant, user, instruction_id))

    def iter_derived(self, tenant: str) -> Iterator[tuple[str, list[Fact], list[Instruction]]]:
        with self._tx(tenant) as cur:
            users = derived.derived_users(cur, _SQL, tenant)
        for user in users:
            with self._tx(tenant) as cur:  # one snapshot per user
                facts = derived.read_facts(cur, _SQL, tenant, user)
                instructions = derived.read_instructions(cur, _SQL, tenant, user)
            yield user, facts, instructions

    # -- embedding cache ------------------------------------------------------------------------------------
    def get_embeddings(self, tenant: str, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(hashes))
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(wanted), 5000):
            rows = self._read(
                tenant,
                "SELECT text_hash, vector FROM convmem.embeddings"
                " WHERE tenant=%s AND model=%s AND text_hash = ANY(%s)",
                (tenant, model, wanted[i : i + 5000]), binary=True,
            )
            out.update(rows)
        return out

    def put_embeddings(self, tenant: str, model: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return

        def write(cur: Any) -> None:
            cur.executemany(
                "INSERT INTO convmem.embeddings (tenant, model, text_hash, vector) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                # in hash order, so concurrent writers of overlapping texts lock rows in one order (no deadlock)
                [(tenant, model, h, Vector(vectors[h])) for h in sorted(vectors)],
            )

        self._write(tenant, write)

    def iter_embeddings(self, tenant: str, *, batch: int = 1000) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        after = ("", "")
        while True:
            rows = self._read(
                tenant,
                "SELECT model, text_hash, vector FROM convmem.embeddings"
                " WHERE tenant=%s AND (model, text_hash) > (%s, %s) ORDER BY model, text_hash LIMIT %s",
                (tenant, *after, batch), binary=True,
            )
            if not rows:
                return
            yield from group_by_model(rows)
            after = (rows[-1][0], rows[-1][1])

    def close(self) -> None:
        self._closed = True
        for conn in list(self._connections):
            conn.close()
        self._local = threading.local()

