"""Harness pieces without the CLI: retriever registry, official id mapping, import records, QA with a fake reader."""

import json
from datetime import datetime, timezone

import httpx
import pytest

from convmem.bench import qa
from convmem.bench.common import ImportRecord, context_summary, dedupe, percentiles
from convmem.bench.datasets import load_locomo, load_longmemeval
from convmem.bench.longmemeval import official_ranking, raw_ids
from convmem.bench.readers import OpenAIReader, Reader
from convmem.bench.retrievers import bench_retrievers, get_bench_retriever
from convmem.errors import NotFound
from convmem.retrieve import config as retrieve_config


def test_registry_follows_retrieve_config(monkeypatch):
    names = bench_retrievers()
    assert names["flat-bm25"].kind == "protocol" and names["convmem"].kind == "memory"
    assert names["dense"].config.lexical is False
    monkeypatch.setitem(retrieve_config.RETRIEVERS, "later",
                        retrieve_config.RetrievalConfig(fusion="weighted", dense_weight=0.7))
    later = get_bench_retriever("later")
    assert later.is_memory and later.config.dense_weight == 0.7
    with pytest.raises(NotFound, match="flat-bm25"):
        get_bench_retriever("nope")


def _quirky(item):
    """q1 with its first session repeated at the end and one assistant-only session."""
    item = json.loads(json.dumps(item))
    item["haystack_session_ids"] += [item["haystack_session_ids"][0], "s_asst"]
    item["haystack_sessions"] += [item["haystack_sessions"][0], [{"role": "assistant", "content": "hi"}]]
    item["haystack_dates"] += ["2023/05/09 (Tue) 09:00", "2023/05/10 (Wed) 09:00"]
    return item


def test_official_ranking_maps_renames_duplicates_and_gaps(lme_path):
    item = _quirky(load_longmemeval(lme_path)[0])
    assert raw_ids(item, "session") == ["s_a", "answer_x_1", "answer_x_2", "s_a", "s_asst"]
    # the memory ranks the stored sessions (one copy of s_a; s_asst has no user turn in the user-turns corpus)
    ranked, stats = official_ranking(["answer_x_2", "s_a", "answer_x_1"], item, "session")
    assert ranked == ["noans_x_2", "s_a", "s_a", "answer_x_1", "s_asst"]
    assert stats == {"duplicates_placed": 1, "appended": 1, "ignored": 0}
    ranked, stats = official_ranking(["answer_x_1_4", "s_a_1", "answer_x_1_2", "zzz"], item, "turn")
    assert ranked == ["noans_x_1_4", "s_a_1", "s_a_1", "answer_x_1_2", "noans_x_2_1"]
    assert stats == {"duplicates_placed": 1, "appended": 1, "ignored": 1}


def test_dedupe_and_import_record(tmp_path):
    from convmem.ingest import parse_sessions

    item = _quirky(load_longmemeval(_fixture("lme_tiny.json"))[0])
    sessions = parse_sessions([item], "longmemeval", source="t")
    kept, dropped = dedupe(sessions)
    assert dropped == 1 and [s.session_id for s in kept] == ["s_a", "answer_x_1", "answer_x_2", "s_asst"]
    a = ImportRecord(str(tmp_path / "m.db"), "t", "e1")
    b = ImportRecord(str(tmp_path / "m.db"), "t", "e2")
    a.items["q"] = {"seconds": 1}
    a.save()
    b.items["q"] = {"seconds": 2}
    b.save()  # merges, never clobbers the other embedder's section
    data = json.loads((tmp_path / "m.db.bench-import.json").read_text())
    assert data == {"t": {"e1": {"q": {"seconds": 1}}, "e2": {"q": {"seconds": 2}}}}
    assert ImportRecord(":memory:", "t", "e").path is None


def _fixture(name):
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "fixtures" / name


