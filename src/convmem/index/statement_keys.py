"""Statement keys: the sentences of a turn in which the speaker states something about themselves, embedded on
their own as extra dense keys of the turn (key expansion without an LLM, issue 4).

A user message often wraps one personal fact in a request: "I'm looking for tips on keeping tomato plants healthy.
By the way, I just planted 12 new tomato saplings today." The request is what the turn's vector is about; the fact
is what a later question asks for ("What gardening-related activity did I do two weeks ago?"). The statement
sentence's own vector is close to that question where the whole turn's is not. With the keys on, a turn's dense
score is the best cosine among its own vector and its statement vectors (one value, several keys).

A sentence is a statement here when it has a first-person word (I, my, me, we, our), is not a question, does not
ask for something ("can you", "I'm looking for", "any tips", "I'd like"), and nothing before its first-person word
makes it hypothetical or reported (the fact extractor's gate, `convmem.extract.text`). Only turns of people
count (not assistant or system turns). A turn that is one sentence gets no key: its own vector already is it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np

from convmem.extract.text import OPENER, asserted_before, is_question, is_user_role, sentences
from convmem.store.base import TurnRow, text_hash

_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|my|me|we|we've|we're|our|mine|myself)\b", re.I)
#: requests, wishes and plans: what the speaker asks for or intends, not something they state about themselves
_REQUEST = re.compile(
    r"\b(?:can|could|would|will) you\b|\bplease\b|\bthanks?\b|\bthank you\b|\bhelp me\b|\bany (?:tips|ideas|advice|"
    r"suggestions|recommendations)\b|\b(?:recommend|suggest)\b|\blet me know\b|"
    r"\bI(?:'m| am| was)? (?:(?:just |also |really |currently )*)(?:looking (?:for|into|to)|wondering|thinking|"
    r"planning|considering|hoping|trying to (?:find|decide|figure|learn|get)|interested in|curious)\b|"
    r"\bI(?:'d| would| want| wanted| need| will|'ll)\b",
    re.I,
)


@lru_cache(maxsize=65536)
def statement_sentences(text: str) -> tuple[str, ...]:
    """The sentences of a turn that state something about the speaker (see the module's docstring); () for a
    turn of one sentence. Cached by text, so rebuilding a user's index does not split the old turns again."""
    parts = sentences(text)
    if len(parts) < 2:
        return ()
    out = []
    for sentence in parts:
        s = OPENER.sub("", sentence)
        first = _FIRST_PERSON.search(s)
        if first is None or is_question(s) or _REQUEST.search(s) or not asserted_before(s, first.start()):
            continue
        out.append(s)
    return tuple(out)


def statement_texts(rows: Sequence[TurnRow]) -> tuple[dict[str, str], list[str], np.ndarray]:
    """The statement keys of some turns: ({hash: sentence} to embed, the hash of each key, the turn each key
    belongs to (position in `rows`))."""
    texts: dict[str, str] = {}
    hashes: list[str] = []
    owners: list[int] = []
    for i, row in enumerate(rows):
        if not is_user_role(row.role):
            continue
        for s in statement_sentences(row.text):
            h = text_hash(s)
            texts[h] = s
            hashes.append(h)
            owners.append(i)
    return texts, hashes, np.asarray(owners, dtype=np.int64)


def best_of_keys(turn_cosines: np.ndarray, key_cosines: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Each turn's dense score: the best of its own cosine and its keys' cosines."""
    out = turn_cosines.copy()
    if len(owners):
        np.maximum.at(out, owners, key_cosines.astype(out.dtype, copy=False))
    return out
