"""Sentences, and the gates every extractor applies before a pattern may count as a statement.

A sentence is not a statement when it asks (`?`, or opens with an auxiliary or question word), when the words
before the pattern make it hypothetical or reported ("if I moved to", "I might", "my friend said I"), or when
it was said by an assistant. These gates are shared by the fact and the instruction rules.
"""

from __future__ import annotations

import re

_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|;\s+")
_QUESTION_START = re.compile(
    r"^(?:do|does|did|is|are|am|was|were|should|shall|can|could|would|will|have|has|had|may|might|must|what|"
    r"where|when|why|how|who|which|whom|whose|isn't|aren't|doesn't|didn't|won't|wouldn't|shouldn't)\b",
    re.I,
)
#: words that, before a pattern in its sentence, make it something other than a statement of fact
_NOT_ASSERTED = re.compile(
    r"\b(?:if|whether|unless|suppose|supposing|imagine|pretend|maybe|perhaps|probably|wish|wishes|wished|hope|"
    r"hoping|want|wants|wanted|plan|plans|planning|thinking|considering|consider|would|could|might|should|"
    r"will|shall|gonna|going to|i'd|i'll|we'll|let's|said|says|told|tells|thinks|thought|asked|asks|claims|"
    r"claimed|dreamt|dreamed|dream|not|never|no longer|don't|didn't|haven't|hadn't|wasn't|isn't|aren't|can't|"
    r"cannot|won't|wouldn't|as if|as though)\b",
    re.I,
)
_LIKE = re.compile(r"\blike\s*$", re.I)
ASSISTANT_ROLES = frozenset({"assistant", "system", "tool", "bot", "ai", "model", "function", "developer"})
#: discourse openers stripped before clause-initial patterns ("Oh, and from now on ...")
OPENER = re.compile(
    r"^(?:(?:oh|ah|ok|okay|so|well|also|and|but|btw|by the way|fyi|just so you know|for the record|actually|"
    r"anyway|one more thing|oh and|and also|hey|hi|hello|yes|yeah|no|right|again|note|reminder|remember)"
    r"\s*[,:!-]*\s+)+",
    re.I,
)


def normalize_quotes(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')


def sentences(text: str) -> list[str]:
    """The sentences of a turn, stripped, with typographic quotes made plain."""
    return [s.strip() for s in _SPLIT.split(normalize_quotes(text)) if s and s.strip()]


def is_question(sentence: str) -> bool:
    s = sentence.strip()
    return s.endswith("?") or bool(_QUESTION_START.match(OPENER.sub("", s)))


def asserted_before(sentence: str, start: int) -> bool:
    """True when nothing before `start` in the sentence makes what follows hypothetical, negated or reported."""
    prefix = sentence[:start]
    return not _NOT_ASSERTED.search(prefix) and not _LIKE.search(prefix)  # "explain it like I'm 5"


def is_user_role(role: str) -> bool:
    """Statements and instructions come from people: any role but assistant/system/tool ones (LoCoMo's two
    'participant' speakers both count)."""
    return role.strip().casefold() not in ASSISTANT_ROLES
