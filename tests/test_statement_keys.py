"""Extra dense keys of a turn (issue 4, key expansion without an LLM): its first-person statements (statement keys)
and its names, numbers and key phrases (phrase keys, `tests/test_phrase_keys.py` for the extraction)."""

from __future__ import annotations

from convmem import Memory
from convmem.ingest import parse_sessions
from convmem.index.phrase_keys import phrase_texts_of
from convmem.index.statement_keys import statement_sentences
from convmem.retrieve.config import get_retriever

REQUEST_WITH_FACT = ("Can you recommend a laptop for video editing under 1500 dollars? I edit 4K footage and need "
                     "plenty of RAM and a fast graphics card. By the way, I adopted a rescue greyhound last weekend.")


def test_statement_sentences_keep_what_the_speaker_states_about_themselves():
    assert statement_sentences(REQUEST_WITH_FACT) == (
        "I edit 4K footage and need plenty of RAM and a fast graphics card.", "I adopted a rescue greyhound last weekend.")
    assert statement_sentences(
        "I'm looking for tips on keeping tomato plants healthy. By the way, I just planted 12 new tomato saplings "
        "today and I'm excited to see them grow.") == (
        "I just planted 12 new tomato saplings today and I'm excited to see them grow.",)
    # questions, requests, plans and hypotheticals are not statements; nor is a sentence without a first person
    assert statement_sentences("What did you paint? I'd love to see it. If I moved to Lisbon I would surf. "
                               "The weather is nice.") == ()
    assert statement_sentences("I went to a support group yesterday.") == ()  # one sentence: its vector is the turn's


FESTIVAL = ("Can you recommend a laptop for video editing under 1500 dollars? It needs plenty of RAM and a fast "
            "graphics card for the Sundance Film Festival submission.")


def _memory(path, on: bool, first: str = REQUEST_WITH_FACT, keys: str = "statement_keys") -> tuple[Memory, int]:
    """Three one-turn sessions of Ana's, the first `first`, with the `keys` kind of keys on or off."""
    options = {"statement_keys": False, keys: on}
    mem = Memory(path, embedder="minilm", retriever=get_retriever("convmem", **options))
    texts = [first,
             "What should I know before getting a pet for a small apartment? Which animals are allowed in rentals?",
             "I'm trying to pick a new phone plan with more data for streaming."]
    report = mem.add_sessions([parse_sessions(
        {"user": "ana", "session_id": f"s{i + 1}", "started_at": f"2024-03-0{i + 1}T10:00:00Z",
         "turns": [{"speaker": "Ana", "role": "user", "text": text}]}, "convmem")[0] for i, text in enumerate(texts)])
    return mem, report.texts_embedded


def test_a_fact_inside_a_request_is_found_by_its_own_key(tmp_path):
    query = "What kind of dog do I have?"
    plain, embedded = _memory(tmp_path / "plain.db", on=False)
    assert embedded == 3
    # the whole turn's vector is about laptops: the question about pets wins
    assert plain.search(query, user="ana", k=1)[0].turn_id == "s2_1"
    assert plain.index("ana").key_vectors is None
    keyed, embedded = _memory(tmp_path / "keyed.db", on=True)
    assert embedded == 5  # the two keys are embedded at import, with the turns
    index = keyed.index("ana")
    assert len(index.key_vectors) == 2 and index.key_owner.tolist() == [0, 0]  # both of turn s1_1
    assert keyed.search(query, user="ana", k=1)[0].turn_id == "s1_1"
    assert get_retriever("convmem").statement_keys and not get_retriever("convmem-no-keys").statement_keys
    assert not get_retriever("dense").statement_keys


def test_a_name_inside_a_request_is_matched_by_its_own_phrase_key(tmp_path):
    plain, embedded = _memory(tmp_path / "plain.db", on=False, first=FESTIVAL, keys="phrase_keys")
    assert embedded == 3 and plain.index("ana").key_vectors is None
    keyed, embedded = _memory(tmp_path / "keyed.db", on=True, first=FESTIVAL, keys="phrase_keys")
    index = keyed.index("ana")
    assert embedded == 3 + len(index.key_vectors)  # the keys are embedded at import, with the turns
    assert index.key_owner.tolist().count(0) == len(phrase_texts_of(FESTIVAL))
    query = plain.embed_query("Which film festival am I entering?")
    before, after = plain.index("ana").cosines(query), index.cosines(query)
    # the turn is about a laptop; its key "Sundance Film Festival" is what the question is about
    assert after[0] > before[0] + 0.2
    assert (after >= before - 1e-6).all()  # a key can only raise its turn's score: the best of its keys
    assert get_retriever("convmem-phrases").phrase_keys and not get_retriever("convmem").phrase_keys
