"""Which standing instructions apply to a request.

The rule (documented with its measured precision/recall in docs/memory.md):
1. **Always on**: instructions of the kinds in `ALWAYS_ON` (allergy, language, format, address) are applied to
   every request. Language, format and how to address the user shape every reply; an allergy is a safety
   constraint whose omission costs far more than a line of context.
2. **Topical** (diet, units, general): applied when the request and the instruction share a topic of the small
   lexicon below (food, travel, scheduling, messages, shopping, health, code, quantities, entertainment), or share
   a content word (Snowball stems, stopwords and instruction verbs left out), or when their MiniLM cosine is at
   least `threshold` (0.35, chosen on the dev half of the shipped set).
Selected instructions come always-on first, then by score; the context keeps them under half its budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from convmem.index.text import analyze
from convmem.models import Instruction

DEFAULT_THRESHOLD = 0.35

TOPICS: dict[str, re.Pattern[str]] = {name: re.compile(r"\b(?:" + words + r")\b", re.I) for name, words in {
    "food": r"eat\w*|food|meals?|dinners?|lunch\w*|breakfast|brunch|snacks?|recipes?|cook\w*|bak(?:e|ing)|"
            r"restaurants?|caf[eé]s?|menus?|dish(?:es)?|cuisine|grocer\w*|ingredients?|desserts?|cakes?|pizza|"
            r"sandwich\w*|salads?|soups?|catering|bbq|barbecue|picnic|potluck|wine|beers?|cocktails?|drinks?|"
            r"diet|protein|vegetarian|vegan|meat|pork|beef|chicken|fish|seafood|shellfish|dairy|cheese|"
            r"gluten|lactose|kosher|halal|alcohol|spicy|takeout|takeaway|bakery|chocolate|nuts?|peanuts?",
    "travel": r"flights?|fly|flying|airlines?|airports?|hotels?|trips?|travel\w*|vacation|holiday|seats?|"
              r"trains?|rental|itinerar\w*|luggage|layovers?|cruise|hostels?|airbnb|red-eye|aisle|window seat",
    "schedule": r"meetings?|schedul\w*|calendar|appointments?|remind\w*|events?|deadlines?|10am|9am|8am|"
                r"availability|book a time|slots?",
    "messages": r"emails?|messages?|texts?|letters?|notes?|draft\w*|invitations?|posts?|tweets?|linkedin|"
                r"cover letter|reply to|respond to",
    "shopping": r"buy\w*|purchas\w*|shop\w*|prices?|budget\w*|costs?|spend\w*|gifts?|presents?|orders?|deals?|"
                r"cheap\w*|expensive|stores?|amazon|brands?|dollars?|euros?|yen|money|afford\w*",
    "health": r"doctors?|medicine|medications?|pills?|symptoms?|headaches?|pain|sick|hospital|pharmacy|"
              r"prescriptions?|workouts?|exercis\w*|gym|allerg\w*|injur\w*|dentist",
    "code": r"code|coding|python|javascript|typescript|functions?|scripts?|bugs?|programs?|programming|sql|"
            r"apis?|regex|repository|git",
    "quantities": r"weather|temperature|forecast|distance|how far|km|kilomet\w*|miles?|weigh\w*|heights?|tall|"
                  r"recipes?|bak(?:e|ing)|run|running|marathon|drive|driving|speed|measure\w*|convert\w*|"
                  r"degrees?|celsius|fahrenheit|metric|imperial|units?|pounds|kilos?|kg",
    "entertainment": r"movies?|films?|shows?|series|music|songs?|playlists?|concerts?|games?|podcasts?|novels?|"
                     r"netflix|spoilers?|tv",
}.items()}

#: words every instruction uses that say nothing about when it applies
_GENERIC = frozenset(analyze(
    "always never please don't do not prefer preferred would like want you me my i from now on going forward "
    "future use make get give keep let stop start any anything everything something thing things just really "
    "also thanks thank sure ok okay need can could recommend suggest plan help find tell show choose pick"
))


def topics(text: str) -> set[str]:
    return {name for name, pattern in TOPICS.items() if pattern.search(text)}


def content_terms(text: str) -> set[str]:
    return set(analyze(text)) - _GENERIC


@dataclass(slots=True)
class Selected:
    instruction: Instruction
    score: float
    reason: str

    def to_dict(self) -> dict:
        return {**self.instruction.to_dict(), "score": round(self.score, 4), "reason": self.reason}


def select(instructions: Sequence[Instruction], request: str, *,
           embed: Callable[[list[str]], np.ndarray] | None = None,
           threshold: float = DEFAULT_THRESHOLD) -> list[Selected]:
    """The instructions that apply to `request`, always-on first, then by score (see the module docstring)."""
    if not instructions:
        return []
    sims = np.zeros(len(instructions), dtype=np.float32)
    topical = [i for i, ins in enumerate(instructions) if not ins.always_on]
    if embed is not None and topical:
        vectors = embed([request] + [instructions[i].text for i in topical])
        sims[topical] = vectors[1:] @ vectors[0]
    request_topics, request_terms = topics(request), content_terms(request)
    out: list[Selected] = []
    for i, ins in enumerate(instructions):
        if ins.always_on:
            out.append(Selected(ins, 2.0, f"always on ({ins.kind})"))
            continue
        shared_topics = sorted(topics(ins.text) & request_topics)
        shared_terms = sorted(content_terms(ins.text) & request_terms)
        sim = float(sims[i])
        if shared_topics:
            out.append(Selected(ins, 1.0 + sim, f"topic: {', '.join(shared_topics)}"))
        elif shared_terms:
            out.append(Selected(ins, 1.0 + sim, f"shared words: {', '.join(shared_terms)}"))
        elif embed is not None and sim >= threshold:
            out.append(Selected(ins, sim, f"similar ({sim:.2f})"))
    out.sort(key=lambda s: (-s.score, s.instruction.created_at, s.instruction.instruction_id))
    return out
