"""Time expressions in questions and in turns, resolved against a reference date."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from convmem import Memory
from convmem.retrieve.config import get_retriever
from convmem.retrieve.timeexpr import question_cues, resolve_in_turn, told_dates

NOW = datetime(2023, 5, 20, 2, 21, tzinfo=timezone.utc)  # a Saturday
WEDNESDAY = datetime(2023, 5, 17, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "question, start, end",
    [
        ("What did I do last Saturday?", "2023-05-13", "2023-05-13"),
        ("What did I buy last weekend?", "2023-05-13", "2023-05-14"),
        ("Where was I two weeks ago?", "2023-05-02", "2023-05-10"),
        ("How many doctor visits in March?", "2023-03-01", "2023-03-31"),
        ("What did I cook yesterday?", "2023-05-19", "2023-05-19"),
        ("What did I read last month?", "2023-04-01", "2023-04-30"),
        ("What did I buy on May 7, 2023?", "2023-05-07", "2023-05-07"),
        ("What happened in 2022?", "2022-01-01", "2022-12-31"),
        # a window that ends now: n units back, and a little slack (2 days a week, 7 a month, 30 a year)
        ("What did I buy in the past two months?", "2023-03-14", "2023-05-20"),
        ("How far did I run over the last 3 weeks?", "2023-04-27", "2023-05-20"),
        ("Which books did I read in the past month?", "2023-04-13", "2023-05-20"),
        ("Who visited in the last few days?", "2023-05-16", "2023-05-20"),
    ],
)
def test_question_ranges(question, start, end):
    (r,) = question_cues(question, NOW).ranges
    assert (r.start.date().isoformat(), r.end.date().isoformat()) == (start, end)


def test_order_cues_and_no_date():
    assert question_cues("Where did I travel for the first time?", NOW).order == "first"
    assert question_cues("What is my current job?", NOW).order == "latest"
    assert question_cues("What is my dog called?", None).ranges == ()


def test_impossible_distances_are_ignored():
    assert question_cues("What happened 99999999 years ago?", NOW).ranges == ()
    assert resolve_in_turn("That was 10000 years ago, last week.", NOW) == ["May 2023"]


def test_relative_dates_in_turns():
    keys = resolve_in_turn("I went yesterday and will go next Friday.", datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc))
    assert keys == ["7 May 2023 Sunday", "12 May 2023 Friday"]
    # "this Monday" in a turn: the tense of the words around it decides (said on a Wednesday)
    assert resolve_in_turn("I went to the market this Monday.", WEDNESDAY) == ["15 May 2023 Monday"]
    assert resolve_in_turn("I am seeing a play this Friday.", WEDNESDAY) == ["19 May 2023 Friday"]


def _notes(path, embedder, notes, **overrides):
    """A memory of one-turn sessions [(session id, day, text)], searched with the default retriever + overrides."""
    mem = Memory(path, embedder=embedder, retriever=get_retriever("convmem", **overrides))
    for sid, day, text in notes:
        mem.add_session({"user": "u", "session_id": sid, "started_at": f"{day}T10:00:00Z",
                         "turns": [{"speaker": "me", "role": "user", "text": text}]})
    return mem


def _baker(path, embedder, **overrides):
    return _notes(path, embedder, [(day, day, text) for day, text in (
        ("2023-05-06", "I baked bread with my neighbour."), ("2023-05-13", "I baked a cake for Ana."),
        ("2023-01-10", "My job: I work as a nurse."), ("2023-04-10", "I started a new job as a teacher."))],
        **overrides)


QUESTIONS = ["What did I bake last Saturday?", "What did I bake two weeks ago?"]


def test_time_range_and_latest_cue_change_the_ranking(tmp_path, embedder):
    plain = _baker(tmp_path / "plain.db", embedder, time_boost=0.0, order_boost=0.0)
    assert [plain.search(q, user="u", k=1, now=NOW)[0].session_id for q in QUESTIONS] != ["2023-05-13", "2023-05-06"]
    mem = _baker(tmp_path / "t.db", embedder)
    assert [mem.search(q, user="u", k=1, now=NOW)[0].session_id for q in QUESTIONS] == ["2023-05-13", "2023-05-06"]


def test_order_cues_break_ties_by_time(tmp_path, embedder):
    mem = Memory(tmp_path / "o.db", embedder=embedder)
    for day in ("2023-01-10", "2023-04-10"):
        mem.add_session({"user": "u", "session_id": day, "started_at": f"{day}T10:00:00Z",
                         "turns": [{"speaker": "me", "role": "user", "text": "I went to the climbing gym."}]})
    assert mem.search("When did I go climbing most recently?", user="u", k=1)[0].session_id == "2023-04-10"
    assert mem.search("When did I go climbing for the first time?", user="u", k=1)[0].session_id == "2023-01-10"
    said_yesterday = {"user": "u", "session_id": "s", "started_at": "2023-05-08T10:00:00Z",
                      "turns": [{"speaker": "me", "role": "user", "text": "I went to the support group yesterday."}]}
    mem.add_session(said_yesterday)
    assert mem.search("support group 7 May 2023", user="u", k=1)[0].session_id == "s"
    mem.close()


@pytest.mark.parametrize("question", [
    "What is the order of airlines I flew with from earliest to latest before today?",
    "Until today, how many books did I read?",
    "What happened prior to last Saturday?",
    "What did I do before 5 March?",
    "How many races did I run since two weeks ago?",
])
def test_a_time_expression_after_before_or_until_is_a_bound_not_the_time_asked_about(question):
    assert question_cues(question, datetime(2023, 3, 20, tzinfo=timezone.utc)).ranges == ()


def test_the_time_asked_about_is_still_a_range_when_a_bound_word_comes_later():
    cues = question_cues("What did I do last Saturday before the party?", datetime(2023, 3, 20, tzinfo=timezone.utc))
    assert [(r.start.date().isoformat(), r.text) for r in cues.ranges] == [("2023-03-18", "last Saturday")]


@pytest.mark.parametrize(
    "question, now, day",
    [
        # "this weekend" / "this Friday" asked mid-week: the days ahead, which no memory holds yet
        ("What should I cook this weekend?", WEDNESDAY, "2023-05-20"),
        ("Any plans for this Friday?", WEDNESDAY, "2023-05-19"),
        # in the past tense: the one just gone
        ("What did I do this weekend?", WEDNESDAY, "2023-05-13"),
        ("Where did I go this Monday?", WEDNESDAY, "2023-05-15"),
        # a weekend under way is itself "this weekend"
        ("What should I cook this weekend?", NOW, "2023-05-20"),
        ("What should I cook this weekend?", datetime(2023, 5, 21, 9, 0, tzinfo=timezone.utc), "2023-05-20"),
    ],
)
def test_this_weekday_is_ahead_unless_asked_in_the_past_tense(question, now, day):
    (r,) = question_cues(question, now).ranges
    assert r.start.date().isoformat() == day


def test_told_dates_are_when_a_turn_says_its_events_happened():
    said = datetime(2023, 4, 21, 16, 0, tzinfo=timezone.utc)
    days = [(r.start.date().isoformat(), r.end.date().isoformat())
            for r in told_dates("I planted tomatoes today, and yesterday I dug the bed.", said)]
    assert days == [("2023-04-21", "2023-04-21"), ("2023-04-20", "2023-04-20")]
    assert told_dates("Tomatoes like sun.", said) == []
    # calendar dates written out; without a year, the last such date before a month after the turn was said
    days = [(r.start.date().isoformat(), r.end.date().isoformat())
            for r in told_dates("I saw it on 2/15, played golf on July 17th, moved in June 2021 and fly on May 3.",
                                said)]
    assert days == [("2023-02-15", "2023-02-15"), ("2022-07-17", "2022-07-17"), ("2021-06-01", "2021-06-30"),
                    ("2023-05-03", "2023-05-03")]
    assert told_dates("Add 1/2 cup of flour; I may go on 31 February.", said) == []
    # "I just / recently did it": the week before it was said
    (r,) = told_dates("I recently walked down the aisle as a bridesmaid.", said)
    assert (r.start.date().isoformat(), r.end.date().isoformat()) == ("2023-04-14", "2023-04-21")
    assert told_dates("I just want to know which soil is best.", said) == []


_OTHERS = [("cat", "2023-02-10", "My cat is called Tom and he sleeps all day."),
           ("job", "2023-03-10", "I work night shifts as a nurse at the city hospital.")]


def _gardener(path, embedder, **overrides):
    return _notes(path, embedder, [
        ("told", "2023-05-06", "By the way, I did some gardening today: I planted twelve tomato saplings."),
        ("said", "2023-05-06", "Which gardening tools do I need for a small balcony garden?"),
        ("old", "2023-01-10", "Gardening is my favourite hobby.")] + _OTHERS, **overrides)


def test_a_turn_that_dates_its_event_inside_the_asked_range_ranks_first(tmp_path, embedder):
    question = "What gardening activity did I do two weeks ago?"
    plain = _gardener(tmp_path / "plain.db", embedder, told_date_boost=0.0)
    assert plain.search(question, user="u", k=1, now=NOW)[0].session_id == "said"
    mem = _gardener(tmp_path / "told.db", embedder)
    assert mem.search(question, user="u", k=1, now=NOW)[0].session_id == "told"
    # a range that holds every turn says nothing about which is meant: no told-date boost
    assert mem.search("What gardening activity did I do in the last ten years?", user="u", k=1,
                      now=NOW)[0].session_id == plain.search(
        "What gardening activity did I do in the last ten years?", user="u", k=1, now=NOW)[0].session_id


def test_a_turn_said_after_the_asked_month_counts_as_inside_it_when_it_dates_its_event_there(tmp_path, embedder):
    notes = [("dated", "2023-03-10", "I took my niece to the Natural History Museum on 2/8."),
             ("undated", "2023-03-12", "Can you suggest a good art gallery in the city?")] + _OTHERS
    question = "How many museums or galleries did I visit in February?"
    plain = _notes(tmp_path / "plain.db", embedder, notes, told_date_boost=0.0)
    assert plain.search(question, user="u", k=1, now=NOW)[0].session_id == "undated"
    told = _notes(tmp_path / "told.db", embedder, notes)
    assert told.search(question, user="u", k=1, now=NOW)[0].session_id == "dated"


def test_dates_at_the_calendars_edges_name_nothing_and_break_nothing(tmp_path, embedder):
    mem = _notes(tmp_path / "edge.db", embedder, [
        ("first", "0001-01-01", "I just baked bread yesterday, on 12/30, and will again tomorrow, next year."),
        ("last", "9999-12-31", "Last week I baked a cake; tomorrow and next Friday I bake more.")])
    for now in (datetime(1, 1, 1, tzinfo=timezone.utc), datetime(9999, 12, 31, tzinfo=timezone.utc), NOW):
        assert {h.session_id for h in mem.search("What did I bake last week or yesterday?", user="u", k=5,
                                                 now=now)} == {"first", "last"}
        assert mem.context("What did I bake two weeks ago?", user="u", now=now).citations
