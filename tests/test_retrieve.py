"""Retrieval steps that depend on the shape of a conversation: neighbours in dialogues, sessions as documents."""

from __future__ import annotations

import numpy as np

from convmem import Memory
from convmem.retrieve.config import get_retriever
from convmem.retrieve.search import rank, session_doc_scores, turn_mask

T0 = "2024-03-01T10:00:00Z"


def _session(sid: str, turns: list[tuple[str, str]], day: int = 1) -> dict:
    return {"user": "ana", "session_id": sid, "started_at": f"2024-03-{day:02d}T10:00:00Z",
            "turns": [{"speaker": spk, "role": "user" if spk == "Ana" else "assistant", "text": text}
                      for spk, text in turns]}


def _add(mem: Memory, sessions: list[dict]) -> None:
    for s in sessions:
        mem.add_session(s)


def _lexical_memory(tmp_path, **overrides) -> Memory:
    return Memory(tmp_path / "m.db", embedder="minilm", retriever=get_retriever("convmem", dense=False, **overrides))


def test_neighbours_spread_inside_dialogues_only(tmp_path):
    mem = _lexical_memory(tmp_path)
    _add(mem, [
        _session("dialogue", [("Ana", "Which vaccine do I need for Peru?"), ("Bot", "Yellow fever, ten days ahead.")]),
        _session("notes", [("Ana", "Which vaccine do I need for Peru?"), ("Ana", "Pick up the dry cleaning.")], 2),
    ])
    index, scores = mem.scores("vaccine for Peru", user="ana")
    by_id = dict(zip((r.turn_id for r in index.rows), scores))
    # the reply shares no word with the query, yet it is where the question is answered
    assert by_id["dialogue_2"] > 0
    # in a one-speaker session the next message is a separate statement: no credit from its neighbour
    assert by_id["notes_2"] == 0
    assert index.dialogue.tolist() == [True, True, False, False]


def test_a_session_is_also_scored_as_one_document(tmp_path):
    mem = _lexical_memory(tmp_path)
    _add(mem, [
        _session("one-word", [("Ana", "kayak kayak kayak, what a kayak"), ("Bot", "Sounds fun.")]),
        _session("both", [("Ana", "I finally bought the kayak."), ("Bot", "Great!"),
                          ("Ana", "And a carbon paddle for it.")], 2),
        _session("other", [("Ana", "Lunch was nice."), ("Bot", "Good.")], 3),
    ])
    index = mem.index("ana")
    docs = session_doc_scores(index, "kayak carbon paddle", None, mem.retriever)
    assert index.session_ids[int(np.argmax(docs))] == "both" and docs[index.session_ids.index("other")] == 0
    scores = np.zeros(len(index.rows))
    scores[0] = 1.0  # suppose the single best turn is in "one-word", a close second in "both"
    scores[[r.turn_id for r in index.rows].index("both_3")] = 0.8
    assert docs[index.session_ids.index("one-word")] < 0.5
    mask = turn_mask(index)
    alone = rank(index, scores, mask, k=3, granularity="session")
    assert alone[0].session_id == "one-word"
    with_docs = rank(index, scores, mask, k=3, granularity="session", doc_scores=docs, doc_weight=0.5)
    assert with_docs[0].session_id == "both"  # the whole session matches the whole question
    # the hit of a session is still its best turn
    assert with_docs[0].turn_id in {r.turn_id for r in index.rows if r.session_id == "both"}


def test_session_granularity_uses_its_own_weights(tmp_path):
    mem = Memory(tmp_path / "m.db", embedder="minilm")
    _add(mem, [
        _session("kayak", [("Ana", "I bought a kayak and a carbon paddle."), ("Bot", "Enjoy the river.")]),
        _session("lunch", [("Ana", "Lunch was nice."), ("Bot", "Good.")], 2),
    ])
    _, turn_scores = mem.scores("paddle boat", user="ana")
    _, session_scores = mem.scores("paddle boat", user="ana", granularity="session")
    assert not np.allclose(turn_scores, session_scores)  # dense share 0.7 for sessions, 0.4 for turns
    hits = mem.search("paddle boat", user="ana", k=2, granularity="session")
    assert [h.session_id for h in hits] == ["kayak", "lunch"]
    plain = Memory(tmp_path / "m.db", embedder="minilm", retriever="convmem-no-session-doc")
    assert plain.search("paddle boat", user="ana", k=1, granularity="session")[0].session_id == "kayak"


def test_diversify_lets_other_sessions_into_the_top():
    from convmem.retrieve.search import diversify

    scores = np.array([1.0, 0.95, 0.9, 0.5, 0.4])
    sessions = np.array([0, 0, 0, 1, 2])
    order = np.argsort(-scores, kind="stable")
    assert diversify(order, scores, sessions, 1.0, 3)[:3] == [0, 1, 2]
    # 0.9 * 0.5**2 < 0.5: after two picks from session 0, session 1's turn comes before its third
    top = diversify(order, scores, sessions, 0.5, 3)
    assert top[:3] == [0, 3, 1] and sorted(top) == [0, 1, 2, 3, 4]


