"""Standing instructions and preferences (NLSI), recognised in user turns without an LLM, and their kind.

A sentence of a user turn is a standing instruction when, after an opener ("Oh, and", "By the way,"), it
- starts with "always" / "never" / "please always|never" followed by a verb ("Always book aisle seats");
- starts with "from now on", "going forward", "in the future", "moving forward", "for future reference", or is
  an imperative that ends with one of them or with "always" ("Use metric units, always.");
- starts with "please don't|do not|stop" ("Please don't use emojis");
- says "I prefer ..." or "I like my ..."; "I'd prefer ...", "I want you to ...", "I'd like you to ..." only with a
  word that makes them last ("always", "from now on", "whenever", "every time": otherwise they ask for the task at
  hand, "I want you to act as a copywriter");
- declares a constraint: "I'm allergic to ...", "I'm vegetarian / vegan / lactose intolerant / ...", "I don't eat
  ...", "I can't drink ...";
- asks how to be addressed or answered: "call me ...", "reply in French", "my pronouns are ..." ("write in
  English" is left out: it is how one-off writing tasks are asked);
- is short (at most six words), names no particular task (no "it", "this", "the following", "summary", "code",
  quotes, ...) and either starts with "don't" + a verb of a reply or an errand ("Don't book red-eye flights") or
  is an imperative (use, keep, avoid, be, stay, stick to, no) of kind format or units ("Keep your answers short.",
  "Use metric units.", "Be concise."): chat logs are full of task commands ("Don't write 'Sure'", "Make it 600
  words long", "Use these to write the summary").
Questions and hypotheticals ("If I were vegan ...", "Should I always ...?") are not instructions.

Kinds: allergy, diet, language, format, address, units, general. `ALWAYS_ON` kinds apply to every request (see
`convmem.extract.select` for the rule and why).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Iterable

from convmem.extract.text import OPENER, asserted_before, is_question, is_user_role, sentences
from convmem.models import Instruction, Turn

KINDS = ("allergy", "diet", "language", "format", "address", "units", "general")
#: kinds applied to every request: safety (allergies) and how every reply is written (language, format, address)
ALWAYS_ON = frozenset({"allergy", "language", "format", "address"})

_REPLY_VERBS = (
    r"use|include|suggest|recommend|send|give|add|mention|call|book|schedule|show|reply|answer|respond|write|"
    r"put|make|order|plan|assume|share|remind|ask|start|end|sign|cc|bring|pick|choose|list|bother|wake|text|email|"
    r"message|swear|curse|apologi[sz]e|explain|translate|round|convert|quote|contact"
)
_NOT_IMPERATIVE = (r"(?:\w+ed|\w+ing|been|had|was|were|is|a|an|the|fun|good|nice|mind|again|forget|eager|ready|"
                   r"happy|willing|open|keen|available|interested|there|here|so|too|very|more|less|up|on|in)\b")
#: a request ("I want you to act as ...", "I'd prefer a park within ...") is for the task at hand; it is standing
#: only with one of these words
_STANDING = re.compile(r"\b(?:always|never|from\s+now\s+on|going\s+forward|in\s+(?:the\s+)?future|whenever|"
                       r"every\s+time|each\s+time|remember\s+that)\b", re.I)
_LANGUAGES = (
    r"english|spanish|french|german|italian|portuguese|dutch|swedish|norwegian|danish|finnish|polish|czech|"
    r"russian|ukrainian|greek|turkish|arabic|hebrew|hindi|bengali|urdu|chinese|mandarin|cantonese|japanese|"
    r"korean|vietnamese|thai|indonesian|malay|swahili|catalan|basque|romanian|hungarian"
)
_PATTERNS = [re.compile(p, re.I) for p in (
    r"^(?:please\s+)?(?:always|never)\s+(?!" + _NOT_IMPERATIVE + r")\w+",
    r"^(?:from\s+now\s+on|going\s+forward|in\s+(?:the\s+)?future|moving\s+forward|for\s+future\s+reference|"
    r"from\s+here\s+on(?:\s+out)?|whenever\s+you)\b",
    r"^please\s+(?:don't|do\s+not|stop)\s+\w+",
    r"^(?:please\s+)?(?:" + _REPLY_VERBS + r"|keep|be|stay|avoid)\b.*\b(?:always|from\s+now\s+on|going\s+forward|"
    r"in\s+(?:the\s+)?future)\W*$",
    r"\bI\s+(?:really\s+|much\s+|strongly\s+|generally\s+|usually\s+|always\s+)?prefer\b",
    r"\bI\s+like\s+my\s+\w+",
    r"\bI(?:'m|\s+am)\s+(?:severely\s+|very\s+|highly\s+|deathly\s+|mildly\s+|also\s+)?allergic\s+to\b",
    r"\bI\s+have\s+(?:a\s+|an\s+)?(?:severe\s+|mild\s+)?(?:\w+\s+)?allergy\b",
    r"\bI(?:'m|\s+am)\s+(?:a\s+)?(?:strict\s+|now\s+|also\s+|bit\s+|little\s+|slightly\s+)?(?:vegetarian|vegan|pescatarian|"
    r"lactose[- ]intolerant|gluten[- ]intolerant|gluten[- ]free|celiac|coeliac|diabetic|teetotal|sober|"
    r"keeping\s+kosher|kosher|halal)\b",
    r"\bI\s+(?:don't|do\s+not|can't|cannot|never)\s+(?:eat|drink)\b",
    r"^(?:please\s+)?(?:call|address)\s+me\b",
    r"\bmy\s+pronouns\s+are\b",
    r"^(?:please\s+)?(?:reply|answer|respond|talk|speak)\s+(?:to\s+me\s+)?(?:only\s+)?in\s+(?:" +
    _LANGUAGES + r")\b",
)]
_STYLE_IMPERATIVE = re.compile(r"^(?:use|keep|avoid|be|stay|stick\s+to|no)\b", re.I)
_BARE_DONT = re.compile(r"^(?:don't|do\s+not)\s+(?:ever\s+)?(?:" + _REPLY_VERBS + r")\b", re.I)
_TASK_WORDS = re.compile(r"\b(?:it|this|that|these|those|them|following|above|below|here|story|article|essay|"
                         r"summary|code|text|prompt|list|table|email|letter|post|question|questions)\b|[\":]|\s'|'\s", re.I)
_REQUEST = re.compile(r"\bI(?:'d|\s+would)?\s+(?:like|want)\s+you\s+to\b|\bI(?:'d|\s+would)\s+prefer\b", re.I)
# the first-person patterns above may follow a hypothetical ("if I were vegan") which the gate catches
_KIND_RULES = [
    ("allergy", re.compile(r"\ballerg", re.I)),
    ("language", re.compile(r"\b(?:in|into)\s+(?:" + _LANGUAGES + r")\b|\blanguage\b", re.I)),
    ("address", re.compile(r"\b(?:call|address)\s+me\b|\bpronouns\b|\bmy\s+name\b", re.I)),
    ("units", re.compile(r"\b(?:metric|imperial|celsius|fahrenheit|kilomet\w*|miles?|kilos?|kg|pounds|lbs|"
                         r"units?|24-hour|12-hour|am/pm)\b", re.I)),
    ("format", re.compile(r"\b(?:bullet\w*|markdown|emojis?|emoticons?|short|shorter|concise|brief|briefly|"
                          r"length|long|lengthy|words|sentences?|paragraphs?|tables?|format\w*|tone|formal|"
                          r"informal|casual|jargon|tl;?dr|summary|summari[sz]e|headings?|exclamation|"
                          r"capital\w*|answers?|repl(?:y|ies)|respon[sd]\w*|explanations?)\b", re.I)),
    ("diet", re.compile(r"\b(?:vegetarian|vegan|pescatarian|gluten|lactose|dairy|kosher|halal|meat|pork|beef|"
                        r"chicken|fish|seafood|shellfish|alcohol|eat|drink|spicy|sugar|caffeine|coffee|diabetic|"
                        r"celiac|coeliac|teetotal|sober|food|meals?|dishes?|recipes?)\b", re.I)),
]


def classify(text: str) -> str:
    """The kind of an instruction (first rule that matches, else 'general')."""
    for kind, pattern in _KIND_RULES:
        if pattern.search(text):
            return kind
    return "general"


def is_instruction(sentence: str) -> bool:
    """Whether one sentence states a standing instruction or preference (see the module docstring)."""
    if is_question(sentence):
        return False
    clause = OPENER.sub("", sentence.strip())
    if any((m := pattern.search(clause)) and asserted_before(clause, m.start()) for pattern in _PATTERNS):
        return True
    # short and about no task in particular: "Don't use emojis.", "Keep your answers short.", "Use metric units."
    # (chat logs are full of task commands: "Don't write 'Sure'", "Make it 600 words long", "Use these to ...")
    if len(clause.split()) <= 6 and not _TASK_WORDS.search(clause):
        if _BARE_DONT.match(clause) or (_STYLE_IMPERATIVE.match(clause) and classify(clause) in ("format", "units")):
            return True
    # "I want you to / I'd like you to / I'd prefer ..." count only when they say they are meant to last
    m = _REQUEST.search(clause)
    return bool(m and _STANDING.search(clause) and asserted_before(clause, m.start()))


def instruction_id(user: str, text: str, source: str, session_id: str | None = None,
                   turn_id: str | None = None) -> str:
    """Stable id: the same text set twice through the API, or recognised twice in one turn, is one instruction."""
    key = "\0".join([user, source, session_id or "", turn_id or "", " ".join(text.casefold().split())])
    return "ins-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def make_instruction(user: str, text: str, *, source: str, created_at: datetime, kind: str | None = None,
                     session_id: str | None = None, turn_id: str | None = None) -> Instruction:
    kind = kind or classify(text)
    return Instruction(instruction_id=instruction_id(user, text, source, session_id, turn_id), text=text,
                       kind=kind, always_on=kind in ALWAYS_ON, source=source, created_at=created_at,
                       session_id=session_id, turn_id=turn_id)


def extract_instructions(user: str, turns: Iterable[Turn], session_id: str, started_at: datetime) -> list[Instruction]:
    """The standing instructions stated in a session's user turns, one per sentence."""
    found: dict[str, Instruction] = {}
    for turn in turns:
        if not is_user_role(turn.role):
            continue
        for sentence in sentences(turn.text):
            if is_instruction(sentence):
                ins = make_instruction(user, sentence[:1000], source="turn", created_at=turn.timestamp or started_at,
                                       session_id=session_id, turn_id=str(turn.turn_id))
                found.setdefault(ins.instruction_id, ins)
    return list(found.values())
