"""Fact keys (LongMemEval's "K = V + fact": each stored fact is one more dense key of its turn) and
`Memory.reextract` (fact extraction run again over stored sessions); on every backend where a store is involved."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from convmem import Memory
from convmem.cli import main
from convmem.errors import InputError
from convmem.index.fact_keys import fact_key_text
from convmem.index.statement_keys import statement_sentences
from convmem.ingest import parse_sessions
from convmem.models import Fact, Session, Turn
from convmem.providers.chat import ChatModel, Completion
from convmem.retrieve.config import get_retriever
from convmem.store import open_store
from convmem.store.base import text_hash

T0 = datetime(2024, 3, 1, 10, tzinfo=timezone.utc)


class Scripted(ChatModel):
    """Answers each call with the next scripted text, then "[]" (tests the plumbing; not evidence for the model)."""

    name = "scripted"

    def __init__(self, *answers: str, on_call=None):
        self.answers, self.calls, self.on_call = list(answers), [], on_call

    def generate(self, messages, **kw) -> Completion:
        self.calls.append(messages)
        if self.on_call:
            self.on_call(len(self.calls))
        return Completion(self.answers.pop(0) if self.answers else "[]")


def sessions(*texts: str, user: str = "u", speaker: str = "user") -> list[Session]:
    return [parse_sessions({"user": user, "session_id": f"s{i + 1}", "started_at": f"2024-03-0{i + 1}T10:00:00+01:00",
                            "turns": [{"speaker": speaker, "role": "user", "text": text}]}, "convmem")[0]
            for i, text in enumerate(texts)]


def fact(subject: str, attribute: str, value: str) -> Fact:
    return Fact(subject=subject, attribute=attribute, value=value, valid_from=T0, session_id="s1", turn_id="s1_1")


def test_fact_key_text_reads_as_a_sentence():
    assert fact_key_text(fact("Ana", "lives in", "Lisbon")) == "Ana lives in Lisbon"
    assert fact_key_text(fact("user", "lives in", "Lisbon")) == "I live in Lisbon"  # a role, not a name
    assert fact_key_text(fact("user", "works at", "Siemens")) == "I work at Siemens"
    assert fact_key_text(fact("Ana", "pottery", "started")) == "Ana started pottery"
    assert fact_key_text(fact("user", "latest purchase", "a new bike")) == "I bought a new bike"
    assert fact_key_text(fact("Melanie", "favorite food", "sushi")) == "Melanie's favorite food is sushi"
    assert fact_key_text(fact("user", "dog_breed", "greyhound")) == "My dog breed is greyhound"


# one sentence (so no statement key), the fact stated after a long aside; the distractor shares the question's topic
MOVED = ("Honestly the whole spring was chaos with the school play, the plumber and the dentist, but I finally moved "
         "to Porto.")
DISTRACTORS = ("Is a big town or a quiet village better for a family with kids?",
               "The flat hunting in Lisbon was exhausting, so many tiny apartments with no light.")


def test_a_rule_fact_is_a_key_statement_keys_do_not_give(tmp_path, embedder):
    assert statement_sentences(MOVED) == ()
    assert get_retriever("convmem-facts").fact_keys and not get_retriever("convmem").fact_keys
    top = {}
    for name in ("convmem", "convmem-facts"):
        with Memory(str(tmp_path / f"{name}.db"), embedder=embedder, retriever=name) as mem:
            report = mem.add_sessions(sessions(MOVED, *DISTRACTORS))
            assert [(f.attribute, f.value) for f in mem.facts("u")] == [("lives in", "Porto")]
            index = mem.index("u")
            keys = 0 if index.key_vectors is None else len(index.key_vectors)
            top[name] = (mem.search("Where do I live?", user="u", k=1)[0].turn_id, keys, report.texts_embedded)
    # the key "I live in Porto" is embedded at import (3 turns + 1 key), and lifts its turn to the top
    assert top == {"convmem": ("s2_1", 0, 3), "convmem-facts": ("s1_1", 1, 4)}


def test_llm_facts_written_later_reach_a_cached_index(store_location, embedder):
    """A search after LLM facts land uses them: put_derived moves the revision (another Memory on the same store
    writes them here, so only the revision can tell the first one its cached index is stale)."""
    texts = ("Between the seedlings and the rain the garden is a mess, and the greyhound keeps digging holes in it.",
             "Which food is best for a puppy with a sensitive stomach?",
             "My neighbour's cat sleeps on our porch every afternoon.")
    query = "What breed is my dog?"
    with Memory(store_location, embedder=embedder, retriever="convmem-facts") as reader:
        reader.add_sessions(sessions(*texts))
        assert reader.facts("u") == [] and reader.search(query, user="u", k=1)[0].turn_id == "s2_1"
        before = reader.store.revision("default", "u")
        model = Scripted('[{"turn": 1, "attribute": "dog breed", "value": "greyhound"}]')
        writer = Memory(store=reader.store, embedder=embedder, retriever="convmem-facts", facts_extractor="llm",
                        chat_model=model)
        report = writer.reextract("u")
        assert report["facts_llm"] == 1 and reader.store.revision("default", "u") != before
        # the key was embedded by reextract (fact_keys on): the search finds its vector in the cache
        assert reader.store.get_embeddings("default", embedder.name, [text_hash("My dog breed is greyhound")])
        assert reader.index("u").key_owner.tolist() == [0]
        assert reader.search(query, user="u", k=1)[0].turn_id == "s1_1"


def test_put_derived_moves_the_revision_only_for_facts(store_location):
    from convmem.extract.instructions import make_instruction

    store = open_store(store_location)
    try:
        s = sessions("I live in Porto.")[0]
        store.add_session("t", s)
        r1 = store.revision("t", "u")
        store.put_derived("t", "u", [fact("user", "lives in", "Porto")], [])
        r2 = store.revision("t", "u")
        store.put_derived("t", "u", [], [], replace_session="s1", facts_only=True)  # clears the session's facts
        r3 = store.revision("t", "u")
        assert len({r1, r2, r3}) == 3 and store.facts("t", "u") == []
        store.put_derived("t", "u", [], [make_instruction("u", "Reply in Dutch.", source="api", created_at=T0)])
        assert store.revision("t", "u") == r3  # an instruction is no key of any turn
        assert store.put_derived("t", "u", [fact("user", "x", "y")], [], replace_session="gone") == 0
        assert store.revision("t", "u") == r3
    finally:
        store.close()


CONVERSATION = ("I live in Lisbon and I work at a bakery near the old tram line.",
                "Oh, and from now on please answer in short bullet points.",
                "Big news: I moved to Berlin last week!")


def test_reextract_fills_history_imported_without_facts_and_is_idempotent(store_location, embedder):
    with Memory(store_location, embedder=embedder) as mem:
        for s in sessions(*CONVERSATION):
            mem.store.add_session(mem.tenant, s)  # as stored before facts existed: no derived rows
        mem.add_instruction("u", "Use metric units.")
        assert mem.facts("u") == [] and mem.instructions("u")[0].source == "api"
        report = mem.reextract()  # every user of the tenant
        assert {k: report[k] for k in ("users", "sessions", "sessions_changed", "facts_rules", "facts_llm",
                                       "items_written_by_model", "sessions_llm_read", "seconds_per_session")} == {
            "users": 1, "sessions": 3, "sessions_changed": 2, "facts_rules": 3, "facts_llm": 0,
            "items_written_by_model": 0, "sessions_llm_read": 0, "seconds_per_session": None}
        assert [(f.value, f.valid_from.isoformat()) for f in mem.fact_timeline("u")
                if f.attribute == "lives in"] == [("Lisbon", "2024-03-01T10:00:00+01:00"),
                                                  ("Berlin", "2024-03-03T10:00:00+01:00")]  # the stored offsets
        assert [i.source for i in mem.instructions("u")] == ["api"]  # instructions are left alone
        revision = mem.store.revision("default", "u")
        again = mem.reextract("u")
        assert (again["sessions"], again["sessions_changed"], again["facts_rules"]) == (3, 0, 3)
        assert mem.store.revision("default", "u") == revision  # nothing written
        assert mem.reextract("u", limit_sessions=1)["sessions"] == 1
        assert mem.reextract("nobody")["sessions"] == 0
        with pytest.raises(InputError):
            mem.reextract("u", limit_sessions=0)


def test_reextract_with_the_llm_reports_and_keeps_what_it_cannot_redo(store_location, embedder):
    answer = ('[{"turn": 1, "attribute": "home city", "value": "Lisbon"}, {"turn": 1, "attribute": "bakery location", '
              '"value": "the old tram line"}, {"turn": 1, "attribute": "car", "value": "Ferrari"}]')
    with Memory(store_location, embedder=embedder) as mem:
        mem.add_sessions(sessions(*CONVERSATION))
        llm = Memory(store=mem.store, embedder=embedder, facts_extractor="llm", chat_model=Scripted(answer, "[]", "[]"))
        seen = []
        report = llm.reextract("u", progress=seen.append)
        # 3 items: "Ferrari" is in no turn (dropped), "Lisbon" the rules found in that turn, the tram line is new
        assert {k: report[k] for k in ("sessions", "sessions_changed", "facts_rules", "facts_llm",
                                       "llm_also_found_by_rules", "items_written_by_model",
                                       "items_dropped_by_validation", "sessions_llm_read", "sessions_llm_failed")} == {
            "sessions": 3, "sessions_changed": 1, "facts_rules": 3, "facts_llm": 1, "llm_also_found_by_rules": 1,
            "items_written_by_model": 3, "items_dropped_by_validation": 1, "sessions_llm_read": 3,
            "sessions_llm_failed": 0}
        assert report["seconds_per_session"] == pytest.approx(report["llm_seconds"] / 3)
        assert [(r["session_id"], r["facts_llm"], r["changed"]) for r in seen] == [
            ("s1", 1, True), ("s2", 0, False), ("s3", 0, False)]
        stored = sorted((f.attribute, f.value, f.extractor) for f in mem.facts("u"))
        assert ("bakery location", "the old tram line", "llm") in stored
        # the same answers again: nothing changes
        llm._chat = Scripted(answer, "[]", "[]")
        assert llm.reextract("u")["sessions_changed"] == 0
        # a model that writes no JSON, and a rules-only run, keep the LLM facts already stored
        llm._chat = Scripted("no", "still no", "nope")
        failed = llm.reextract("u", limit_sessions=1)
        assert (failed["sessions_llm_failed"], failed["facts_llm_kept"], failed["sessions_changed"]) == (1, 1, 0)
        rules = mem.reextract("u")
        assert (rules["facts_llm_kept"], rules["sessions_changed"]) == (1, 0)
        assert sorted((f.attribute, f.value, f.extractor) for f in mem.facts("u")) == stored


def test_a_session_forgotten_during_reextract_gets_no_facts_back(store_location, embedder):
    with Memory(store_location, embedder=embedder) as mem:
        mem.add_sessions(sessions(*CONVERSATION))

        def forget_s1(call: int) -> None:  # the model is slow; the user forgets s1 meanwhile
            if call == 1:
                mem.forget(user="u", session="s1")

        model = Scripted('[{"turn": 1, "attribute": "bakery location", "value": "the old tram line"}]',
                         on_call=forget_s1)
        llm = Memory(store=mem.store, embedder=embedder, facts_extractor="llm", chat_model=model)
        llm.reextract("u")
        assert {f.session_id for f in mem.facts("u")} == {"s3"}
        assert [s["session_id"] for s in mem.sessions(user="u")] == ["s2", "s3"]


def test_cli_reextract(tmp_path, embedder):
    db = str(tmp_path / "cli.db")
    store = open_store(db)
    for s in sessions(*CONVERSATION) + sessions("I moved to Oslo.", user="v"):
        store.add_session("default", s)
    store.close()
    run = CliRunner().invoke
    out = run(main, ["reextract", "--db", db, "--user", "u", "--quiet"])
    assert out.exit_code == 0, out.output
    assert (json.loads(out.stdout)["sessions"], json.loads(out.stdout)["facts_rules"]) == (3, 3)
    out = run(main, ["reextract", "--db", db, "--limit-sessions", "4"])  # every user, 4 sessions in all
    report = json.loads(out.stdout)
    assert (report["users"], report["sessions"], report["sessions_changed"]) == (2, 4, 1)
    assert "v\ts1\t1 rule, 0 LLM facts" in out.stderr
    for args, says in ((["--facts-extractor", "llm"], "needs --chat-model"),
                       (["--chat-model", "smollm2"], "is for --facts-extractor llm")):
        out = run(main, ["reextract", "--db", db, *args])
        assert out.exit_code == 2 and says in out.output and "Traceback" not in out.output
