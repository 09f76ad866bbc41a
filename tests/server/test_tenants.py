"""API keys and tenants: keys from the CLI, 401 without a valid key, and tenant A never sees tenant B."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from convmem.cli.serve import keys as keys_cli
from convmem.cli.serve import serve as serve_cli
from convmem.errors import ConfigError
from convmem.keys import KeyStore, hash_key
from convmem.server import check_bind, create_app
from server_helpers import SESSION_A, SESSION_B


def create_key(db: str, tenant: str, label: str = "") -> str:
    result = CliRunner().invoke(keys_cli, ["create", "--tenant", tenant, "--label", label, "--db", db])
    assert result.exit_code == 0, result.output
    return result.output.split()[-1]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(memory, db_path):
    """A server with keys for tenants A and B, each with a session of a user called "ana"."""
    key_a, key_b = create_key(db_path, "A", "app a"), create_key(db_path, "B")
    keys = KeyStore(db_path)
    with TestClient(create_app(memory, keys=keys)) as client:
        assert client.post("/v1/sessions", json=SESSION_A, headers=auth(key_a)).status_code == 200
        assert client.post("/v1/sessions", json=SESSION_B, headers=auth(key_b)).status_code == 200
        yield client, key_a, key_b
    keys.close()


def test_keys_cli_create_list_revoke(db_path):
    key = create_key(db_path, "acme", "backend")
    assert key.startswith("cm_") and len(key) > 40
    runner = CliRunner()
    listed = json.loads(runner.invoke(keys_cli, ["list", "--json", "--db", db_path]).output)
    assert [(k["tenant"], k["label"], k["active"]) for k in listed] == [("acme", "backend", True)]
    assert listed[0]["key_id"] == hash_key(key)[:12]
    with KeyStore(db_path) as store:  # only the hash is stored
        stored = store._execute("SELECT key_hash FROM convmem_api_keys")
        assert stored == [(hash_key(key),)] and key not in str(stored)
        assert store.tenant_for(key) == "acme"

    result = runner.invoke(keys_cli, ["revoke", listed[0]["key_id"], "--db", db_path])
    assert result.exit_code == 0 and "revoked" in result.output
    assert "revoked" in runner.invoke(keys_cli, ["list", "--db", db_path]).output
    with KeyStore(db_path) as store:
        assert store.tenant_for(key) is None and store.configured()

    for bad in (["revoke", "ffffffffffff", "--db", db_path], ["revoke", "not-a-key", "--db", db_path],
                ["create", "--tenant", "", "--db", db_path]):
        result = runner.invoke(keys_cli, bad)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_missing_unknown_and_revoked_keys_are_401(keyed, db_path):
    client, key_a, _ = keyed
    for headers, code in [({}, "unauthorized"), (auth("cm_" + "x" * 43), "invalid_api_key"),
                          ({"Authorization": "Basic abc"}, "unauthorized"), (auth("garbage"), "invalid_api_key")]:
        r = client.post("/v1/search", json={"user": "ana", "query": "x"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/v1/stats", headers=auth(key_a)).status_code == 200
    with KeyStore(db_path) as store:
        store.revoke(key_a)
    r = client.get("/v1/stats", headers=auth(key_a))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/healthz").json()["auth"] == "api_keys"  # health needs no key


def test_tenant_a_never_sees_tenant_b(keyed):
    client, key_a, key_b = keyed
    a, b = auth(key_a), auth(key_b)

    def texts(hits):
        return " ".join(h["text"] for h in hits)

    hits_a = client.post("/v1/search", json={"user": "ana", "query": "beagle dog Biscuit wedding", "k": 10},
                         headers=a).json()["hits"]
    hits_b = client.post("/v1/search", json={"user": "ana", "query": "beagle dog Biscuit wedding", "k": 10},
                         headers=b).json()["hits"]
    assert "Sintra" in texts(hits_a) and "Biscuit" not in texts(hits_a)
    assert "Biscuit" in texts(hits_b) and "Sintra" not in texts(hits_b)

    ctx_a = client.post("/v1/context", json={"user": "ana", "query": "what is my dog called?"}, headers=a).json()
    assert "Biscuit" not in ctx_a["text"] and "beagle" not in ctx_a["text"]
    ctx_b = client.post("/v1/context", json={"user": "ana", "query": "when is the wedding?"}, headers=b).json()
    assert "Sintra" not in ctx_b["text"]

    sessions_a = client.get("/v1/users/ana/sessions", headers=a).json()["sessions"]
    assert [s["started_at"][:10] for s in sessions_a] == ["2024-03-01"]
    stats_a, stats_b = client.get("/v1/stats", headers=a).json(), client.get("/v1/stats", headers=b).json()
    assert (stats_a["tenant"], stats_a["turns"]) == ("A", 2) and (stats_b["tenant"], stats_b["turns"]) == ("B", 2)

    # B stores a user A does not have: A cannot see, list or delete it
    other = {**SESSION_B, "user": "bo"}
    assert client.post("/v1/sessions", json=other, headers=b).status_code == 200
    assert client.get("/v1/users", headers=a).json()["users"] == ["ana"]
    assert client.get("/v1/users/bo/sessions", headers=a).json()["sessions"] == []
    assert client.post("/v1/search", json={"user": "bo", "query": "beagle"}, headers=a).json()["hits"] == []
    assert client.delete("/v1/users/bo", headers=a).status_code == 404
    assert client.delete("/v1/users/bo/sessions/s1", headers=a).status_code == 404

    # A deletes its "ana": B's "ana" is untouched
    assert client.delete("/v1/users/ana", headers=a).json()["removed_turns"] == 2
    assert client.get("/v1/stats", headers=a).json()["turns"] == 0
    assert client.get("/v1/stats", headers=b).json()["turns"] == 4
    still = client.post("/v1/search", json={"user": "ana", "query": "beagle"}, headers=b).json()["hits"]
    assert "Biscuit" in texts(still)

    # the same session id in an import lands in the caller's tenant only
    r = client.post("/v1/import", json={"format": "convmem", "data": [SESSION_A]}, headers=a)
    assert r.json()["sessions_added"] == 1
    assert client.get("/v1/stats", headers=b).json()["turns"] == 4


def test_without_keys_single_tenant_and_loopback_only(client, db_path):
    r = client.post("/v1/sessions", json=SESSION_A, headers=auth("cm_whatever"))  # ignored without keys
    assert r.status_code == 200
    assert client.get("/v1/stats").json()["tenant"] == "default"
    assert client.get("/healthz").json()["auth"].startswith("none")

    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, keyed=False)
    for host in ("0.0.0.0", "::", "192.168.1.10"):
        with pytest.raises(ConfigError, match="loopback|127.0.0.1"):
            check_bind(host, keyed=False)
        check_bind(host, keyed=True)

    result = CliRunner().invoke(serve_cli, ["--host", "0.0.0.0", "--db", db_path])
    assert result.exit_code == 2 and "keys create" in result.output and "Traceback" not in result.output
    create_key(db_path, "A")
    # with a key the server requires it, even for a client that was fine a moment ago
    assert client.get("/v1/stats").status_code == 401


def test_serving_commands_have_help_and_docs():
    from pathlib import Path

    import click

    from convmem.cli.serve import mcp, serve

    docs = (Path(__file__).parents[2] / "docs" / "server.md").read_text()
    commands = {"serve": serve, "mcp": mcp, "keys": keys_cli}
    commands.update({f"keys {n}": c for n, c in keys_cli.commands.items()})
    for name, command in commands.items():
        assert command.help, f"convmem {name} is missing its help"
        assert f"convmem {name}" in docs, f"docs/server.md does not show convmem {name}"
        if not isinstance(command, click.Group):
            assert CliRunner().invoke(command, ["--help"]).exit_code == 0
