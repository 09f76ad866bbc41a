"""Answers inherit their question (issue 4, LongMemEval's round value between people): a person's reply to another
person's question gets `answer_weight` x the question's score on top of its own."""

from __future__ import annotations

from convmem import Memory
from convmem.retrieve.config import get_retriever

DIALOGUE = [("Mel", "Hey Caro! What are your plans for the summer?"),
            ("Caro", "Researching adoption agencies - it has been a dream of mine for years."),
            ("Mel", "That is wonderful news. We are off camping with the kids in July."),
            ("Caro", "Camping sounds fun! Send me photos of the lake."),
            ("Mel", "I will! Our summer trip last year was to the mountains, the plans fell through twice."),
            ("Caro", "Mountains are my favourite.")]


def _memory(path, weight: float, turns=DIALOGUE, roles=None) -> Memory:
    mem = Memory(path, retriever=get_retriever("convmem", dense=False, answer_weight=weight))
    mem.add_session({"user": "u", "session_id": "s1", "started_at": "2024-03-01T10:00:00Z",
                     "turns": [{"speaker": who, "text": text, **({"role": roles[i]} if roles else {})}
                               for i, (who, text) in enumerate(turns)]})
    return mem


def test_the_reply_to_a_question_ranks_with_it(tmp_path):
    query = "What are Caro's plans for the summer?"  # its words are in Mel's question; the answer is Caro's reply
    plain = {h.turn_id: h.score for h in _memory(tmp_path / "plain.db", 0.0).search(query, user="u", k=6)}
    # without it the reply only gets the neighbour share and ties with a turn that merely mentions summer plans
    assert abs(plain["s1_2"] - plain["s1_5"]) < 0.01
    mem = _memory(tmp_path / "answers.db", 0.85)
    assert mem.index("u").answers.tolist() == [False, True, False, False, False, False]
    hits = mem.search(query, user="u", k=6)
    assert [h.turn_id for h in hits[:2]] == ["s1_1", "s1_2"] and hits[1].score > plain["s1_5"] + 0.2
    # a reply with no relevance of its own stays below the question that holds the words searched for
    assert [h.turn_id for h in mem.search("summer", user="u", k=2)] == ["s1_1", "s1_2"]
    assert get_retriever("convmem").answer_weight == 0.85 and get_retriever("convmem-no-answers").answer_weight == 0


def test_a_chat_with_an_assistant_has_no_answers(tmp_path):
    """A user's question to an assistant is a request and the reply advice: the assistant prior's business."""
    turns = [("user", "Can you suggest a gift for my sister? She loves hiking."),
             ("assistant", "A lightweight trekking pole set or a good headlamp would suit her."),
             ("user", "What about something for under 30 dollars?"),
             ("assistant", "A trail guidebook for her region.")]
    mem = _memory(tmp_path / "chat.db", 0.85, turns, roles=["user", "assistant", "user", "assistant"])
    assert not mem.index("u").answers.any()
