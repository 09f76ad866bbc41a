"""Round values (`RetrievalConfig.value="round"`, convmem.index.rounds)."""

from __future__ import annotations

from convmem import Memory
from convmem.index.rounds import round_of
from convmem.retrieve.config import get_retriever


def _add(mem: Memory) -> None:
    mem.add_session({"user": "ana", "session_id": "chat", "started_at": "2024-03-01T10:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": "Which trail should I take this weekend?"},
        {"speaker": "Bot", "role": "assistant", "text": "Take the Ridge Loop in Sintra: four hours, great views."},
        {"speaker": "Ana", "role": "user", "text": "Thanks! Also, my cat Mia is sick."},
        {"speaker": "Bot", "role": "assistant", "text": "Sorry to hear that; a vet visit is wise."},
    ]})
    mem.add_session({"user": "ana", "session_id": "talk", "started_at": "2024-03-02T10:00:00Z", "turns": [
        {"speaker": "Caroline", "text": "I went to a pride parade."},
        {"speaker": "Melanie", "text": "Wow! How was it?"},
        {"speaker": "Melanie", "text": "I went camping too."},
        {"speaker": "Caroline", "text": "It was amazing."},
    ]})
    mem.add_session({"user": "ana", "session_id": "notes", "started_at": "2024-03-03T10:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": "Buy milk."},
        {"speaker": "Ana", "role": "user", "text": "Call the plumber."},
    ]})


def test_a_round_is_a_turn_of_the_sessions_opener_and_the_replies_up_to_their_next_turn(tmp_path):
    mem = Memory(tmp_path / "m.db", embedder="minilm")
    _add(mem)
    index = mem.index("ana")
    rounds = round_of(index).tolist()
    # chat: (user, assistant) x 2; talk: Caroline opens, Melanie's two turns join her round; notes: one per turn
    assert rounds == [0, 0, 1, 1, 2, 2, 2, 3, 4, 5]


def test_round_values_retrieve_the_question_and_its_answer_together(tmp_path):
    question = "Which trail was recommended?"  # the user's turn matches; the reply names the trail
    turns = Memory(tmp_path / "t.db", embedder="minilm", retriever="convmem-no-neighbours")  # turn values
    rounds = Memory(tmp_path / "r.db", embedder="minilm", retriever="convmem-round")  # the same, round values
    _add(turns)
    _add(rounds)
    assert [(h.session_id, h.position) for h in turns.search(question, user="ana", k=2)][1] != ("chat", 1)
    assert [(h.session_id, h.position) for h in rounds.search(question, user="ana", k=2)] == [("chat", 0),
                                                                                                ("chat", 1)]


def test_round_retrievers_are_registered_and_off_by_default():
    assert get_retriever("convmem").value == "turn"
    assert get_retriever("convmem-round").value == "round"
    assert get_retriever("convmem-round").neighbour_weights == ()
    assert get_retriever("convmem-round-neighbours").neighbour_weights == get_retriever("convmem").neighbour_weights
