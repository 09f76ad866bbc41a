"""The PostgreSQL schema `convmem`: append-only numbered migrations, the schema-version check, and the binary
wire format of the pgvector `vector` column.

`migrate` runs when a `PostgresStore` opens a database: all pending migrations in one transaction (a failed one
leaves the database as it was), recorded in `convmem.schema_migrations`, under an advisory lock so that two
processes opening a fresh database do not race. An up-to-date schema is only read (no DDL, no privilege needed).
A database written by a newer convmem is refused.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from convmem.errors import ConfigError, StoreError

#: the advisory lock taken while migrating, so two processes opening a fresh database do not race
_MIGRATION_LOCK = 0x636F6E766D656D  # "convmem"

_FENCE = (
    "tenant = current_setting('convmem.tenant', true)"
    " OR current_setting('convmem.all_tenants', true) = 'on'"
)


def m001_initial(cur: Any) -> None:
    """Tables keyed by (tenant, user_id, ...); ids in the "C" collation so they sort byte-wise like SQLite."""
    cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    for statement in (
        """CREATE TABLE convmem.users (
            tenant text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
            revision bigint NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant, user_id))""",
        """CREATE TABLE convmem.sessions (
            tenant text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
            session_id text COLLATE "C" NOT NULL,
            started_at timestamptz NOT NULL, started_iso text NOT NULL,
            participants text NOT NULL, metadata text NOT NULL, content_hash text NOT NULL,
            PRIMARY KEY (tenant, user_id, session_id))""",
        "CREATE INDEX sessions_by_start ON convmem.sessions (tenant, user_id, started_at, session_id)",
        """CREATE TABLE convmem.turns (
            tenant text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
            session_id text COLLATE "C" NOT NULL, position integer NOT NULL,
            turn_id text COLLATE "C" NOT NULL, speaker text NOT NULL, role text NOT NULL, text text NOT NULL,
            ts timestamptz NOT NULL, ts_iso text, metadata text NOT NULL, text_hash text COLLATE "C" NOT NULL,
            PRIMARY KEY (tenant, user_id, session_id, position),
            UNIQUE (tenant, user_id, session_id, turn_id))""",
        "CREATE INDEX turns_by_hash ON convmem.turns (tenant, text_hash)",
        """CREATE TABLE convmem.embeddings (
            tenant text COLLATE "C" NOT NULL, model text COLLATE "C" NOT NULL,
            text_hash text COLLATE "C" NOT NULL, vector vector NOT NULL,
            PRIMARY KEY (tenant, model, text_hash))""",
    ):
        cur.execute(statement)


def m002_tenant_fence(cur: Any) -> None:
    """Row-level security on every table, FORCEd so that the owner role is fenced too."""
    for table in ("users", "sessions", "turns", "embeddings"):
        cur.execute(f"ALTER TABLE convmem.{table} ENABLE ROW LEVEL SECURITY")
        cur.execute(f"ALTER TABLE convmem.{table} FORCE ROW LEVEL SECURITY")
        cur.execute(f"CREATE POLICY tenant_fence ON convmem.{table} USING ({_FENCE}) WITH CHECK ({_FENCE})")


def m003_facts_instructions(cur: Any) -> None:
    """Fact statements and standing instructions (issue 9), keyed and fenced like the other tables."""
    for statement in (
        """CREATE TABLE convmem.facts (
            tenant text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
            session_id text COLLATE "C" NOT NULL, turn_id text COLLATE "C" NOT NULL, seq integer NOT NULL,
            position integer NOT NULL, subject text NOT NULL, attribute text NOT NULL, value text NOT NULL,
            valid_from text NOT NULL, valid_ts timestamptz NOT NULL, extractor text NOT NULL, evidence text NOT NULL,
            PRIMARY KEY (tenant, user_id, session_id, turn_id, seq))""",
        """CREATE TABLE convmem.instructions (
            tenant text COLLATE "C" NOT NULL, user_id text COLLATE "C" NOT NULL,
            instruction_id text COLLATE "C" NOT NULL, text text NOT NULL, kind text NOT NULL,
            always_on integer NOT NULL, source text NOT NULL, session_id text COLLATE "C", turn_id text COLLATE "C",
            created_at text NOT NULL, created_ts timestamptz NOT NULL,
            PRIMARY KEY (tenant, user_id, instruction_id))""",
        "CREATE INDEX instructions_by_session ON convmem.instructions (tenant, user_id, session_id)",
    ):
        cur.execute(statement)
    for table in ("facts", "instructions"):
        cur.execute(f"ALTER TABLE convmem.{table} ENABLE ROW LEVEL SECURITY")
        cur.execute(f"ALTER TABLE convmem.{table} FORCE ROW LEVEL SECURITY")
        cur.execute(f"CREATE POLICY tenant_fence ON convmem.{table} USING ({_FENCE}) WITH CHECK ({_FENCE})")


MIGRATIONS = [m001_initial, m002_tenant_fence, m003_facts_instructions]

def migrate(pg: Any, conn: Any, location: str) -> None:
    """Bring the schema up to date on `conn` (autocommit); `pg` is the psycopg module, `location` the redacted URL."""
    done = applied(pg, conn, location)
    if done is not None and len(done) >= len(MIGRATIONS):
        check_version(done, location)
        return
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE SCHEMA IF NOT EXISTS convmem")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS convmem.schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM convmem.schema_migrations")}
            check_version(done, location)
            with conn.cursor() as cur:
                for version, migration in enumerate(MIGRATIONS, start=1):
                    if version not in done:
                        migration(cur)
                        cur.execute("INSERT INTO convmem.schema_migrations (version, name) VALUES (%s, %s)",
                                    (version, migration.__name__))
    except (pg.errors.FeatureNotSupported, pg.errors.UndefinedFile, pg.errors.InsufficientPrivilege) as exc:
        if "vector" in str(exc):
            raise ConfigError(
                f"{location}: the pgvector extension is missing or may not be created by this role ({exc})."
                " Install pgvector on the server and run CREATE EXTENSION vector in this database as a superuser."
            ) from exc
        raise ConfigError(f"{location}: cannot create the convmem schema: {exc}") from exc
    except pg.Error as exc:
        raise StoreError(f"{location}: migrating the convmem schema failed: {exc}") from exc


def applied(pg: Any, conn: Any, location: str) -> set[int] | None:
    """Versions already applied, or None when the schema does not exist yet (a read, no DDL, no privilege)."""
    try:
        if conn.execute("SELECT to_regclass('convmem.schema_migrations')").fetchone()[0] is None:
            return None
        return {r[0] for r in conn.execute("SELECT version FROM convmem.schema_migrations")}
    except pg.Error as exc:
        raise StoreError(f"{location}: cannot read the schema version: {exc}") from exc


def check_version(done: set[int], location: str) -> None:
    if done and max(done) > len(MIGRATIONS):
        raise StoreError(
            f"{location} was written by a newer convmem (schema {max(done)}); upgrade convmem to open it"
        )


def vector_oid(conn: Any) -> int:
    """The OID of pgvector's `vector` type in this database (an extension's types have no fixed OID)."""
    return conn.execute(
        "SELECT atttypid::int FROM pg_attribute"
        " WHERE attrelid = 'convmem.embeddings'::regclass AND attname = 'vector'"
    ).fetchone()[0]


class Vector:
    """A float32 vector on its way to a pgvector column (wrapped, so no other ndarray parameter is affected)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)


@functools.lru_cache(maxsize=None)
def _vector_adapters(oid: int) -> tuple[type, type]:
    """Binary pgvector I/O straight to and from numpy (format: int16 dim, int16 unused, dim big-endian float4)."""
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: Vector) -> bytes:
            a = obj.array
            return len(a).to_bytes(2, "big") + b"\0\0" + a.astype(">f4").tobytes()

    class VectorLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            dim = int.from_bytes(bytes(data[:2]), "big")
            return np.frombuffer(data, dtype=">f4", count=dim, offset=4).astype(np.float32)

    VectorDumper.oid = oid
    return VectorDumper, VectorLoader


def register_vector(conn: Any, oid: int) -> None:
    dumper, loader = _vector_adapters(oid)
    conn.adapters.register_dumper(Vector, dumper)
    conn.adapters.register_loader(oid, loader)