def test_percentiles_and_context_summary():
    p = percentiles([0.001, 0.002, 0.003])
    assert p["n"] == 3 and p["p50_ms"] == pytest.approx(2.0)
    assert percentiles([])["p95_ms"] is None
    rows = [{"budget": {500: {"all_turns": True, "all_sessions": True, "tokens": 100, "cited": 3}}},
            {"budget": {500: {"all_turns": False, "all_sessions": True, "tokens": 300, "cited": 5}}}]
    s = context_summary(rows, [500])
    assert s["budgets"]["500"] == {"recall_all_turns": 0.5, "recall_all_sessions": 1.0, "mean_tokens": 200.0,
                                   "mean_turns_cited": 4.0, "answer_checkable": 0, "answer_kept": None}


# --------------------------------------------------------------------------------------------- QA


class FakeReader(Reader):
    """Test double: answers from canned rules, records every prompt."""

    name = "fake"
    context_window = 400

    def __init__(self):
        self.prompts = []

    def complete(self, messages, max_tokens):
        text = messages[-1]["content"]
        self.prompts.append(text)
        if text.startswith("You grade"):
            return "Yes." if "Paris" in text.split("Reply to grade:")[1] else "no"
        if "Do not answer yet" in text:
            return "- 2023-05-02: the user bought the bike in Paris"
        if "Paris" in text and "Ben's bike" not in text:
            return "Paris"
        return "Not mentioned in the conversation."

    def count_tokens(self, text):
        return len(text.split())


def test_judge_label_and_prompts():
    assert qa.judge_label("Yes.") and not qa.judge_label("No")
    item = qa.QAItem("longmemeval", "q_abs", "when?", "x", "2023/06/01 (Thu) 10:00", "temporal-reasoning", "u",
                     abstention=True)
    text = qa.judge_prompt(item, "I don't know")[0]["content"]
    assert "cannot be answered" in text and "Expected answer" not in text
    item = qa.QAItem("longmemeval", "q", "when?", "3 days", None, "temporal-reasoning", "u")
    assert "off by one" in qa.judge_prompt(item, "4 days")[0]["content"]
    adv = qa.QAItem("locomo", "c:1", "colour?", "blue", None, "adversarial", "u", category=5)
    assert "Expected answer" not in qa.judge_prompt(adv, "blue")[0]["content"]
    assert "Current date: 2023/06/01" in qa.answer_prompt(qa.QAItem("longmemeval", "q", "q?", "a", "2023/06/01",
                                                                     "t", "u"), "MEM")[1]["content"]


def test_qa_run_with_fake_reader(tmp_path, embedder):
    from convmem import Memory
    from convmem.bench.common import import_items
    from convmem.bench.longmemeval import TENANT, item_groups

    items = load_longmemeval(_fixture("lme_tiny.json"))
    mem = Memory(tmp_path / "m.db", tenant=TENANT, embedder=embedder)
    groups, _ = item_groups(items, "t")
    import_items(mem, groups, db_path=str(tmp_path / "m.db"), tenant=TENANT)
    reader = FakeReader()
    qitems = qa.longmemeval_items(items)
    # retrieval resolves relative dates against the question's date, not the run's clock
    assert qitems[0].now == datetime(2023, 5, 30, 10, 0, tzinfo=timezone.utc)
    summary, rows = qa.run_qa(qitems, mem=mem, context_fn=qa.context_function(mem, get_bench_retriever("convmem")),
                              reader=reader, judge=reader, budget=1000)
    assert len(rows) == 6 and set(summary) == {"direct", "notes", "full-context"}
    q1 = {r["strategy"]: r for r in rows if r["question_id"] == "q1"}
    assert q1["direct"]["prediction"] == "Paris" and q1["direct"]["judge_correct"]
    assert q1["notes"]["calls"] == 2 and q1["notes"]["notes"].startswith("- 2023-05-02")
    assert q1["full-context"]["history_turns_kept"] == q1["full-context"]["history_turns"] == 8
    assert all(r["latency_s"] >= 0 and r["prompt_tokens"] > 0 for r in rows)
    # prompts carry the question date and the session dates
    first = reader.prompts[0]
    assert "Current date: 2023/05/30 (Tue) 10:00" in first and "2023-05-02" in first
    assert summary["direct"]["judge_accuracy"] == 0.5  # q2_abs: the fake answers 'Not mentioned', judged no
    assert summary["direct"]["judge_by_label"]["single-session-user"]["accuracy"] == 1.0
    assert summary["direct"]["judge_abstention_accuracy"]["n"] == 1

    # full-context truncation keeps the newest turns when the window is small
    reader.context_window = 190
    _, rows = qa.run_qa(qitems[:1], mem=mem, context_fn=None, reader=reader, judge=None,
                        strategies=["full-context"])
    assert 0 < rows[0]["history_turns_kept"] < rows[0]["history_turns"]
    assert "judge_correct" not in rows[0]


