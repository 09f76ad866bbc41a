"""The key store on each backend: hashed keys, tenant lookup, revocation; SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from convmem.errors import InputError, NotFound
from convmem.keys import KeyStore, hash_key


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def key_location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "keys.db")
    psycopg = pytest.importorskip("psycopg")
    server = request.getfixturevalue("pg_server_url")
    name = "k_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    head, sep, query = server.partition("?")
    return f"{head.rpartition('/')[0]}/{name}{sep}{query}"


def test_key_store_contract(key_location):
    with KeyStore(key_location) as keys:
        assert not keys.configured() and keys.list() == []
        key_a, info_a = keys.create("A", label="web")
        key_b, _ = keys.create("B")
        assert key_a != key_b and key_a.startswith("cm_") and info_a.key_id == hash_key(key_a)[:12]
        assert keys.configured()
        assert (keys.tenant_for(key_a), keys.tenant_for(key_b)) == ("A", "B")
        assert keys.tenant_for("cm_unknown") is None and keys.tenant_for("") is None
        assert [k.tenant for k in keys.list(tenant="A")] == ["A"]
        assert keys.revoke(info_a.key_id).revoked_at is not None
        assert keys.revoke(key_a).revoked_at is not None  # twice is harmless; by the key itself works too
        assert keys.tenant_for(key_a) is None and keys.tenant_for(key_b) == "B"
        assert [k.tenant for k in keys.list(include_revoked=False)] == ["B"]
        with pytest.raises(NotFound):
            keys.revoke("abcdef123456")
        with pytest.raises(InputError):
            keys.revoke("xyz")
        with pytest.raises(InputError):
            keys.create("")
    with KeyStore(key_location) as again:  # persisted
        assert again.tenant_for(key_b) == "B" and len(again.list()) == 2
