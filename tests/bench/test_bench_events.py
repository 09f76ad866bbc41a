"""ROUGE on hand-computed cases, and `convmem bench locomo-events` end to end on a tiny fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from convmem.bench.events import event_weight, items_of, run_events, third_person
from convmem.bench.rouge import rouge, rouge_l, rouge_n, tokenize
from convmem.cli import main
from convmem.errors import InputError

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "locomo_events_tiny.json"


def test_rouge_hand_computed():
    # the cat sat on the mat / the cat lay on the mat: 5 of 6 unigrams, 3 of 5 bigrams, LCS 5
    r = rouge("the cat sat on the mat", "the cat lay on the mat")
    assert r["rouge1"] == pytest.approx(5 / 6) and r["rouge2"] == pytest.approx(0.6)
    assert r["rougeL"] == pytest.approx(5 / 6)
    # stems: polic kill the gunman / the gunman was kill by polic: unigrams P 4/4 R 4/6 -> 0.8;
    # bigrams only "the gunman": P 1/3 R 1/5 -> 0.25; LCS "the gunman": P 2/4 R 2/6 -> 0.4
    r = rouge("police killed the gunman", "the gunman was killed by police")
    assert (r["rouge1"], r["rouge2"], r["rougeL"]) == pytest.approx((0.8, 0.25, 0.4))
    assert rouge("Hello, world!", "hello world") == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge("", "anything") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert tokenize("Running dogs ran", stem=False) == ["running", "dogs", "ran"]
    assert tokenize("Running dogs ran") == ["run", "dog", "ran"]  # tokens of 3 letters or fewer are not stemmed


def test_rouge_parts_precision_and_recall():
    c, r = ["a", "b", "c", "d"], ["a", "c", "e"]
    assert rouge_n(c, r, 1) == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7})
    assert rouge_l(c, r)["f1"] == pytest.approx(4 / 7)  # LCS a c
    assert rouge_n(["a"], ["a"], 2) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # no bigram at all


def test_event_helpers():
    assert third_person("I joined a class and I'm happy with my bowl.", "Ana") == \
        "Ana joined a class and Ana is happy with their bowl."
    assert event_weight("I adopted a puppy last week.") == 1.0
    assert event_weight("That sounds great.") == 0.3
    assert event_weight("Did you adopt a puppy?") == 0.0
    sample = json.loads(EVENTS.read_text())[0]
    items, empty = items_of(sample, 1)
    assert [(i["speaker"], i["sessions"]) for i in items] == [("Ana", [1]), ("Ben", [2])] and empty == 2
    items, empty = items_of(sample, 2)
    assert [(i["speaker"], i["gold_events"]) for i in items] == [("Ana", 1), ("Ben", 1)] and empty == 0


class Scripted:
    name = "scripted"

    def __init__(self, answer: str):
        self.answer, self.calls = answer, []

    def complete(self, messages, max_tokens):
        self.calls.append(messages)
        return self.answer

    def describe(self):
        return {"name": self.name}


def test_events_bench_end_to_end(tmp_path, embedder):
    reader = Scripted("1. Ana joins a pottery class.\n2. Ana makes her first bowl.")
    res = run_events(data=str(EVENTS), out=tmp_path / "out", db=str(tmp_path / "m.db"), reader=reader, llm_limit=1,
                     log=lambda m: None)
    assert res["n_items"] == 2 and res["n_without_gold"] == 2
    rows = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    ana = rows[0]
    assert ana["predictions"]["extractive"].startswith("Ana joined a pottery class yesterday and made their first")
    assert ana["predictions"]["llm"] == "Ana joins a pottery class. Ana makes her first bowl."
    assert "Messages from Ana" in reader.calls[0][1]["content"] and len(reader.calls) == 1
    assert ana["scores"]["llm"]["rouge1"] == pytest.approx(rouge(ana["predictions"]["llm"], ana["gold"])["rouge1"])
    assert res["methods"]["llm"]["n"] == 1 and res["methods"]["extractive"]["n"] == 2
    assert res["methods"]["extractive"]["rouge1"] > res["methods"]["lead"]["rouge1"]  # greetings lose
    assert res["same_items_as_llm"]["extractive"]["n"] == 1


def test_events_cli_writes_results_and_refuses_bad_input(tmp_path, embedder):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "locomo-events", "--data", str(EVENTS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "extractive: n 2" in result.output
    assert json.loads((out / "results.json").read_text())["benchmark"] == "locomo-events"
    assert "ROUGE-1 F1" in (out / "report.md").read_text()

    bad = tmp_path / "bad.json"
    sample = json.loads(EVENTS.read_text())[0]
    del sample["event_summary"]
    bad.write_text(json.dumps([sample]))
    result = CliRunner().invoke(main, ["bench", "locomo-events", "--data", str(bad), "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "event_summary" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b").exists()  # nothing written
    with pytest.raises(InputError):
        run_events(data=str(EVENTS), out=tmp_path / "c", db=str(tmp_path / "c.db"), window=0, log=lambda m: None)
