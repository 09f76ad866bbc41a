"""Fact keys: each stored fact of a turn, phrased as a short sentence, embedded as an extra dense key of the turn
(LongMemEval's "K = V + fact" key expansion; `RetrievalConfig.fact_keys`).

LongMemEval (Wu et al., 2024; its study of memory indexing) expands each value (a turn or session) with keys: its
best variant adds the facts an LLM extracted from the session as extra keys pointing at the value. convmem stores
facts per user with the turn they came from (the rules at import, the chat model with `facts_extractor="llm"`,
`Memory.reextract` for stored history); with `fact_keys` each of them is one more key of its turn, beside the
statement keys, and a turn's dense score is the best cosine among its own vector and all its keys'
(`statement_keys.best_of_keys`).

The key is a sentence, not the bare triple: MiniLM puts "My job is nurse" closer to "What is my job?" than
"user job nurse" (0.642 vs 0.528), and "I live in Lisbon" closer to "Where do I live?" than "user lives in Lisbon"
(0.461 vs 0.317; docs/retrieval.md). So the rules' verb attributes read as verbs ("Ana lives in Lisbon", "Ana
started pottery", "Ana bought a bike"), the others as "Ana's favorite food is sushi", and a subject that is a role
rather than a name ("user", LongMemEval's speaker) becomes the first person, as the questions ask ("What is my ...").
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from convmem.models import Fact
from convmem.store.base import TurnRow, text_hash

#: an attribute ending with one of these is a verb phrase ("lives in", "works at", "switched to")
_PREPOSITIONS = frozenset("in at to for from with on of as by into".split())
#: speakers that are roles, not names: their facts are phrased in the first person
_ROLE_SUBJECTS = frozenset({"user", "human", "me", "i"})


def _first_person_verb(word: str) -> str:
    """'lives' -> 'live', 'works' -> 'work'; other words unchanged."""
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3 else word


def fact_key_text(fact: Fact) -> str:
    """The sentence a fact is embedded as (see the module docstring)."""
    attribute = " ".join(fact.attribute.replace("_", " ").split())
    value = " ".join(str(fact.value).split())
    first = fact.subject.strip().casefold() in _ROLE_SUBJECTS
    subject = "I" if first else " ".join(fact.subject.split())
    words = attribute.split()
    if not words:
        return f"{subject} {value}"
    if value.casefold() in ("started", "stopped"):  # the rules' activity facts: the attribute is the activity
        return f"{subject} {value.casefold()} {attribute}"
    if attribute == "latest purchase":
        return f"{subject} bought {value}"
    if words[-1] in _PREPOSITIONS:
        verb = " ".join([_first_person_verb(words[0]), *words[1:]]) if first else attribute
        return f"{subject} {verb} {value}"
    owner = "My" if first else f"{subject}'s"
    return f"{owner} {attribute} is {value}"


def fact_texts(facts: Iterable[Fact]) -> dict[str, str]:
    """{hash: key text} of some facts (what `embed_missing` takes)."""
    return {text_hash(t): t for t in map(fact_key_text, facts)}


def fact_key_texts(rows: Sequence[TurnRow], facts: Iterable[Fact]) -> tuple[dict[str, str], list[str], np.ndarray]:
    """The fact keys of a user's turns, like `statement_keys.statement_texts`: ({hash: text} to embed, the hash of
    each key, the turn each key belongs to (position in `rows`)). A fact whose turn is not among `rows` (its session
    was forgotten or replaced) gives no key; a turn gets each distinct text once."""
    where = {(r.session_id, r.turn_id): i for i, r in enumerate(rows)}
    texts: dict[str, str] = {}
    seen: set[tuple[int, str]] = set()
    hashes: list[str] = []
    owners: list[int] = []
    for fact in facts:
        i = where.get((fact.session_id, fact.turn_id))
        if i is None:
            continue
        text = fact_key_text(fact)
        h = text_hash(text)
        if (i, h) in seen:
            continue
        seen.add((i, h))
        texts[h] = text
        hashes.append(h)
        owners.append(i)
    return texts, hashes, np.asarray(owners, dtype=np.int64)