def test_qa_locomo_items_and_f1(tmp_path, embedder):
    from convmem import Memory
    from convmem.bench.common import import_items
    from convmem.bench.locomo import TENANT, item_groups

    samples = load_locomo(_fixture("locomo_tiny.json"))
    mem = Memory(tmp_path / "m.db", tenant=TENANT, embedder=embedder)
    import_items(mem, item_groups(samples, "t"), db_path=None, tenant=TENANT)
    items = qa.locomo_items(samples, limit=4)
    assert [i.question_date for i in items] == ["2:00 pm on 20 May, 2023"] * 4
    assert {i.now for i in items} == {datetime(2023, 5, 20, 14, 0, tzinfo=timezone.utc)}
    reader = FakeReader()
    summary, rows = qa.run_qa(items, mem=mem, context_fn=qa.context_function(mem, get_bench_retriever("flat-bm25")),
                              reader=reader, judge=None, strategies=["direct"])
    by = {r["question_id"]: r for r in rows}
    assert by["conv-t:3"]["f1"] == 1.0  # adversarial: 'Not mentioned' scores 1
    assert summary["direct"]["f1"]["n"] == 4 and "adversarial" in summary["direct"]["f1"]["by_category"]


def test_openai_reader_speaks_chat_completions(monkeypatch):
    seen = {}

    def handler(request):
        seen["url"] = str(request.url)
        seen["auth"] = request.headers.get("authorization")
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json={"choices": [{"message": {"content": "Paris"}}]})

    monkeypatch.setenv("OPENAI_API_KEY", "k")
    reader = OpenAIReader(base_url="http://llm.invalid/v1", model="m")
    reader._client = httpx.Client(base_url=reader.base_url, headers={"Authorization": "Bearer k"},
                                  transport=httpx.MockTransport(handler))
    assert reader.complete([{"role": "user", "content": "q"}], 5) == "Paris"
    assert seen["url"] == "http://llm.invalid/v1/chat/completions" and seen["auth"] == "Bearer k"
    assert seen["body"] == {"model": "m", "messages": [{"role": "user", "content": "q"}], "max_tokens": 5,
                            "temperature": 0}
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    from convmem.errors import ConfigError

    with pytest.raises(ConfigError, match="--llm-model"):
        OpenAIReader(base_url="http://llm.invalid/v1")


