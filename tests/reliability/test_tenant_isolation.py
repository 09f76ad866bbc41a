"""Tenant isolation, as a property over random data on every backend: tenants share user and session names and
even identical texts, and every operation (search, context, sessions, users, stats, import, forget) touches and
returns only the caller's data.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convmem import Memory
from convmem.ingest import parse_sessions

from reliability_helpers import HashEmbedder

USERS = ["ana", "ben", "cy"]
SIDS = ["s1", "s2", "s3"]
WORDS = ["wedding", "sister", "beagle", "viola", "secret", "roadmap", "salary", "password"]
EXAMPLES = int(os.environ.get("CONVMEM_FUZZ_EXAMPLES", "0")) or 6

SESSION = st.tuples(st.integers(0, 2), st.sampled_from(USERS), st.sampled_from(SIDS),
                    st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), st.booleans()),
                             min_size=1, max_size=3),
                    st.booleans())
SCENARIO = st.tuples(st.lists(SESSION, min_size=2, max_size=12), st.integers(0, 2), st.sampled_from(USERS),
                     st.one_of(st.none(), st.sampled_from(SIDS)))


def _tag(tenant: str, user: str) -> str:
    return f"own{tenant}{user}"


def run_scenario(mem: Memory, scenario) -> None:
    sessions, forget_t, forget_user, forget_sid = scenario
    run = uuid.uuid4().hex[:6]
    tenants = [f"t{i}{run}" for i in range(3)]
    # model: (tenant, user) -> {session_id: [texts]}; the last write of a session id wins (a replace)
    model: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(dict)
    for t, user, sid, turns, via_import in sessions:
        tenant = tenants[t]
        # a turn either carries its owner's tag or is text shared word for word with other tenants
        texts = [" ".join(words) + (f" {_tag(tenant, user)}" if tagged else "") for words, tagged in turns]
        body = {"user": user, "session_id": sid, "started_at": "2024-05-08T10:00:00Z",
                "turns": [{"speaker": user, "text": x, "turn_id": f"{sid}_{i}"} for i, x in enumerate(texts)]}
        scoped = mem.for_tenant(tenant)
        if via_import:
            scoped.add_sessions(parse_sessions([body], "convmem"))
        else:
            scoped.add_session(body)
        model[(tenant, user)][sid] = texts
    check(mem, tenants, model)

    # forgetting in one tenant leaves every other tenant (same user names, same texts) exactly as it was
    tenant = tenants[forget_t]
    before = {t: _counts(mem.for_tenant(t)) for t in tenants}
    removed = mem.for_tenant(tenant).forget(user=forget_user, session=forget_sid)
    owned = model.get((tenant, forget_user), {})
    gone = [forget_sid] if forget_sid is not None else list(owned)
    assert removed == sum(len(owned.get(s, [])) for s in gone)
    for sid in gone:
        owned.pop(sid, None)
    if forget_sid is None:
        model.pop((tenant, forget_user), None)
    for other in tenants:
        if other != tenant:
            assert _counts(mem.for_tenant(other)) == before[other]
    check(mem, tenants, model)


def _counts(mem: Memory) -> dict:
    return {k: v for k, v in mem.stats().items() if k not in ("file_bytes", "location")}


def check(mem: Memory, tenants: list[str], model) -> None:
    for tenant in tenants:
        scoped = mem.for_tenant(tenant)
        mine = {u: s for (t, u), s in model.items() if t == tenant}
        stats = scoped.stats()
        assert stats["sessions"] == sum(len(s) for s in mine.values())
        assert stats["turns"] == sum(len(x) for s in mine.values() for x in s.values())
        assert stats["embeddings"] <= len({x for s in mine.values() for xs in s.values() for x in xs})
        users = scoped.users()
        assert set(users) >= {u for u, s in mine.items() if s} and set(users) <= set(USERS)
        for user in USERS:
            own = mine.get(user, {})
            allowed = {(sid, f"{sid}_{i}", x) for sid, xs in own.items() for i, x in enumerate(xs)}
            assert {s["session_id"]: s["turns"] for s in scoped.sessions(user=user)} == {
                sid: len(xs) for sid, xs in own.items()}
            tags = " ".join(_tag(t, u) for t in tenants for u in USERS)
            queries = [WORDS[0], "sister beagle", tags, f"{WORDS[4]} {tags}"]
            for query in queries:
                hits = scoped.search(query, user=user, k=50)
                assert {(h.session_id, h.turn_id, h.text) for h in hits} <= allowed, (tenant, user, query)
                for h in hits:
                    assert "own" not in h.text or _tag(tenant, user) in h.text
            ctx = scoped.context(queries[-1], user=user, budget_tokens=4000)
            assert {(c.session_id, c.turn_id) for c in ctx.citations} <= {(a, b) for a, b, _ in allowed}
            for t in tenants:
                for u in USERS:
                    if (t, u) != (tenant, user):
                        assert _tag(t, u) not in ctx.text


def test_tenants_and_users_are_partitions(store_location):
    mem = Memory(store_location, embedder=HashEmbedder())

    @given(scenario=SCENARIO)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CONVMEM_FUZZ_EXAMPLES"),
              suppress_health_check=list(HealthCheck))
    def prop(scenario):
        run_scenario(mem, scenario)

    try:
        prop()
    finally:
        mem.close()
