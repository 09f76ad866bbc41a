"""Session summaries, time gaps between sessions, and summaries in the context (issue 9 item 1)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from convmem.context.assemble import assemble
from convmem.context.timegap import ago_phrase, gap_phrase
from convmem.errors import InputError, NotFound
from convmem.extract.summaries import extractive_summary
from test_extract_rules import Scripted  # a chat model answering scripted texts


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize("days, phrase", [
    (0, "the same day"), (1, "the next day"), (2, "2 days later"), (6, "6 days later"), (7, "a week later"),
    (13, "a week later"), (14, "2 weeks later"), (21, "3 weeks later"), (27, "3 weeks later"),
    (28, "4 weeks later"),  # 10 May -> 7 June: not yet a calendar month
    (31, "a month later"), (61, "2 months later"), (364, "11 months later"),
    (365, "11 months later"),  # 10 May 2023 + 365 days = 9 May 2024 (a leap year): a day short of a year
    (366, "a year later"),
    (800, "2 years later")])
def test_gap_phrases_at_their_boundaries(days, phrase):
    start = utc(2023, 5, 10, 13, 0)
    assert gap_phrase(start, start + timedelta(days=days)) == phrase


def test_gap_counts_calendar_days_and_months():
    assert gap_phrase(utc(2023, 5, 10, 23, 50), utc(2023, 5, 11, 0, 10)) == "the next day"  # 20 minutes, 2 dates
    assert gap_phrase(utc(2023, 5, 10), utc(2023, 6, 9)) == "4 weeks later"  # 30 days, a day short of a month
    assert gap_phrase(utc(2023, 5, 10), utc(2023, 6, 10)) == "a month later"
    assert gap_phrase(utc(2023, 5, 10), utc(2023, 5, 9)) == "earlier"


def test_ago_phrases():
    now = utc(2023, 10, 1, 12)
    assert ago_phrase(utc(2023, 10, 1, 8), now) == "today"
    assert ago_phrase(utc(2023, 9, 30, 23), now) == "yesterday"
    assert ago_phrase(utc(2023, 9, 10), now) == "3 weeks ago"
    assert ago_phrase(utc(2023, 5, 8), now) == "4 months ago"
    assert ago_phrase(utc(2023, 10, 2), now) == ""  # after now: nothing said


def test_extractive_summary_takes_central_sentences_with_their_speaker():
    texts = ["Hey!", "My sister Lena is getting married in June, the wedding is in Porto.",
             "Congratulations! A wedding in Porto in June sounds lovely.", "Thanks, you too!",
             "The wedding venue is a vineyard near the river in Porto. Do you like vineyards?",
             "I had pasta for lunch today with some cheese."]
    speakers = ["Ana", "Ana", "Bot", "Ana", "Ana", "Ana"]
    text, used = extractive_summary(texts, speakers, None, max_items=2, max_words=40)
    assert 0 not in used and 3 not in used  # greetings have too few content words
    assert 5 not in used  # off topic: least central
    assert text == "Bot: A wedding in Porto in June sounds lovely. Ana: The wedding venue is a vineyard near the " \
                   "river in Porto."  # said in that order; MMR keeps turn 1, a near copy of turn 2, out
    assert len(text.split()) <= 40
    assert "Do you like vineyards?" not in text  # the sentence with the session's words, not the question
    assert used == sorted(used)


def test_extractive_summary_uses_vectors_when_given():
    texts = ["alpha beta gamma delta", "epsilon zeta eta theta", "iota kappa lambda mu"]
    vectors = np.asarray([[1, 0, 0], [0, 1, 0], [0.7, 0.7, 0]], dtype=np.float32)
    text, used = extractive_summary(texts, ["A", "B", "C"], vectors, max_items=1)
    assert used == [2] and text == "C: iota kappa lambda mu"  # the mean direction itself


@pytest.fixture
def mem(tmp_path, embedder):
    from convmem import Memory

    m = Memory(str(tmp_path / "m.db"), embedder=embedder)
    yield m
    m.close()


def _wedding_and_dog(mem):
    mem.add_session({"user": "ana", "session_id": "s1", "started_at": "2024-03-01T10:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": f"Wedding plan item {i}: my sister Lena marries in Porto in "
                                                   f"June and the venue is a vineyard by the river."}
        for i in range(12)]})
    mem.add_session({"user": "ana", "session_id": "s2", "started_at": "2024-03-22T09:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": "We adopted a beagle puppy and named him Biscuit."},
        {"speaker": "Bot", "role": "assistant", "text": "Biscuit is a great name for a beagle puppy!"},
        {"speaker": "Ana", "role": "user", "text": "He chews every shoe in the house but loves the kids."}]})


def test_memory_summaries_cached_by_revision(mem):
    _wedding_and_dog(mem)
    first = mem.summaries("ana")
    assert [s.session_id for s in first] == ["s1", "s2"] and all(s.method == "extractive" for s in first)
    assert "Biscuit" in first[1].text and first[1].turn_ids
    assert mem.summaries("ana") is not first and mem.summaries("ana")[1] is first[1]  # from the cache
    mem.add_session({"user": "ana", "session_id": "s2", "started_at": "2024-03-22T09:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": "We adopted a grey cat called Miso from the shelter."}]})
    assert "Miso" in mem.summaries("ana", session="s2")[0].text  # a replaced session is summarised again
    mem.forget(user="ana", session="s2")
    assert [s.session_id for s in mem.summaries("ana")] == ["s1"]


def test_memory_summaries_input_errors(mem):
    _wedding_and_dog(mem)
    with pytest.raises(InputError, match="chat model"):
        mem.summaries("ana", method="llm")
    with pytest.raises(InputError, match="method"):
        mem.summaries("ana", method="abstract")
    with pytest.raises(NotFound):
        mem.summaries("ana", session="nope")
    assert mem.summaries("nobody") == []


def test_llm_summaries_replace_extractive_ones_and_reach_the_context(tmp_path, embedder):
    from convmem import Memory

    model = Scripted("Ana plans her sister's wedding in Porto.", "", "")
    mem = Memory(str(tmp_path / "m.db"), embedder=embedder, chat_model=model)
    _wedding_and_dog(mem)
    out = mem.summaries("ana")
    assert [s.method for s in out] == ["llm", "extractive"]  # an empty answer keeps the extractive summary
    assert out[0].text == "Ana plans her sister's wedding in Porto."
    assert "Ana: Wedding plan item" in model.calls[0][1]["content"]
    assert mem._summary_texts("ana", mem.index("ana"))[0] == out[0].text
    mem.summaries("ana")
    assert len(model.calls) == 2  # cached for this revision
    mem.add_turns([{"speaker": "Ana", "text": "Biscuit learned to sit and to give his paw."}], user="ana",
                  session="s2")
    again = mem.summaries("ana")
    assert len(model.calls) == 3 and "Biscuit learned to sit" in model.calls[2][1]["content"]  # s2 only
    assert again[0] is out[0] and again[0].method == "llm"
    assert mem.summaries("ana", method="extractive")[0] is mem._extractive("ana", mem.index("ana"))[0]


def test_context_headers_state_the_gap_and_the_time_before_now(mem):
    _wedding_and_dog(mem)
    ctx = mem.context("wedding in Porto and the beagle Biscuit", user="ana", budget_tokens=4000,
                      now="2024-09-01T00:00:00Z", instructions=False)
    assert "## Session (Friday 2024-03-01 10:00 UTC, 6 months ago)" in ctx.text
    assert "## Session (Friday 2024-03-22 09:00 UTC, 3 weeks later, 5 months ago)" in ctx.text
    assert "the time since the previous one and before now (2024-09-01)" in ctx.text


def test_summaries_enter_the_context_when_turns_do_not_fit(mem):
    _wedding_and_dog(mem)
    index = mem.index("ana")
    order = list(range(len(index.rows)))  # every wedding turn ranks above the dog session
    summaries = [s.text for s in mem.summaries("ana")]
    counter = mem.token_counter
    ctx = assemble(index, order, query="wedding", budget_tokens=500, counter=counter, summaries=summaries,
                   summary_share=0.25, now=datetime(2024, 9, 1, tzinfo=timezone.utc))
    assert ctx.tokens <= 500 and counter.count(ctx.text) == ctx.tokens
    lines = ctx.text.splitlines()
    s2 = lines.index(next(ln for ln in lines if ln.startswith("## Session (Friday 2024-03-22")))
    assert lines[s2 + 1].startswith('[summary] "') and "Biscuit" in lines[s2 + 1]
    turn_lines = [ln for ln in lines if ln[:1] == "[" and ln[1:2].isdigit()]
    assert len(ctx.citations) == len(turn_lines)  # a summary cites no turn
    assert sum(c.session_id == "s1" for c in ctx.citations) >= 4  # the turns took the rest of the budget

    plain = assemble(index, order, query="wedding", budget_tokens=500, counter=counter)
    assert '[summary] "' not in plain.text
    none = assemble(index, order, query="wedding", budget_tokens=500, counter=counter, summaries=summaries,
                    summary_share=0.0)
    assert none.text == plain.text
    roomy = assemble(index, order, query="wedding", budget_tokens=4000, counter=counter, summaries=summaries)
    assert '[summary] "' not in roomy.text  # every session has its turns in: no summary needed


def test_a_role_everyone_shares_is_left_out_of_the_lines(mem):
    mem.add_session({"user": "u", "session_id": "p1", "started_at": "2024-01-01T00:00:00Z", "turns": [
        {"speaker": "Cara", "role": "participant", "text": "I ran a marathon."},
        {"speaker": "Dan", "role": "participant", "text": "Well done on the marathon!"}]})
    mem.add_session({"user": "u", "session_id": "p2", "started_at": "2024-01-02T00:00:00Z", "turns": [
        {"speaker": "Cara", "role": "user", "text": "How long is a marathon?"},
        {"speaker": "Bot", "role": "assistant", "text": "A marathon is 42.195 km."}]})
    text = mem.context("marathon", user="u", budget_tokens=2000, instructions=False).text
    assert '] Cara: "I ran a marathon."' in text and "(participant)" not in text
    assert '] Cara (user): "How long is a marathon?"' in text and "Bot (assistant)" in text


def test_cli_summaries_mirrors_the_api(mem, tmp_path):
    from click.testing import CliRunner

    from convmem.cli import main

    _wedding_and_dog(mem)
    db = str(tmp_path / "m.db")
    out = CliRunner().invoke(main, ["summaries", "--user", "ana", "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    assert [s["session_id"] for s in json.loads(out.stdout)] == ["s1", "s2"]
    bad = CliRunner().invoke(main, ["summaries", "--user", "ana", "--db", db, "--session", "nope"])
    assert bad.exit_code == 2 and "no session" in bad.output and "Traceback" not in bad.output
