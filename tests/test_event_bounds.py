"""Time bounds set by an event in the memory ("before I moved to Lisbon"; issue 4, time-aware retrieval)."""

from __future__ import annotations

from convmem import Memory
from convmem.retrieve.config import get_retriever
from convmem.retrieve.events import EventBound, event_bounds


def test_event_clauses_are_read_and_date_bounds_are_left_to_the_date_rules():
    assert event_bounds("Which cafes did I like before I moved to Lisbon?") == [EventBound(True, "I moved to Lisbon")]
    assert event_bounds("How did Melanie feel after the accident?") == [EventBound(False, "the accident")]
    assert event_bounds("How many charity events did I join before the 'Run for the Cure' event?") == [
        EventBound(True, "the 'Run for the Cure' event")]
    # the clause stops where the question goes on
    assert event_bounds("How many days before my sister's wedding did I buy the dress?") == [
        EventBound(True, "my sister's wedding")]
    for dated in ("What did I buy before April 10, 2023?", "What did I read since last week?",
                  "What did I cook before Tuesday?", "Where was I two days after 3 May?"):
        assert event_bounds(dated) == [], dated
    assert event_bounds("What did I eat in Lisbon?") == []


SESSIONS = [
    ("2024-01-10", "I liked Cafe Aurora, great pasta."),
    ("2024-02-05", "I liked Cafe Brisa near the office."),
    ("2024-03-01", "Big news: I moved to Lisbon last weekend!"),
    ("2024-03-20", "I liked Cafe Tejo, amazing custard tarts."),
    ("2024-04-02", "I liked Cafe Miradouro, the view is stunning."),
    ("2024-01-20", "The plumber finally fixed the leaking sink."),  # turns that match nothing
    ("2024-03-25", "My sister's birthday is next week, I need a present."),
]


def _memory(path, on: bool) -> Memory:
    mem = Memory(path, retriever=get_retriever("convmem", dense=False, event_bounds=on))
    for i, (day, text) in enumerate(SESSIONS):
        mem.add_session({"user": "ana", "session_id": f"s{i + 1}", "started_at": f"{day}T10:00:00Z",
                         "turns": [{"speaker": "Ana", "role": "user", "text": text}]})
    return mem


def _cafes_first(mem: Memory, query: str) -> list[str]:
    """The four cafe turns, in the order the search ranks them."""
    return [h.turn_id for h in mem.search(query, user="ana", k=5) if h.turn_id not in ("s3_1", "s6_1", "s7_1")]


def test_the_asked_side_of_the_event_ranks_first(tmp_path):
    before = "Which cafes did I like before I moved to Lisbon?"
    after = "Which cafes did I like after I moved to Lisbon?"
    plain = _memory(tmp_path / "plain.db", False)
    assert _cafes_first(plain, before) == _cafes_first(plain, after)  # without it the bound word changes nothing
    mem = _memory(tmp_path / "events.db", True)
    # the move is found on 1 March: the cafes of January and February are before it, those of March and April after
    assert set(_cafes_first(mem, before)[:2]) == {"s1_1", "s2_1"}
    assert set(_cafes_first(mem, after)[:2]) == {"s4_1", "s5_1"}
    assert get_retriever("convmem").event_bounds and not get_retriever("convmem-no-events").event_bounds
    assert not get_retriever("convmem-no-time").event_bounds
