"""Phrase keys (issue 4, key expansion without an LLM): which names, numbers and key phrases a turn yields.

Their use as dense keys is tested with the statement keys (tests/test_statement_keys.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from convmem.index.phrase_keys import phrase_texts, phrase_texts_of
from convmem.store.base import TurnRow


def test_names_numbers_and_key_phrases():
    keys = phrase_texts_of("I ran the Run for the Cure last Tuesday with Dr. Okafor's team. "
                           "Then I planted 12 new tomato saplings and signed up for a pottery class.")
    assert "Run for the Cure" in keys  # glue words inside a name
    assert "12 new tomato saplings" in keys  # a number with what it counts
    assert "pottery class" in keys  # a run of content words between stopwords
    assert "Tuesday" not in keys and "Then" not in keys  # weekdays, and the capital a sentence opens with
    assert all(k.casefold() != "i" for k in keys)
    assert phrase_texts_of("ok") == ()


def _row(i: int, speaker: str, role: str, text: str) -> TurnRow:
    when = datetime(2024, 3, 1, tzinfo=timezone.utc)
    return TurnRow(session_id="s1", turn_id=f"s1_{i + 1}", position=i, speaker=speaker, role=role, text=text,
                   timestamp=when, session_start=when, metadata={}, text_hash=f"h{i}")


def test_the_people_of_the_conversation_are_not_keys():
    text = "Thanks, Melanie! This necklace is a gift from my grandma in my home country, Sweden."
    assert "Melanie" in phrase_texts_of(text)
    rows = [_row(0, "Caroline", "user", text), _row(1, "Melanie", "user", "Sweden sounds lovely."),
            _row(2, "Assistant", "assistant", "Visit the Vasa Museum in Stockholm.")]
    texts, hashes, owners = phrase_texts(rows)
    keys = [texts[h] for h in hashes]
    assert "Sweden" in keys and "Melanie" not in keys  # a speaker of these turns
    assert "Vasa Museum" not in keys and 2 not in owners.tolist()  # assistant turns get no keys
