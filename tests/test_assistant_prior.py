"""The assistant prior (`RetrievalConfig.assistant_weight`, convmem.retrieve.assistant)."""

from __future__ import annotations

import numpy as np
import pytest

from convmem import Memory
from convmem.retrieve.assistant import asks_assistant, weigh_assistant
from convmem.retrieve.config import get_retriever


@pytest.mark.parametrize("question, asks", [
    ("What was the name of the hiking trail you recommended?", True),
    ("Can you remind me what the 7th job in the list was?", True),
    ("I was looking back at our previous chat: how many times did the Chiefs play?", True),
    ("Which traditional game did you say was often played?", True),
    ("Can you suggest a hotel for my trip to Miami?", False),
    ("How many fitness classes do I attend in a typical week?", False),
    ("What did I buy for my sister's birthday?", False),
])
def test_questions_about_the_conversation_are_recognised(question, asks):
    assert asks_assistant(question) is asks


def test_weigh_assistant_scales_only_assistant_turns_and_only_without_the_cue():
    scores = np.array([1.0, 0.8, 0.6])
    assistant = np.array([False, True, False])
    assert weigh_assistant(scores, assistant, "what did I bake?", 0.5).tolist() == [1.0, 0.4, 0.6]
    assert weigh_assistant(scores, assistant, "what cake did you suggest?", 0.5).tolist() == [1.0, 0.8, 0.6]
    assert weigh_assistant(scores, np.zeros(3, bool), "what did I bake?", 0.5).tolist() == [1.0, 0.8, 0.6]


def _memory(path, weight: float) -> Memory:
    mem = Memory(path, embedder="minilm", retriever=get_retriever("convmem", assistant_weight=weight))
    mem.add_session({"user": "ana", "session_id": "s1", "started_at": "2024-03-01T10:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": "I baked a lemon cake for my sister's birthday yesterday."},
        {"speaker": "Assistant", "role": "assistant",
         "text": "Lemon cake is a lovely birthday cake. For your next birthday cake, try a chocolate cake with "
                 "ganache, a carrot cake with cream cheese frosting, or a classic sponge cake with berries."},
    ]})
    for i in range(6):  # unrelated sessions, so the lexical index has a real vocabulary
        mem.add_session({"user": "ana", "session_id": f"x{i}", "started_at": f"2024-02-0{i + 1}T10:00:00Z",
                         "turns": [{"speaker": "Ana", "role": "user", "text": f"My commute took {20 + i} minutes."},
                                   {"speaker": "Assistant", "role": "assistant", "text": "Traffic varies a lot."}]})
    return mem


def test_the_users_own_statement_outranks_a_topical_reply(tmp_path):
    question = "Which cake did I make?"
    plain = _memory(tmp_path / "plain.db", 1.0)
    assert plain.search(question, user="ana", k=1)[0].role == "assistant"  # the reply says "cake" six times
    mem = _memory(tmp_path / "prior.db", 0.5)
    assert mem.search(question, user="ana", k=1)[0].role == "user"
    # a question about what the assistant said: the reply competes on equal terms again
    assert mem.search("Which birthday cakes did you suggest?", user="ana", k=1)[0].role == "assistant"


def test_the_default_has_the_prior_and_the_ablation_switches_it_off():
    assert get_retriever("convmem").assistant_weight == 0.6
    assert get_retriever("convmem-no-assistant-prior").assistant_weight == 1.0
    assert get_retriever("hybrid-weighted").assistant_weight == 1.0


def test_a_reply_that_alone_matches_still_ranks_above_the_turn_that_borrows_from_it(tmp_path):
    mem = Memory(tmp_path / "m.db", embedder="minilm")  # the default weight, above the neighbour share (0.5)
    mem.add_session({"user": "ana", "session_id": "s1", "started_at": "2024-03-01T10:00:00Z", "turns": [
        {"speaker": "Ana", "role": "user", "text": "Any ideas for the weekend?"},
        {"speaker": "Assistant", "role": "assistant", "text": "Try the ganache workshop at Rua Augusta."},
    ]})
    assert mem.search("ganache workshop Rua Augusta", user="ana", k=1)[0].role == "assistant"