def test_two_stage_adds_the_session_score_to_its_turns(tmp_path):
    mem = _lexical_memory(tmp_path)
    _add(mem, [
        _session("trip", [("Ana", "We booked the Lisbon flights."), ("Bot", "Nice."), ("Ana", "And a hotel too.")]),
        _session("work", [("Ana", "The hotel budget report is late."), ("Bot", "Ok.")], 2),
    ])
    two = _lexical_memory(tmp_path, session_prior=0.3)
    index, plain = mem.scores("Lisbon hotel", user="ana")
    _, staged = two.scores("Lisbon hotel", user="ana")
    gain = dict(zip((r.turn_id for r in index.rows), staged - plain))
    # every turn of the session that matches the whole question gains more than the other session's turns
    assert min(gain["trip_1"], gain["trip_3"]) > max(gain["work_1"], gain["work_2"])


def test_a_possessive_names_the_speaker(tmp_path):
    from convmem.retrieve.search import boost_named_speakers

    mem = _lexical_memory(tmp_path)
    _add(mem, [_session("s", [("Ana", "I adopted a cat."), ("Bot", "Lovely.")])])
    index = mem.index("ana")
    ones = np.ones(len(index.rows))
    for query in ("What is Ana's cat called?", "What is Ana\u2019s cat called?", "What did Ana adopt?"):
        assert boost_named_speakers(index, query, ones, 0.2).tolist() == [1.2, 1.0], query
    assert boost_named_speakers(index, "Anas and Bots", ones, 0.2).tolist() == [1.0, 1.0]


def _updates_memory(tmp_path, **overrides) -> Memory:
    tmp_path.mkdir()
    mem = Memory(tmp_path / "u.db", embedder="minilm", retriever=get_retriever("convmem", **overrides))
    _add(mem, [
        _session("march", [("Ana", "I have finished 4 paintings in my class."), ("Bot", "Well done!")], 1),
        _session("lunch", [("Ana", "Lunch with Tom was nice."), ("Bot", "Good.")], 5),
        _session("april", [("Ana", "So far I have finished 5 paintings in my class."), ("Bot", "Great!")], 20),
    ])
    return mem


def test_the_latest_statement_of_a_thing_ranks_first(tmp_path):
    question = "How many paintings have I finished?"
    plain = _updates_memory(tmp_path / "plain", update_similarity=0.0)
    assert [h.session_id for h in plain.search(question, user="ana", k=2)] == ["march", "april"]  # wording wins
    mem = _updates_memory(tmp_path / "updates")
    assert [h.session_id for h in mem.search(question, user="ana", k=2)] == ["april", "march"]
    assert [h.session_id for h in mem.search(question, user="ana", k=2, granularity="session")] == ["april", "march"]
    # a later statement that matches much worse than the best one does not displace it
    strict = _updates_memory(tmp_path / "strict", update_closeness=0.99)
    assert [h.session_id for h in strict.search(question, user="ana", k=2)] == ["march", "april"]
    # "the first time" asks for the earliest statement
    first = "How many paintings had I finished the first time I told you?"
    assert [h.session_id for h in mem.search(first, user="ana", k=2)] == ["march", "april"]
    # the context packs the latest statement first too: with room for one turn, it is the April one
    ctx = mem.context(question, user="ana", budget_tokens=120, instructions=False)
    assert "5 paintings" in ctx.text and "4 paintings" not in ctx.text
    assert "4 paintings" in plain.context(question, user="ana", budget_tokens=120, instructions=False).text


def test_order_updates_moves_only_similar_statements_from_other_sessions():
    from types import SimpleNamespace

    from convmem.retrieve.updates import order_updates

    same, other = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    index = SimpleNamespace(vectors=np.array([same, other, same, same, same]),
                            timestamps=np.array([1.0, 2.0, 3.0, 3.0, 9.0]),
                            session_index=np.array([0, 1, 2, 2, 3]))
    # 4, 2 and 3 restate 0 later: newest first; 1 (another subject) keeps its place after them
    assert order_updates(index, [0, 1, 2, 3, 4], similarity=0.5) == [4, 2, 3, 0, 1]
    assert order_updates(index, [0, 1, 2, 3, 4], similarity=0.5, prefer="first") == [0, 1, 2, 3, 4]
    assert order_updates(index, [4, 1, 0], similarity=0.5, prefer="first") == [0, 4, 1]
    assert order_updates(index, [0, 1, 2, 3, 4], similarity=0.0) == [0, 1, 2, 3, 4]  # off
    assert order_updates(index, [0, 1, 2, 3, 4], similarity=0.5, top=2) == [0, 1, 2, 3, 4]  # only the head
    # with scores: only a statement scoring at least `closeness` x the other's moves ahead of it
    scores = [1.0, 0.9, 0.5, 0.5, 0.95]
    assert order_updates(index, [0, 1, 2, 3, 4], similarity=0.5, scores=scores, closeness=0.9) == [4, 0, 1, 2, 3]
