"""Facts that change over time and standing instructions through `Memory`, the store contract for them, forget,
re-import and migrate; on every backend (conftest.BACKENDS)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from convmem import Memory
from convmem.cli import main
from convmem.errors import InputError, NotFound
from convmem.models import Session, Turn
from convmem.store import open_store
from convmem.store.migrate import migrate


def session(sid: str, day: str, *texts: str, speaker: str = "Ana") -> dict:
    turns = []
    for i, text in enumerate(texts):
        user_turn = i % 2 == 0
        turns.append({"speaker": speaker if user_turn else "bot", "role": "user" if user_turn else "assistant",
                      "text": text})
    return {"user": "ana", "session_id": sid, "started_at": f"{day}T10:00:00Z", "turns": turns}


# a fact that changes twice, a restatement, an instruction, and statements an assistant makes (never facts)
CONVERSATION = [
    session("s1", "2024-01-10", "Hi! I live in Lisbon and I work at a bakery.", "Nice, I live in the cloud.",
            "Oh, and I'm allergic to peanuts. Also, from now on please answer in short bullet points."),
    session("s2", "2024-03-05", "Big news: I moved to Berlin last week!", "Congratulations!",
            "Do I live in a nice area? I might move to Munich later."),
    session("s3", "2024-04-20", "Berlin is great. I live in Berlin near the river.", "Sounds lovely."),
    session("s4", "2024-06-01", "I moved to Tokyo for a new job.", "Exciting!",
            "Can you suggest a snack for the flight?"),
]


@pytest.fixture
def conversation(memory):
    for s in CONVERSATION:
        assert memory.add_session(s) == "added"
    return memory


def lives_in(records):
    return [(f.value, f.valid_from.date().isoformat(), f.valid_until.date().isoformat() if f.valid_until else None)
            for f in records if f.attribute == "lives in"]


def test_fact_changes_twice_timeline_and_facts_at(conversation):
    mem = conversation
    assert lives_in(mem.fact_timeline("ana")) == [("Lisbon", "2024-01-10", "2024-03-05"),
                                                 ("Berlin", "2024-03-05", "2024-06-01"),
                                                 ("Tokyo", "2024-06-01", None)]
    assert lives_in(mem.facts("ana", at="2024-02-01")) == [("Lisbon", "2024-01-10", "2024-03-05")]
    assert lives_in(mem.facts("ana", at="2024-05-01T00:00:00+00:00"))[0][0] == "Berlin"
    assert lives_in(mem.facts("ana", at="2024-06-01"))[0][0] == "Tokyo"  # a date alone: the end of that day
    assert lives_in(mem.facts("ana"))[0][0] == "Tokyo"
    assert [f.subject for f in mem.facts("ana")] == ["Ana", "Ana"]  # the speaker, never the assistant
    assert {(f.attribute, f.value) for f in mem.facts("ana", subject="ana")} == {("lives in", "Tokyo"),
                                                                                 ("works at", "bakery")}
    assert mem.facts("ana", subject="bot") == []
    report = mem.contradictions("ana")
    assert [(g["attribute"], g["conflicting"], len(g["changes"])) for g in report] == [("lives in", False, 3)]
    with pytest.raises(InputError, match="at"):
        mem.facts("ana", at="last tuesday")


def test_instruction_from_a_turn_appears_in_a_later_context(conversation):
    mem = conversation
    assert sorted((i.kind, i.always_on, i.source, i.session_id) for i in mem.instructions("ana")) == [
        ("allergy", True, "turn", "s1"), ("format", True, "turn", "s1")]
    ctx = mem.context("What snack should I buy for the trip?", user="ana", budget_tokens=400)
    section, _, memories = ctx.text.partition("\n\n")
    assert section.startswith("Standing instructions") and "allergic to peanuts" in section
    assert "bullet points" in section and memories.startswith("Memory:")
    assert {i["source"] for i in ctx.instructions} == {"turn"} and ctx.tokens <= 400
    assert ctx.to_dict()["instructions"][0]["reason"].startswith("always on")
    plain = mem.context("What snack should I buy for the trip?", user="ana", budget_tokens=400, instructions=False)
    assert plain.text.startswith("Memory:") and plain.instructions == []


def test_api_instructions_selection_and_errors(memory):
    diet = memory.add_instruction("ana", "I'm vegetarian.")
    seats = memory.add_instruction("ana", "Always book aisle seats for me.")
    assert memory.add_instruction("ana", "I'm vegetarian.").instruction_id == diet.instruction_id  # idempotent
    assert (diet.kind, diet.always_on, seats.kind) == ("diet", False, "general")
    picked = {s.instruction.instruction_id: s.reason for s in memory.applicable_instructions("ana", "Book a flight")}
    assert list(picked) == [seats.instruction_id] and picked[seats.instruction_id].startswith("topic")
    assert [s.instruction.text for s in memory.applicable_instructions("ana", "Suggest a dinner recipe")] == \
        ["I'm vegetarian."]
    ctx = memory.context("Suggest a dinner recipe", user="ana", budget_tokens=300)  # no conversation stored yet
    assert "I'm vegetarian." in ctx.text and "aisle" not in ctx.text and ctx.citations == []
    memory.remove_instruction("ana", seats.instruction_id)
    assert [i.text for i in memory.instructions("ana")] == ["I'm vegetarian."]
    for bad, match in [(dict(text=""), "non-empty"), (dict(text="x" * 1001), "1000"),
                       (dict(text="ok", kind="mood"), "kind must be")]:
        with pytest.raises(InputError, match=match):
            memory.add_instruction("ana", **bad)
    with pytest.raises(NotFound, match="no instruction"):
        memory.remove_instruction("ana", seats.instruction_id)
    assert memory.for_tenant("other").instructions("ana") == []  # tenant-keyed


def test_forget_removes_facts_and_instructions(conversation):
    mem = conversation
    mem.add_instruction("ana", "Use metric units.")
    mem.forget(user="ana", session="s1")  # the Lisbon statement and the turn's instructions go with it
    assert lives_in(mem.fact_timeline("ana"))[0][0] == "Berlin"
    assert [i.source for i in mem.instructions("ana")] == ["api"]
    stats = mem.stats()
    assert stats["instructions"] == 1 and stats["facts"] == len(mem.store.facts(mem.tenant, "ana"))
    mem.forget(user="ana")
    assert mem.fact_timeline("ana") == [] and mem.instructions("ana") == []
    assert (mem.stats()["facts"], mem.stats()["instructions"]) == (0, 0)


def test_reimport_with_other_content_recomputes_facts(conversation):
    mem = conversation
    assert mem.add_session(CONVERSATION[1]) == "unchanged"
    changed = session("s2", "2024-03-05", "Big news: I moved to Hamburg last week!", "Congratulations!")
    assert mem.add_session(changed) == "replaced"
    assert [v for v, _, _ in lives_in(mem.fact_timeline("ana"))] == ["Lisbon", "Hamburg", "Berlin", "Tokyo"]
    assert all(f.value != "Berlin" or f.session_id == "s3" for f in mem.fact_timeline("ana"))


def test_turns_added_later_are_understood(memory):
    when = datetime(2024, 8, 1, 12, tzinfo=timezone.utc)
    memory.add_turns([{"speaker": "Ana", "text": "I switched to oat milk. Never suggest dairy desserts.",
                       "timestamp": when}], user="ana", session="chat-1")
    memory.add_turns([{"speaker": "Ana", "text": "I switched to oat milk. Never suggest dairy desserts.",
                       "timestamp": when, "turn_id": "chat-1_1"}], user="ana", session="chat-1")  # the same turn
    assert [(f.attribute, f.value, f.valid_from) for f in memory.facts("ana")] == [("switched to", "oat milk", when)]
    assert [(i.kind, i.turn_id) for i in memory.instructions("ana")] == [("diet", "chat-1_1")]


def test_store_contract_for_derived_rows(store_location):
    from convmem.extract.instructions import make_instruction

    store = open_store(store_location)
    try:
        t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        s = Session(user="ana", session_id="s1", started_at=t0,
                    turns=[Turn(speaker="Ana", text="I live in Porto."), Turn(speaker="Ana", text="Always be brief.")])
        from convmem.extract.memory import FactsAndInstructions

        derived = FactsAndInstructions._derive(None, s)
        assert store.add_session("t", s, derived) == "added"
        assert [(f.value, f.turn_id, f.valid_from) for f in store.facts("t", "ana")] == [("Porto", "s1_1", t0)]
        assert [i.turn_id for i in store.instructions("t", "ana")] == ["s1_2"]
        assert store.facts("u", "ana") == [] and store.instructions("u", "ana") == []  # other tenant
        # nothing derived from a session that does not exist is written
        assert store.put_derived("t", "ana", derived[0], [], replace_session="gone") == 0
        api = make_instruction("bob", "Reply in Dutch.", source="api", created_at=t0)
        assert store.put_derived("t", "bob", [], [api]) == 1 and store.put_derived("t", "bob", [], [api]) == 0
        assert "bob" in store.users("t")
        assert [u for u, _, _ in store.iter_derived("t")] == ["ana", "bob"]
        assert store.remove_instruction("t", "bob", api.instruction_id)
        assert not store.remove_instruction("t", "bob", api.instruction_id)
        assert (store.stats("t")["facts"], store.stats("t")["instructions"]) == (1, 1)
    finally:
        store.close()


def test_migrate_copies_facts_and_instructions(tmp_path, store_location, embedder):
    source = str(tmp_path / "source.db")
    with Memory(source, embedder=embedder) as mem:
        for s in CONVERSATION:
            mem.add_session(s)
        mem.add_instruction("ana", "Use metric units.")
        before = ([f.to_dict() for f in mem.fact_timeline("ana")], [i.to_dict() for i in mem.instructions("ana")])
    report = migrate(source, store_location)
    assert report.verified and report.tenants[0].source_counts["facts"] == 5
    assert report.tenants[0].target_counts["instructions"] == 3
    with Memory(store_location, embedder=embedder) as there:
        assert ([f.to_dict() for f in there.fact_timeline("ana")],
                [i.to_dict() for i in there.instructions("ana")]) == before
    again = migrate(source, store_location)  # resumable: a second run changes nothing
    assert again.verified and again.totals()["derived_copied"] == 0 and report.totals()["derived_copied"] == 8


def test_cli_facts_and_instructions(tmp_path):
    db = str(tmp_path / "cli.db")
    data = tmp_path / "conv.jsonl"
    data.write_text("\n".join(json.dumps(s) for s in CONVERSATION))
    run = CliRunner().invoke
    assert run(main, ["import", str(data), "--db", db, "--quiet"]).exit_code == 0
    out = run(main, ["facts", "--user", "ana", "--timeline", "--db", db])
    assert out.exit_code == 0 and out.output.count("\tlives in\t") == 3 and ".. now" in out.output
    out = run(main, ["facts", "--user", "ana", "--at", "2024-04-01", "--json", "--db", db])
    assert [f["value"] for f in json.loads(out.output) if f["attribute"] == "lives in"] == ["Berlin"]
    out = run(main, ["facts", "--user", "ana", "--contradictions", "--db", db])
    assert out.exit_code == 0 and "Lisbon (2024-01-10) -> Berlin (2024-03-05) -> Tokyo (2024-06-01)" in out.output
    out = run(main, ["instructions", "add", "Reply in Spanish.", "--user", "ana", "--json", "--db", db])
    ins = json.loads(out.output)
    assert ins["kind"] == "language" and ins["always_on"]
    out = run(main, ["instructions", "list", "--user", "ana", "--for", "any request", "--db", db])
    assert "Reply in Spanish." in out.output and "always on" in out.output
    assert run(main, ["instructions", "remove", ins["instruction_id"], "--user", "ana", "--db", db]).exit_code == 0
    out = run(main, ["instructions", "remove", ins["instruction_id"], "--user", "ana", "--db", db])
    assert out.exit_code == 2 and "no instruction" in out.output and "Traceback" not in out.output
    out = run(main, ["context", "What snack for the flight?", "--user", "ana", "--budget", "300", "--db", db])
    assert out.exit_code == 0 and out.output.startswith("Standing instructions") and "allergic to peanuts" in out.output
    out = run(main, ["context", "What snack for the flight?", "--user", "ana", "--no-instructions", "--db", db])
    assert out.exit_code == 0 and out.output.startswith("Memory:")
    out = run(main, ["facts", "--user", "ana", "--at", "soon", "--db", db])
    assert out.exit_code == 2 and "ISO-8601" in out.output


def test_bench_instructions_writes_results_and_report(tmp_path):
    out = CliRunner().invoke(main, ["bench", "instructions", "--out", str(tmp_path / "b")])
    assert out.exit_code == 0, out.output
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    default = results["rules"][0]["splits"]
    assert results["requests"] >= 40 and set(default) == {"all", "dev", "test"}
    assert 0 < default["all"]["precision"] <= 1 and 0 < default["all"]["recall"] <= 1
    assert "| precision |" in (tmp_path / "b" / "report.md").read_text()


def test_llm_extractor_adds_to_rule_facts_and_failures_change_nothing(store_location, embedder):
    from test_extract_rules import Scripted

    good = Scripted('[{"turn": 1, "attribute": "home city", "value": "Lisbon"},'
                    ' {"turn": 1, "attribute": "greeting", "value": "Hi"}]')
    with Memory(store_location, embedder=embedder, facts_extractor="llm", chat_model=good) as mem:
        mem.add_session(CONVERSATION[0])  # "Lisbon" the rules found in that turn too: only "Hi" is added
        assert sorted((f.attribute, f.value, f.extractor) for f in mem.fact_timeline("ana")) == [
            ("greeting", "Hi", "llm"), ("lives in", "Lisbon", "rules"), ("works at", "bakery", "rules")]
        assert len(mem.instructions("ana")) == 2  # instructions stay with the rules
        mem._chat = Scripted("not json", "still not", "no")  # fails: the rule facts of the session stay
        mem.add_session(CONVERSATION[1])
        assert ("lives in", "Berlin", "rules") in [(f.attribute, f.value, f.extractor) for f in mem.facts("ana")]
    with pytest.raises(InputError, match="chat model"):
        Memory(store_location, embedder=embedder, facts_extractor="llm")


def test_postgres_fences_the_new_tables_like_the_others(store_location):
    if not store_location.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    import psycopg

    open_store(store_location).close()
    with psycopg.connect(store_location, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, p.qual, p.with_check FROM pg_class c"
            " JOIN pg_policies p ON p.schemaname = 'convmem' AND p.tablename = c.relname"
            " AND p.policyname = 'tenant_fence' WHERE c.relnamespace = 'convmem'::regnamespace"
            " AND c.relname IN ('turns', 'facts', 'instructions') ORDER BY c.relname").fetchall()
    assert [r[0] for r in rows] == ["facts", "instructions", "turns"]
    assert all(r[1] and r[2] for r in rows) and len({(r[3], r[4]) for r in rows}) == 1


def test_bench_facts_samples_rule_facts_of_longmemeval_user_turns(tmp_path):
    item = {"question_id": "q1", "question_type": "knowledge-update", "question": "Where do I live?",
            "question_date": "2023/05/30 (Tue) 10:00", "answer": "Berlin", "answer_session_ids": ["a"],
            "haystack_dates": ["2023/05/01 (Mon) 09:00", "2023/05/20 (Sat) 09:00"], "haystack_session_ids": ["a", "b"],
            "haystack_sessions": [
                [{"role": "user", "content": "I live in Lisbon. I prefer window seats."},
                 {"role": "assistant", "content": "I live in the cloud."}],
                [{"role": "user", "content": "I moved to Berlin. Do I live near a lake?"}]]}
    data = tmp_path / "lme.json"
    data.write_text(json.dumps([item]))
    out = CliRunner().invoke(main, ["bench", "facts", str(data), "--out", str(tmp_path / "f"), "--sample", "5"])
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert (summary["user_turns"], summary["facts"], summary["instructions"], summary["sample"]) == (2, 2, 1, 2)
    sample = [json.loads(line) for line in (tmp_path / "f" / "sample.jsonl").read_text().splitlines()]
    assert sorted(x["value"] for x in sample) == ["Berlin", "Lisbon"]

    from convmem.extract.evaluate import sample_facts
    from test_extract_rules import Scripted

    model = Scripted('[{"turn": 1, "attribute": "home", "value": "Lisbon"}, {"turn": 1, "attribute": "x", '
                     '"value": "Paris"}]', "nothing", "still nothing", "no")
    summary = sample_facts(str(data), str(tmp_path / "g"), llm=model)
    assert {k: summary["llm"][k] for k in ("sessions", "not_json", "items_written", "items_kept",
                                            "kept_also_found_by_rules")} == \
        {"sessions": 2, "not_json": 1, "items_written": 2, "items_kept": 1, "kept_also_found_by_rules": 1}
