"""The second stage (issue 4, "a second-stage reranker if one can be had offline"): a local language model re-scores
the first stage's best turns by the likelihood of the question after each (`convmem.retrieve.rerank`)."""

from __future__ import annotations

import numpy as np
import pytest

from convmem import Memory
from convmem.errors import InputError
from convmem.retrieve.config import get_retriever
from convmem.retrieve.rerank import LikelihoodCache, rerank

TURNS = ["We drove to the coast on Saturday and the traffic was awful.",
         "My dog is called Biscuit, a golden retriever I adopted in May.",
         "The new oven at work keeps beeping for no reason.",
         "I watched a documentary about octopuses last night.",
         "Biscuit chewed through the garden hose again, so I bought a new one."]


class Preferring:
    """A stand-in model that finds the question likely after passages containing `word` (and counts its calls)."""

    def __init__(self, word: str):
        self.word, self.calls = word, []

    def question_likelihood(self, question, passages):
        self.calls.append(list(passages))
        return np.array([-1.0 if self.word in p else -5.0 for p in passages])


def _memory(path, **overrides) -> Memory:
    mem = Memory(path, retriever=get_retriever("convmem", dense=False, **overrides))
    mem.add_session({"user": "u", "session_id": "s1", "started_at": "2024-06-01T10:00:00Z",
                     "turns": [{"speaker": "Ana", "role": "user", "text": t} for t in TURNS]})
    return mem


def test_the_best_turns_are_reordered_and_the_rest_keep_their_scores(tmp_path):
    index = _memory(tmp_path / "m.db").index("u")
    scores = np.array([0.9, 0.5, 0.8, 0.2, 0.1])
    model = Preferring("Biscuit")
    out = rerank(index, scores, "What is my dog called?", model, depth=3, weight=1.0, counter=_Words())
    assert model.calls and len(model.calls[0]) == 3  # only the 3 best were read
    assert np.argsort(-out, kind="stable").tolist()[:3] == [0, 1, 2]  # turn 1 (Biscuit) climbed past turn 2
    assert out[1] > out[2] and out[0] > out[1]  # the first stage still counts: turn 0 led by far
    assert out[[3, 4]].tolist() == [0.2, 0.1]  # not re-scored
    assert out[[0, 1, 2]].min() >= 0.5 and out[[0, 1, 2]].max() <= 0.9  # inside the range they had
    strong = rerank(index, scores, "What is my dog called?", model, depth=3, weight=5.0, counter=_Words())
    assert int(np.argmax(strong)) == 1  # a heavier second stage puts its choice first
    assert rerank(index, scores, "x", model, depth=3, weight=0.0, counter=_Words()) is scores
    assert rerank(index, scores, "x", model, depth=1, weight=1.0, counter=_Words()) is scores


def test_the_cache_scores_each_question_and_passage_once():
    model, cache = Preferring("dog"), LikelihoodCache(size=3)
    assert cache.scores(model, "q", ["a dog", "a cat"]).tolist() == [-1.0, -5.0]
    assert cache.scores(model, "q", ["a cat", "the dog", "a dog"]).tolist() == [-5.0, -1.0, -1.0]
    assert model.calls == [["a dog", "a cat"], ["the dog"]]
    cache.scores(model, "q", ["x", "y"])  # evicts the two least recently used: "a cat", "a dog"
    assert cache.scores(model, "q", ["the dog", "a cat"]).tolist() == [-1.0, -5.0]
    assert model.calls[-1] == ["a cat"]


def test_search_with_the_second_stage_uses_the_model_on_the_best_turns(tmp_path):
    mem = _memory(tmp_path / "m.db", rerank="lm", rerank_depth=4, rerank_weight=5.0)
    model = Preferring("garden hose")
    mem._reranker = model  # the stand-in instead of SmolLM2
    plain = [h.turn_id for h in _memory(tmp_path / "p.db").search("What did Biscuit do?", user="u", k=5)]
    hits = [h.turn_id for h in mem.search("What did Biscuit do?", user="u", k=5)]
    assert sorted(hits) == sorted(plain) and hits[0] == "s1_5" and plain[0] == "s1_2"
    mem.context("What did Biscuit do?", user="u", budget_tokens=300)
    assert len(model.calls) == 1  # the context re-used the cached likelihoods


def test_an_unknown_second_stage_is_refused(tmp_path):
    with pytest.raises(InputError, match="rerank must be one of"):
        Memory(tmp_path / "m.db", retriever=get_retriever("convmem", rerank="cross-encoder"))
    assert not (tmp_path / "m.db").exists()
    assert get_retriever("convmem").rerank == "none" and get_retriever("convmem-rerank").rerank == "lm"


def test_the_local_model_finds_the_question_likelier_after_the_passage_that_answers_it():
    """SmolLM2-135M (packaged, offline) as the scorer: the real thing the design claims."""
    from convmem.providers.llm_local import LocalTransformers

    model = LocalTransformers(threads=2)
    scores = model.question_likelihood("What is the name of my dog?", [
        "The weather in Lisbon was sunny all week and the beaches were full.",
        "My dog is called Biscuit, a golden retriever I adopted in May.",
        "I need to renew my passport before the trip to Japan."])
    assert scores.shape == (3,) and np.all(scores < 0)
    assert int(np.argmax(scores)) == 1
    # batching does not change a passage's score
    alone = model.question_likelihood("What is the name of my dog?",
                                      ["My dog is called Biscuit, a golden retriever I adopted in May."])
    assert abs(alone[0] - scores[1]) < 1e-3


class _Words:
    def count(self, text: str) -> int:
        return len(text.split())
