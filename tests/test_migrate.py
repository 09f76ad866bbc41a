"""`convmem migrate`: copying a whole store between backends, resumably, verified by counts and content hashes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from convmem.cli.migrate import migrate as migrate_command
from convmem.errors import InputError
from convmem.models import Session, Turn
from convmem.store import open_store, text_hash
from convmem.store.migrate import migrate, tenant_digest

T0 = datetime(2024, 5, 8, 10, 0, tzinfo=timezone.utc)


def postgres_only(fn):
    return pytest.mark.postgres(pytest.mark.parametrize("store_location", ["postgres"], indirect=True)(fn))


def session(user: str, sid: str, texts: list[str], *, days: int = 0, **kwargs) -> Session:
    turns = [Turn(speaker=("Ana", "Bot")[i % 2], role=("user", "assistant")[i % 2], text=t)
             for i, t in enumerate(texts)]
    return Session(user=user, session_id=sid, started_at=T0 + timedelta(days=days), turns=turns, **kwargs)


def fill(location: str, sessions_per_user: int = 3) -> None:
    """Every kind of row a store holds, in two tenants plus a tenant with vectors only."""
    store = open_store(location)
    offset = timezone(timedelta(hours=-7))
    for tenant in ("acme", "globex"):
        for u in range(3):
            for i in range(sessions_per_user):
                store.add_session(tenant, session(f"user{u}", f"s{i}", [f"{tenant} {u} {i} a", "shared reply"],
                                                  days=i, metadata={"n": i}))
        store.add_session(tenant, Session(
            user="user0", session_id="stamped", started_at=datetime(2024, 1, 1, 9, tzinfo=offset),
            participants=["Ana", "Bot", "Cy"], turns=[
                Turn(speaker="Ana", text="ünïcode ✓", timestamp=datetime(2024, 1, 1, 9, 5, tzinfo=offset),
                     metadata={"tags": ["a", "b"]}),
                Turn(speaker="Cy", role="observer", text="no timestamp")]))
        store.add_turns(tenant, "user1", "live", [Turn(speaker="Ana", text="appended")], T0)
        store.add_turns(tenant, "user1", "opened", [], T0)  # a session without turns
        store.add_session(tenant, session("leaver", "s0", ["gone soon"]))
        store.forget(tenant, "leaver", "s0")  # a user without sessions
        texts = {t.text for s in store.iter_sessions(tenant) for t in s.turns}
        store.put_embeddings(tenant, "minilm", {text_hash(t): np.full(4, len(t), np.float32) for t in texts})
        store.put_embeddings(tenant, "other", {text_hash("shared reply"): np.arange(3, dtype=np.float32)})
    store.put_embeddings("vectors-only", "minilm", {"abc": np.ones(4, np.float32)})
    store.close()


def digests(location: str) -> dict[str, str]:
    store = open_store(location)
    try:
        return {t: tenant_digest(store, t) for t in store.tenants()}
    finally:
        store.close()


@postgres_only
def test_round_trip_sqlite_postgres_sqlite(tmp_path, store_location):
    source, back = str(tmp_path / "source.db"), str(tmp_path / "back.db")
    fill(source)
    there = migrate(source, store_location)
    assert there.verified and [t.tenant for t in there.tenants] == ["acme", "globex", "vectors-only"]
    acme = there.tenants[0]
    assert acme.source_counts == {"users": 4, "sessions": 12, "turns": 21, "embeddings": 14, "facts": 0,
                                  "instructions": 0}
    assert (acme.sessions_copied, acme.sessions_skipped, acme.users_added) == (12, 0, 1)
    assert acme.embeddings_copied == 14
    returned = migrate(store_location, back)
    assert returned.verified
    assert digests(source) == digests(store_location) == digests(back)
    a, b = open_store(source), open_store(back)
    try:
        for tenant in ("acme", "globex"):
            assert a.stats(tenant) | {"location": "", "file_bytes": 0} == b.stats(tenant) | {"location": "",
                                                                                               "file_bytes": 0}
            for user in a.users(tenant):
                assert a.user_turns(tenant, user) == b.user_turns(tenant, user)
                assert a.sessions(tenant, user) == b.sessions(tenant, user)
    finally:
        a.close()
        b.close()


def test_resume_after_a_partial_copy(tmp_path, store_location, monkeypatch):
    source = str(tmp_path / "source.db")
    fill(source)
    target = open_store(store_location)
    calls = {"n": 0}
    real_add_session = target.add_session

    def flaky(tenant, s):
        calls["n"] += 1
        if calls["n"] > 5:
            raise ConnectionError("network went away")
        return real_add_session(tenant, s)

    monkeypatch.setattr(target, "add_session", flaky)
    with pytest.raises(ConnectionError):
        migrate(source, target)
    monkeypatch.undo()
    # each session is written whole or not at all: 5 by add_session, 1 without turns by add_turns
    assert target.stats("acme")["sessions"] == 6
    report = migrate(source, target)
    acme = report.tenants[0]
    assert report.verified
    assert (acme.sessions_skipped, acme.sessions_copied) == (6, 6)
    again = migrate(source, target)  # a third run has nothing left to do
    assert again.verified and again.totals()["sessions_copied"] == again.totals()["embeddings_copied"] == 0
    target.close()


def test_verification_notices_a_target_that_differs(tmp_path):
    source, target = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    fill(source, sessions_per_user=1)
    extra = open_store(target)
    extra.add_session("acme", session("intruder", "s1", ["not in the source"]))
    extra.close()
    report = migrate(source, target)
    acme = report.tenants[0]
    assert not report.verified and not acme.verified and acme.source_hash != acme.target_hash
    assert all(t.verified for t in report.tenants[1:])


def test_only_some_tenants_and_same_store_refused(tmp_path):
    source, target = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    fill(source, sessions_per_user=1)
    report = migrate(source, target, tenants=["globex"])
    assert report.verified and [t.tenant for t in report.tenants] == ["globex"]
    copied = open_store(target)
    assert copied.tenants() == ["globex"]
    copied.close()
    with pytest.raises(InputError, match="same store"):
        migrate(source, source)


def test_cli_migrate(tmp_path):
    source, target = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    fill(source, sessions_per_user=1)
    runner = CliRunner()
    result = runner.invoke(migrate_command, ["--from", source, "--to", target, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verified"] and data["sessions_copied"] == 2 * 6 and len(data["tenants"]) == 3
    result = runner.invoke(migrate_command, ["--from", source, "--to", target])
    assert result.exit_code == 0 and "verified" in result.output and "0 sessions copied" in result.output
    result = runner.invoke(migrate_command, ["--from", source, "--to", "postgresql://[broken"])
    assert result.exit_code == 2 and "not a valid PostgreSQL URL" in result.output
    assert migrate_command.help
