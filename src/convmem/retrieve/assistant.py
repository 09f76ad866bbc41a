"""The assistant prior: in a chat memory, what the user said about themselves is what later questions ask for;
the assistant's replies are mostly advice it could give again. Turns by the assistant score `assistant_weight`
times their relevance (after neighbour spreading), unless the question asks about the conversation itself ("you
recommended", "can you remind me", "our previous chat"), when they compete on equal terms.

Why: with every turn indexed, the assistant's long, topical replies fill a context. On LongMemEval_S (dev), with
every turn of the history in the memory, a 2,000-token context held all the evidence of 0.856 of the questions with
the replies at full weight and 0.916-0.928 with them at 0.3-0.6 (docs/retrieval.md). The default, 0.6, is above
the share a turn lends its neighbour (0.5), so a reply that alone matches a query still ranks above the user turn
that only borrows its score. Memories with no assistant role (LoCoMo's two people, notes) are unaffected, as is
the protocol's user-turns-only corpus.
"""

from __future__ import annotations

import re

import numpy as np

#: questions about what the assistant said, or about the conversation itself
_VERBS = ("tell|say|suggest|recommend|mention|give|provide|list|write|share|explain|describe|name|create|make|"
          "offer|propose|advise|remember")
_PAST = ("told|said|suggested|recommended|mentioned|gave|provided|listed|wrote|shared|explained|described|named|"
         "created|made|offered|proposed|advised")
ASKS_ASSISTANT = re.compile(
    rf"\byou (?:\w+ )?(?:{_PAST})\b|\b(?:did|do) you (?:\w+ )?(?:{_VERBS})\b|\byour (?:suggestion|"
    r"recommendation|advice|answer|response|list|reply|explanation|previous)|\bremind me\b|"
    r"\bwe (?:discussed|talked|chatted|spoke)\b|\bour (?:previous|last|earlier|past) (?:conversation|chat|"
    r"discussion|session)", re.I)


def asks_assistant(query: str) -> bool:
    return ASKS_ASSISTANT.search(query) is not None


def weigh_assistant(scores: np.ndarray, assistant: np.ndarray, query: str, weight: float) -> np.ndarray:
    """`scores` with the assistant's turns (`assistant`: a mask) at `weight` times, unless the query asks about
    them."""
    if weight == 1.0 or not assistant.any() or asks_assistant(query):
        return scores
    return scores * np.where(assistant, weight, 1.0)
