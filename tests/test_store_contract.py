"""The storage contract (`convmem.store.base.Store`), run against every backend in conftest.BACKENDS.

Each test gets an empty store from the `store_location` fixture (a SQLite file, or a fresh PostgreSQL database)
and talks to it through `open_store` only. Tests at the end are specific to PostgreSQL (URL errors, the
row-level-security fence, connections per thread).
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from convmem.errors import ConfigError, InputError, StoreError
from convmem.models import Session, Turn
from convmem.store import open_store, text_hash

T0 = datetime(2024, 5, 8, 10, 0, tzinfo=timezone.utc)


def make_session(user: str, sid: str, texts: list[str], *, start: datetime = T0, **kwargs) -> Session:
    speakers = ["Ana", "Bot"]
    turns = [Turn(speaker=speakers[i % 2], role=("user", "assistant")[i % 2], text=t) for i, t in enumerate(texts)]
    return Session(user=user, session_id=sid, started_at=start, turns=turns, **kwargs)


@pytest.fixture
def store(store_location):
    s = open_store(store_location)
    yield s
    s.close()


def counts(store, tenant: str) -> dict[str, int]:
    stats = store.stats(tenant)
    return {k: stats[k] for k in ("users", "sessions", "turns", "embeddings")}


def vec(seed: int, dim: int = 384) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


# -- add_session ------------------------------------------------------------------------------------------------
def test_add_session_added_unchanged_replaced(store):
    first = make_session("ana", "s1", ["My sister marries in June.", "Congratulations!"])
    assert store.add_session("t", first) == "added"
    r1 = store.revision("t", "ana")
    assert store.add_session("t", make_session("ana", "s1", ["My sister marries in June.", "Congratulations!"])) \
        == "unchanged"
    assert store.revision("t", "ana") == r1
    assert store.add_session("t", make_session("ana", "s1", ["Actually it is in July."])) == "replaced"
    assert store.revision("t", "ana") != r1
    assert [r.text for r in store.user_turns("t", "ana")] == ["Actually it is in July."]
    assert counts(store, "t") == {"users": 1, "sessions": 1, "turns": 1, "embeddings": 0}


def test_metadata_change_is_a_replacement(store):
    store.add_session("t", make_session("ana", "s1", ["hello"], metadata={"source": "a"}))
    assert store.add_session("t", make_session("ana", "s1", ["hello"], metadata={"source": "b"})) == "replaced"
    assert store.sessions("t", "ana")[0]["metadata"] == {"source": "b"}


def test_replacing_drops_vectors_of_texts_no_longer_stored(store):
    store.add_session("t", make_session("ana", "s1", ["old text", "kept text"]))
    store.put_embeddings("t", "m", {text_hash("old text"): vec(1), text_hash("kept text"): vec(2)})
    store.add_session("t", make_session("ana", "s1", ["kept text", "new text"]))
    assert set(store.get_embeddings("t", "m", [text_hash("old text"), text_hash("kept text")])) == \
        {text_hash("kept text")}


def test_failed_add_session_writes_nothing(store, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_bump", boom)  # after the session row and its turns, before commit
    with pytest.raises(RuntimeError):
        store.add_session("t", make_session("ana", "s1", ["one", "two", "three"]))
    monkeypatch.undo()
    assert store.user_turns("t", "ana") == []
    assert store.sessions("t", "ana") == []
    assert counts(store, "t") == {"users": 0, "sessions": 0, "turns": 0, "embeddings": 0}
    # the store is still usable, and a failed replacement keeps the old session whole
    assert store.add_session("t", make_session("ana", "s1", ["one", "two"])) == "added"
    revision = store.revision("t", "ana")
    monkeypatch.setattr(store, "_bump", boom)
    with pytest.raises(RuntimeError):
        store.add_session("t", make_session("ana", "s1", ["completely", "different", "turns"]))
    monkeypatch.undo()
    assert [r.text for r in store.user_turns("t", "ana")] == ["one", "two"]
    assert store.revision("t", "ana") == revision


def test_text_that_cannot_be_stored_leaves_nothing(store):
    bad = make_session("ana", "s1", ["fine", "fine too", "broken \ud800 surrogate"])
    with pytest.raises(ValueError):  # InputError on PostgreSQL, UnicodeEncodeError on SQLite: both ValueErrors
        store.add_session("t", bad)
    assert counts(store, "t") == {"users": 0, "sessions": 0, "turns": 0, "embeddings": 0}


# -- add_turns --------------------------------------------------------------------------------------------------
def test_add_turns_appends_with_idempotent_ids(store):
    turns = [Turn(speaker="Ana", text="hi", turn_id="a"), Turn(speaker="Bot", text="hello", role="assistant")]
    assert store.add_turns("t", "ana", "live", turns, T0) == 2
    assert [t.turn_id for t in turns] == ["a", "live_2"]
    assert store.add_turns("t", "ana", "live", [Turn(speaker="Ana", text="hi again?", turn_id="a")], T0) == 0
    assert store.add_turns("t", "ana", "live", [Turn(speaker="Ana", text="bye", turn_id="z")], T0 + timedelta(1)) == 1
    rows = store.user_turns("t", "ana")
    assert [(r.turn_id, r.position, r.text) for r in rows] == [("a", 0, "hi"), ("live_2", 1, "hello"),
                                                               ("z", 2, "bye")]
    assert all(r.session_start == T0 for r in rows)  # the first call dated the session
    [session] = store.sessions("t", "ana")
    assert session["turns"] == 3 and session["participants"] == ["Ana", "Bot"]


def test_add_session_after_add_turns_is_not_unchanged(store):
    s = make_session("ana", "s1", ["one"])
    store.add_session("t", s)
    store.add_turns("t", "ana", "s1", [Turn(speaker="Ana", text="two")], T0)
    assert store.add_session("t", make_session("ana", "s1", ["one"])) == "replaced"
    assert [r.text for r in store.user_turns("t", "ana")] == ["one"]


# -- reads ------------------------------------------------------------------------------------------------------
def test_user_turns_order_and_fields(store):
    later = make_session("ana", "b-late", ["late one", "late two"], start=T0 + timedelta(days=2))
    early = make_session("ana", "z-early", ["early"], start=T0)
    tie = make_session("ana", "a-early", ["tie first"], start=T0)  # same start: session id breaks the tie
    offset = timezone(timedelta(hours=2))
    stamped = Session(user="ana", session_id="c-mid", started_at=T0 + timedelta(days=1), turns=[
        Turn(speaker="Ana", text="stamped", timestamp=datetime(2024, 5, 9, 14, 30, tzinfo=offset),
             metadata={"mood": "happy", "n": 2}),
        Turn(speaker="Bot", role="assistant", text="unstamped"),
    ])
    for s in (later, early, stamped, tie):
        store.add_session("t", s)
    rows = store.user_turns("t", "ana")
    assert [(r.session_id, r.position) for r in rows] == [
        ("a-early", 0), ("z-early", 0), ("c-mid", 0), ("c-mid", 1), ("b-late", 0), ("b-late", 1)]
    r = rows[2]
    assert (r.turn_id, r.speaker, r.role, r.text, r.metadata) == ("c-mid_1", "Ana", "user", "stamped",
                                                                 {"mood": "happy", "n": 2})
    assert r.text_hash == text_hash("stamped")
    assert r.timestamp == datetime(2024, 5, 9, 12, 30, tzinfo=timezone.utc)
    assert rows[3].timestamp == T0 + timedelta(days=1)  # no timestamp: the session's start
    for row in rows:
        assert row.timestamp.utcoffset() == timedelta(0) and row.session_start.utcoffset() == timedelta(0)
    assert store.user_turns("t", "nobody") == []


def test_revision_changes_on_every_write(store):
    assert store.revision("t", "ana") == 0
    seen = [0]

    def moved() -> bool:
        seen.append(store.revision("t", "ana"))
        return seen[-1] != seen[-2]

    store.add_session("t", make_session("ana", "s1", ["one"]))
    assert moved()
    store.add_session("t", make_session("ana", "s2", ["two"]))
    assert moved()
    store.add_session("t", make_session("ana", "s2", ["two"]))
    assert not moved()  # unchanged
    store.add_turns("t", "ana", "s2", [Turn(speaker="Ana", text="three")], T0)
    assert moved()
    store.add_turns("t", "ana", "s2", [Turn(speaker="Ana", text="three", turn_id="s2_2")], T0)
    assert not moved()  # nothing new
    store.add_session("t", make_session("ana", "s2", ["two, edited"]))
    assert moved()
    store.forget("t", "ana", "s1")
    assert moved()
    store.put_embeddings("t", "m", {text_hash("two, edited"): vec(0)})
    assert not moved()  # the cache is not memory
    store.add_session("t", make_session("bob", "s1", ["bob's"]))
    assert not moved()  # another user
    store.forget("t", "ana")
    assert store.revision("t", "ana") == 0


def test_sessions_are_paginated_oldest_first(store):
    offset = timezone(timedelta(hours=-5))
    for i in range(5):
        start = datetime(2024, 1, 5 - i, 9, 0, tzinfo=offset)
        store.add_session("t", make_session("ana", f"s{i}", ["x"] * (i + 1), start=start,
                                            participants=["Ana", "Bot", "Cy"], metadata={"i": i}))
    everything = store.sessions("t", "ana")
    assert [s["session_id"] for s in everything] == ["s4", "s3", "s2", "s1", "s0"]
    first = everything[0]
    assert first == {"session_id": "s4", "started_at": "2024-01-01T09:00:00-05:00",
                     "participants": ["Ana", "Bot", "Cy"], "metadata": {"i": 4}, "turns": 5}
    assert store.sessions("t", "ana", limit=2) == everything[:2]
    assert store.sessions("t", "ana", limit=2, offset=2) == everything[2:4]
    assert store.sessions("t", "ana", limit=2, offset=4) == everything[4:]
    assert store.sessions("t", "ana", offset=5) == []
    assert store.sessions("t", "nobody") == []


def test_users_sorted_and_paginated(store):
    for user in ["zoe", "Ana", "bob", "ana", "émile"]:
        store.add_session("t", make_session(user, "s1", ["hi"]))
    store.add_session("other", make_session("xavier", "s1", ["hi"]))
    assert store.users("t") == ["Ana", "ana", "bob", "zoe", "émile"]  # byte order, as SQLite sorts
    assert store.users("t", limit=2, offset=1) == ["ana", "bob"]
    assert store.users("nobody") == []


def test_stats(store):
    store.add_session("t", make_session("ana", "s1", ["a", "b", "c"]))
    store.add_session("t", make_session("bob", "s1", ["a"]))
    store.put_embeddings("t", "m", {text_hash("a"): vec(1), text_hash("b"): vec(2)})
    store.add_session("u", make_session("ana", "s1", ["z"]))
    stats = store.stats("t")
    assert stats["backend"] in ("sqlite", "postgres") and stats["tenant"] == "t" and stats["location"]
    assert counts(store, "t") == {"users": 2, "sessions": 2, "turns": 4, "embeddings": 2}
    assert counts(store, "nobody") == {"users": 0, "sessions": 0, "turns": 0, "embeddings": 0}


# -- forget -----------------------------------------------------------------------------------------------------
def _populate_for_forgetting(store):
    store.add_session("A", make_session("ana", "s1", ["shared text", "ana secret"]))
    store.add_session("A", make_session("ana", "s2", ["ana other"]))
    store.add_session("A", make_session("bob", "s1", ["shared text", "bob text"]))
    store.add_session("B", make_session("ana", "s1", ["ana secret", "b text"]))  # same user id, other tenant
    texts_of = {"A": ["shared text", "ana secret", "ana other", "bob text"], "B": ["ana secret", "b text"]}
    for tenant, texts in texts_of.items():
        store.put_embeddings(tenant, "m", {text_hash(t): vec(i) for i, t in enumerate(texts)})


def test_forget_user_removes_only_that_users_memory(store):
    _populate_for_forgetting(store)
    before_b = (store.user_turns("B", "ana"), counts(store, "B"))
    assert store.forget("A", "ana") == 3
    assert store.user_turns("A", "ana") == [] and store.sessions("A", "ana") == []
    assert store.users("A") == ["bob"] and store.revision("A", "ana") == 0
    assert [r.text for r in store.user_turns("A", "bob")] == ["shared text", "bob text"]
    hashes = [text_hash(t) for t in ("shared text", "ana secret", "ana other", "bob text")]
    assert set(store.get_embeddings("A", "m", hashes)) == {text_hash("shared text"), text_hash("bob text")}
    assert (store.user_turns("B", "ana"), counts(store, "B")) == before_b  # other tenant untouched
    assert store.forget("A", "ana") == 0  # forgetting twice is fine


def test_forget_one_session(store):
    _populate_for_forgetting(store)
    revision = store.revision("A", "ana")
    assert store.forget("A", "ana", "s2") == 1
    assert [s["session_id"] for s in store.sessions("A", "ana")] == ["s1"]
    assert store.revision("A", "ana") != revision and store.users("A") == ["ana", "bob"]
    assert store.get_embeddings("A", "m", [text_hash("ana other")]) == {}
    assert len(store.get_embeddings("A", "m", [text_hash("ana secret"), text_hash("shared text")])) == 2
    assert store.forget("A", "ana", "no-such-session") == 0


# -- embeddings -------------------------------------------------------------------------------------------------
def test_embeddings_round_trip(store):
    vectors = {text_hash(f"text {i}"): vec(i) for i in range(50)}
    store.put_embeddings("t", "minilm", vectors)
    store.put_embeddings("t", "minilm", {})
    got = store.get_embeddings("t", "minilm", list(vectors) + ["missing"])
    assert set(got) == set(vectors)
    for h, v in vectors.items():
        assert got[h].dtype == np.float32 and np.array_equal(got[h], v)
    assert store.get_embeddings("t", "other-model", vectors) == {}
    assert store.get_embeddings("u", "minilm", vectors) == {}
    assert store.get_embeddings("t", "minilm", []) == {}
    h = next(iter(vectors))
    store.put_embeddings("t", "minilm", {h: np.zeros(384, dtype=np.float32)})  # first write wins
    assert np.array_equal(store.get_embeddings("t", "minilm", [h])[h], vectors[h])
    store.put_embeddings("t", "small", {h: np.ones(8, dtype=np.float64)})  # any dimension, stored as float32
    assert store.get_embeddings("t", "small", [h])[h].tolist() == [1.0] * 8


# -- export / import used by migrate -----------------------------------------------------------------------------
def test_export_methods(store):
    offset = timezone(timedelta(hours=5, minutes=30))
    s = Session(user="ana", session_id="s1", started_at=datetime(2024, 3, 1, 8, 0, tzinfo=offset),
                metadata={"k": [1, 2]}, turns=[
                    Turn(speaker="Ana", text="hi", timestamp=datetime(2024, 3, 1, 8, 1, tzinfo=offset),
                         metadata={"x": 1}),
                    Turn(speaker="Bot", role="assistant", text="hello")])
    store.add_session("t2", s)
    store.add_session("t1", make_session("bob", "s9", ["yo"]))
    store.add_turns("t1", "bob", "empty", [], T0)  # a session without turns
    store.put_embeddings("t3", "m", {"h": vec(0, 4)})  # a tenant with vectors only
    assert store.tenants() == ["t1", "t2", "t3"]
    [back] = store.iter_sessions("t2")
    assert (back.user, back.session_id, back.started_at.isoformat(), back.metadata, back.participants) == \
        ("ana", "s1", "2024-03-01T08:00:00+05:30", {"k": [1, 2]}, ["Ana", "Bot"])
    assert [(t.turn_id, t.position, t.speaker, t.role, t.text, t.metadata) for t in back.turns] == \
        [("s1_1", 0, "Ana", "user", "hi", {"x": 1}), ("s1_2", 1, "Bot", "assistant", "hello", {})]
    assert back.turns[0].timestamp.isoformat() == "2024-03-01T08:01:00+05:30" and back.turns[1].timestamp is None
    from convmem.store.base import session_hash

    assert session_hash(back) == session_hash(s)
    assert [(x.session_id, len(x.turns)) for x in store.iter_sessions("t1")] == [("empty", 0), ("s9", 1)]
    [(model, vectors)] = list(store.iter_embeddings("t3"))
    assert model == "m" and np.array_equal(vectors["h"], vec(0, 4))
    store.put_embeddings("t3", "a", {f"h{i:03d}": vec(i, 4) for i in range(25)})
    chunks = list(store.iter_embeddings("t3", batch=10))
    assert [(m, len(v)) for m, v in chunks] == [("a", 10), ("a", 10), ("a", 5), ("m", 1)]
    assert store.add_user("t4", "carol") is True and store.add_user("t4", "carol") is False
    assert store.users("t4") == ["carol"] and store.revision("t4", "carol") == 0
    before = store.revision("t2", "ana")
    assert before > 0 and store.add_user("t2", "ana") is False and store.revision("t2", "ana") == before


def test_reopening_keeps_data(store_location):
    with_data = open_store(store_location)
    with_data.add_session("t", make_session("ana", "s1", ["kept"]))
    with_data.close()
    again = open_store(store_location)
    assert [r.text for r in again.user_turns("t", "ana")] == ["kept"]
    again.close()


def test_concurrent_writers(store):
    """Threads writing the same and different sessions: every session ends up stored once, none is lost."""
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                outcomes.append(store.add_session("t", make_session("ana", "shared", ["same content"])))
                store.add_session("t", make_session(f"user{n}", f"s{i}", [f"text {n} {i}"]))
                store.add_turns("t", "ana", "live", [Turn(speaker="Ana", text=f"live {n} {i}", turn_id=f"{n}-{i}")], T0)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(outcomes) == ["added"] + ["unchanged"] * 19
    assert counts(store, "t") == {"users": 5, "sessions": 22, "turns": 41, "embeddings": 0}
    assert [r.position for r in store.user_turns("t", "ana") if r.session_id == "live"] == list(range(20))


# -- PostgreSQL only --------------------------------------------------------------------------------------------
def postgres_only(fn):
    """Run a test once, on a fresh PostgreSQL database (the conftest fixture, parametrized indirectly)."""
    return pytest.mark.postgres(pytest.mark.parametrize("store_location", ["postgres"], indirect=True)(fn))


@pytest.mark.postgres
def test_postgres_bad_url_and_unreachable_server(tmp_path):
    pytest.importorskip("psycopg")
    with pytest.raises(InputError, match="not a valid PostgreSQL URL"):
        open_store("postgresql://[broken")
    with pytest.raises(InputError, match="cannot connect to PostgreSQL") as info:
        open_store(f"postgresql://me:s3cret@/convmem?host={tmp_path}&connect_timeout=2")
    assert "s3cret" not in str(info.value)


@postgres_only
def test_postgres_newer_schema_is_refused(store_location):
    import psycopg

    url = store_location
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO convmem.schema_migrations (version, name) VALUES (999, 'm999_future')")
    with pytest.raises(StoreError, match="newer convmem"):
        open_store(url)


@postgres_only
def test_postgres_row_level_security_fences_the_owner(store_location):
    """Run as a non-superuser that owns the tables: FORCE makes the policy apply to it too."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from convmem.store.postgres import PostgresStore

    url = store_location
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    role = "owner_" + uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"ALTER DATABASE {dbname} OWNER TO {role}")
    as_owner = make_conninfo(url, user=role)
    with pytest.raises(ConfigError, match="CREATE EXTENSION vector"):  # pgvector is not a trusted extension
        PostgresStore(as_owner)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION vector")  # what the DBA does once
    store = PostgresStore(as_owner)
    try:
        store.add_session("acme", make_session("ana", "s1", ["acme secret"]))
        store.add_session("globex", make_session("ana", "s1", ["globex secret", "more"]))
        store.put_embeddings("globex", "m", {text_hash("globex secret"): vec(0)})
        assert [r.text for r in store.user_turns("acme", "ana")] == ["acme secret"]
        assert store.tenants() == ["acme", "globex"]
        with psycopg.connect(as_owner, autocommit=True) as conn:
            owner, superuser = conn.execute(
                "SELECT tableowner = current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
                " FROM pg_tables WHERE schemaname = 'convmem' AND tablename = 'turns'").fetchone()
            assert owner and not superuser
            # a query that forgets its tenant filter sees nothing without the setting ...
            assert conn.execute("SELECT count(*) FROM convmem.turns").fetchone()[0] == 0
            with conn.transaction():
                conn.execute("SET LOCAL convmem.tenant = 'acme'")
                # ... and only its own tenant with it, for reads and writes alike
                assert conn.execute("SELECT text FROM convmem.turns").fetchall() == [("acme secret",)]
                assert conn.execute("SELECT count(*) FROM convmem.embeddings").fetchone()[0] == 0
                assert conn.execute("DELETE FROM convmem.turns WHERE tenant = 'globex'").rowcount == 0
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("INSERT INTO convmem.users (tenant, user_id) VALUES ('globex', 'eve')")
        assert counts(store, "globex") == {"users": 1, "sessions": 1, "turns": 2, "embeddings": 1}
    finally:
        store.close()


@postgres_only
def test_postgres_connection_per_thread_and_close(store_location):
    from convmem.store.postgres import PostgresStore

    store = PostgresStore(store_location)
    seen = []
    all_started = threading.Barrier(3)

    def work() -> None:
        seen.append(store._conn())
        store.add_session("t", make_session(f"u{len(seen)}", "s", ["hi"]))
        all_started.wait()  # keep every thread (and its connection) alive until all have one

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 3 and all(c is not store._conn() for c in seen)
    assert all(c.closed for c in seen)  # closed when their threads ended
    assert store.stats("t")["users"] == 3
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.stats("t")


def test_revision_never_repeats_after_forget(store_location):
    store = open_store(store_location)
    store.add_session("t", make_session("ana", "s1", ["one"]))
    first = store.revision("t", "ana")
    store.forget("t", "ana")
    store.add_session("t", make_session("ana", "s1", ["two"]))
    assert store.revision("t", "ana") > first
    store.close()