def test_cli_qa_with_fake_reader(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from convmem.bench import readers
    from convmem.cli import main

    monkeypatch.setattr(readers, "make_reader", lambda *a, **k: FakeReader())
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["bench", "longmemeval", "--data", str(_fixture("lme_tiny.json")), "--retriever",
                                  "lexical", "--out", str(out), "--qa", "--strategy", "direct", "--qa-limit", "1",
                                  "--embed-sample", "0", "--latency-repeats", "1", "--budgets", "500"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["qa"]["n"] == 1 and res["qa"]["strategies"]["direct"]["judge_accuracy"] == 1.0
    assert res["qa"]["reader"]["name"] == "fake"
    assert len((out / "qa.jsonl").read_text().splitlines()) == 1
    assert "## QA" in (out / "report.md").read_text() and (out / "qa_by_type.png").is_file()
    assert res["config"]["budgets"] == [500]


def test_reused_db_with_other_data_is_refused(tmp_path):
    from convmem import Memory
    from convmem.bench.common import import_items
    from convmem.bench.longmemeval import TENANT, item_groups
    from convmem.errors import InputError
    from convmem.retrieve.config import RetrievalConfig

    items = load_longmemeval(_fixture("lme_tiny.json"))
    mem = Memory(tmp_path / "m.db", tenant=TENANT, retriever=RetrievalConfig(dense=False))
    import_items(mem, item_groups(items, "t")[0], db_path=None, tenant=TENANT)
    smaller = json.loads(json.dumps(items[:1]))
    for key in ("haystack_session_ids", "haystack_sessions", "haystack_dates"):
        smaller[0][key] = smaller[0][key][1:]
    with pytest.raises(InputError, match="another --db"):
        import_items(mem, item_groups(smaller, "t")[0], db_path=None, tenant=TENANT)


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("CONVMEM_TEST_LOCAL_LLM"),
                    reason="set CONVMEM_TEST_LOCAL_LLM=1 to load SmolLM2-135M (slow on 2 cores)")
def test_local_reader_answers():
    pytest.importorskip("torch")
    from convmem.bench.readers import LocalReader

    reader = LocalReader(context_window=512)
    assert reader.context_window == 512 and reader.count_tokens("hello world") > 0
    reply = reader.complete([{"role": "user", "content": "Say hello."}], 8)
    assert isinstance(reply, str) and reply


def test_knowledge_update_sessions_and_latest_first(lme_path):
    from convmem.bench.datasets import lme_update_sessions
    from convmem.bench.longmemeval import latest_first, update_summary

    q1, q2 = load_longmemeval(lme_path)
    assert lme_update_sessions(q1) == []  # not a knowledge-update question
    ku = json.loads(json.dumps(q1))
    ku.update(question_type="knowledge-update", haystack_dates=list(reversed(q1["haystack_dates"])))
    assert lme_update_sessions(ku) == []  # answer_x_2 has no user turn with has_answer: one gold session only
    ku["haystack_sessions"][2][0]["has_answer"] = True
    assert lme_update_sessions(ku) == ["answer_x_2", "answer_x_1"]  # oldest -> latest by date, not by position
    assert lme_update_sessions({**ku, "haystack_dates": ["2023/05/01 (Mon) 09:00"] * 3}) == []  # one date
    assert lme_update_sessions({**q2, "question_type": "knowledge-update"}) == []  # abstention
    assert latest_first(["s_a", "answer_x_1", "answer_x_2"], ["answer_x_2", "answer_x_1"])
    assert not latest_first(["answer_x_2", "answer_x_1"], ["answer_x_2", "answer_x_1"])
    rows = [{"session": True, "turn": False, "latest_cited": {"500": False, "2000": True}},
            {"session": False, "turn": False, "latest_cited": {"500": True, "2000": True}}]
    assert update_summary(rows, ("session", "turn"), (500, 2000)) == {
        "n": 2, "latest_first": {"session": 0.5, "turn": 0.0}, "latest_cited": {"500": 0.5, "2000": 1.0}}
    assert update_summary([], ("session",), (500,))["latest_first"] == {"session": None}


def test_answer_span_and_answer_kept():
    from types import SimpleNamespace

    from convmem.bench.common import answer_span, context_cell

    evidence = ["By the way, I just baked a Chocolate cake for Tom!", "It was for his birthday."]
    span = answer_span("a chocolate cake", evidence)
    assert span == " a chocolate cake "
    assert answer_span("a lemon cake", evidence) is None  # not word for word in the evidence
    assert answer_span("It took seven long days, nine if you count the trip", evidence) is None  # too long
    assert answer_span("", evidence) is None
    cite = [SimpleNamespace(turn_id="t1", session_id="s1")]
    kept = context_cell(cite, 40, {"t1"}, {"s1"}, '[t1] Ana: "I just baked a chocolate cake"', span)
    cut = context_cell(cite, 40, {"t1"}, {"s1"}, '[t1] Ana: "By the way, I just baked a"', span)
    assert kept["all_turns"] and kept["answer_kept"] and cut["all_turns"] and not cut["answer_kept"]
    assert "answer_kept" not in context_cell(cite, 40, {"t1"}, {"s1"}, "text", None)
    summary = context_summary([{"budget": {500: kept}}, {"budget": {500: cut}},
                               {"budget": {500: context_cell(cite, 9, {"t1"}, {"s1"})}}], [500])
    assert summary["budgets"]["500"]["answer_kept"] == 0.5 and summary["budgets"]["500"]["answer_checkable"] == 2
