"""Rule-based fact statements from user turns, no LLM: "I moved to X", "my X is Y", "I started/stopped X", ...

Each rule is a first-person pattern; the subject is the turn's speaker (so named speakers work, e.g. LoCoMo's),
the statement's time is the turn's (a turn without its own time takes its session's start). A sentence gives no
statement when it is a question, or when the words before the pattern make it hypothetical, negated or reported
(`convmem.extract.text`). Values are cut at the first punctuation, connective or time phrase and kept to six words.

| rule | attribute | value |
|---|---|---|
| I / we / my wife and I moved / relocated to X; I / we live in X; I am living / based in X; I've been living in X | lives in | X |
| I work at / for X; I started working at X; I got a job at X | works at | X |
| I work as (a) X; I got promoted to X | job | X |
| I started / began / took up X | X (the activity) | started |
| I stopped / quit / gave up X | X (the activity) | stopped |

(No statement when X starts with a preposition or pronoun, or is a bare verb such as "working".)
| I bought / purchased / got a new X | latest purchase | X |
| I switched (from A) to X | switched to | X |
| I drive a X | car | X |
| my favourite X is Y | favorite X | Y |
| my X is Y (X of at most four words, not "point", "question", ...) | X | Y |
| I'm N years old; I turned N | age | N |
| I'm / I got married, engaged, divorced, single | relationship status | married, ... |
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Callable, Iterable

from convmem.extract.text import asserted_before, is_question, is_user_role, sentences
from convmem.models import Fact, Turn

_ADV = r"(?:(?:just|recently|finally|actually|now|currently|still|also|officially|already|even|then)\s+)*"
_HAVE = r"(?:(?:'ve|\s+have|\s+had)\s+)?"
_I = r"\bI" + _HAVE + r"\s*" + _ADV
_IM = r"\bI(?:'m|\s+am)\s+" + _ADV
_WE = r"\b(?:my\s+(?:wife|husband|partner|family)\s+and\s+I|we)" + _HAVE + r"\s*" + _ADV
_VALUE = r"(?P<v>(?:[^,.;:!?()\[\]\"]|(?<=\d)[.,:](?=\d))+)"  # "10,000", "2.5" and "9:00" stay whole

_STOPS = frozenset(
    "and but because so since which where who when while though although after before until last this next "
    "yesterday today tonight tomorrow ago recently now with for as from about in on at to by during than or "
    "again too anymore yet near close next outside around right i i'm i've i'd we that - every like using "
    "including such".split()
)
_DANGLING = frozenset("of a an the my with for to and or in on at from some into onto".split())
_TIME_TAIL = re.compile(
    r"(?:^|\s+)(?:\d+|a|an|one|two|three|four|five|six|a few|few|several|a couple of|couple of)\s+"
    r"(?:days?|weeks?|months?|years?|hours?)\b.*$", re.I,
)
_ARTICLES = re.compile(r"^(?:a|an|the|my|some)\s+", re.I)
_NOT_ATTRIBUTES = frozenset(
    "point question guess problem issue concern bad pleasure hope worry fault turn mistake fear impression "
    "thought idea feeling bet understanding advice answer reason excuse take opinion sense day week life head "
    "heart mind".split()
)
_NOT_VALUES = re.compile(
    r"^(?:getting|going|coming|being|doing|having|not|so|too|very|really|pretty|quite|a bit|kind of|sort of|that|"
    r"to|still|also|just|gonna|always|never|probably|definitely|like|such|this|these|those|it|what|how|why|all|"
    r"actually|currently|usually|basically|honestly|literally|specifically|"
    r"more|less|much|fine|ok|okay|good|great|bad|better|worse|nice|awesome|amazing|terrible|busy|tired|here|"
    r"there|over|done)\b",
    re.I,
)


def cut_value(raw: str, *, max_words: int = 6) -> str:
    """The value part of a match: up to the first connective or time phrase, at most `max_words` words."""
    text = _TIME_TAIL.sub("", raw.strip())
    words = text.split()
    kept: list[str] = []
    for i, word in enumerate(words):
        if i > 0 and word.casefold() in _STOPS:
            break
        kept.append(word)
    kept = kept[:max_words]
    while kept and kept[-1].casefold() in _DANGLING:  # "a new playthrough of" -> "a new playthrough"
        kept.pop()
    return " ".join(kept).strip(" '-")


def display_value(value: str) -> str:
    return re.sub(r"^(?:a|an)\s+", "", value, flags=re.I)


def norm_value(value: str) -> str:
    """The comparison key of a value: casefolded, without a leading article or possessive."""
    return _ARTICLES.sub("", " ".join(value.casefold().split()))


def norm_attribute(attribute: str) -> str:
    a = " ".join(attribute.casefold().split()).replace("favourite", "favorite").replace("colour", "color")
    return re.sub(r"^(?:new|current|present)\s+", "", a)


#: what "I started / stopped X" and "I bought X" may not be: a preposition or pronoun first ("I picked it up at
#: ...", "I bought it from ..."), or a verb that says nothing alone ("I started working on it")
_NOT_OBJECTS = re.compile(
    r"^(?:at|from|in|on|to|for|with|by|into|off|out|up|it|them|this|that|these|those|one|him|her|us|myself|"
    r"again|last|next|yesterday|today|recently|feeling|noticing|realizing|thinking|wondering|getting|having|"
    r"during|around|about|specifically|actually|something|anything|everything|(?:new\s+)?ones?$|will|would|can|"
    r"could|is|was|are|were|back|online|offline|there|home$|"
    r"(?:pair|some|few|lot|couple|bunch|set)(?:\s+of)?$)\b|^(?:working|using|wearing|looking|trying|going|making|doing|seeing|it|them|off|out|up)$", re.I)
_ING_TAIL = re.compile(r"^\s*\S+\s+(with|on|about|to|at|for|in)\s+(.*)$", re.I)
_WHEN = re.compile(r"^(?:january|february|march|april|may|june|july|august|september|october|november|december|"
                   r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|the\s+(?:morning|evening|spring|"
                   r"summer|fall|autumn|winter|past|last|end)|\d)", re.I)


def _activity(value: str) -> str:
    a = re.sub(r"^(?:to|doing|my|a|an|the|some|new|regular|weekly|daily)\s+", "", norm_value(value))
    return re.sub(r"^(?:to|doing|my|a|an|the|some|new)\s+", "", a)


Rule = tuple[re.Pattern[str], Callable[[re.Match[str], str], tuple[str, str] | None]]


def _fixed(attribute: str) -> Callable[[re.Match[str], str], tuple[str, str] | None]:
    def make(m: re.Match[str], value: str) -> tuple[str, str] | None:
        return (attribute, display_value(value)) if value and not _NOT_OBJECTS.match(norm_value(value)) else None
    return make


def _started(value_word: str) -> Callable[[re.Match[str], str], tuple[str, str] | None]:
    def make(m: re.Match[str], value: str) -> tuple[str, str] | None:
        activity = _activity(value)
        if " " not in activity:  # "experimenting with sourdough", not "experimenting"
            tail = _ING_TAIL.match(re.sub(r"^\s*to\s+", "", m.group("v"), flags=re.I))
            rest = cut_value(tail.group(2), max_words=3) if tail else ""
            if rest and not _NOT_OBJECTS.match(rest) and not _WHEN.match(rest):
                activity = f"{activity} {tail.group(1).casefold()} {rest.casefold()}"
            elif tail and not _WHEN.match(tail.group(2).strip()):
                return None  # "participating in it", "listening to \"...\"": what was started is not said
        if not activity or _NOT_VALUES.match(activity) or _NOT_OBJECTS.match(activity) or \
                re.match(r"\w+ed\b", activity) or \
                {"it", "them", "this", "that", "one", "her", "him"} & set(activity.split()):  # "using it"
            return None
        return activity, value_word
    return make


_ACTIVITY_ATTRIBUTES = re.compile(r"(?:hobby|hobbies|passion|job|sport|activity|thing|favorite \w+)$")
_PREPOSITION_BEFORE = re.compile(r"\b(?:in|of|at|for|with|from|to|on|about|by|and|or)\s+$", re.I)


def _my_x_is(m: re.Match[str], value: str) -> tuple[str, str] | None:
    """"my X is Y" about the speaker's X: not "the members in my club are ...", not "my X is parked / showing"."""
    attribute = norm_attribute(m.group("a"))
    first = value.split()[0].casefold() if value else ""
    if not value or attribute.split()[-1] in _NOT_ATTRIBUTES or _NOT_VALUES.match(value) or \
            " and " in f" {attribute} " or _PREPOSITION_BEFORE.search(m.string[:m.start()]) or \
            first.endswith(("ed", "ly")) or (first.endswith("ing") and not _ACTIVITY_ATTRIBUTES.search(attribute)):
        return None
    return attribute, display_value(value)


def _favorite(m: re.Match[str], value: str) -> tuple[str, str] | None:
    return ("favorite " + norm_attribute(m.group("a")), display_value(value)) if value else None


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


RULES: list[Rule] = [
    (_compile(_I + r"(?:moved|relocated)\s+(?:back\s+|over\s+)?to\s+" + _VALUE), _fixed("lives in")),
    (_compile(_WE + r"(?:moved|relocated)\s+(?:back\s+|over\s+)?to\s+" + _VALUE), _fixed("lives in")),
    (_compile(r"\b(?:I|we)\s+" + _ADV + r"live\s+in\s+" + _VALUE), _fixed("lives in")),
    (_compile(_IM + r"(?:living|based|settled)\s+in\s+" + _VALUE), _fixed("lives in")),
    (_compile(r"\b(?:I|we)(?:'ve|\s+have)\s+" + _ADV + r"been\s+living\s+in\s+" + _VALUE), _fixed("lives in")),
    (_compile(r"\bI\s+" + _ADV + r"work\s+as\s+" + _VALUE), _fixed("job")),
    (_compile(_I + r"(?:got|was|have\s+been|'ve\s+been)\s+promoted\s+to\s+" + _VALUE), _fixed("job")),
    (_compile(_IM + r"working\s+as\s+" + _VALUE), _fixed("job")),
    (_compile(r"\bI\s+" + _ADV + r"work\s+(?:at|for)\s+" + _VALUE), _fixed("works at")),
    (_compile(_IM + r"working\s+(?:at|for)\s+" + _VALUE), _fixed("works at")),
    (_compile(_I + r"(?:started\s+working\s+(?:at|for)|(?:got|landed|took|accepted|started)\s+"
              r"(?:a\s+)?(?:new\s+)?(?:job|position|role)\s+(?:at|with))\s+" + _VALUE), _fixed("works at")),
    (_compile(_I + r"(?:started|began|begun|took\s+up|taken\s+up)\s+" + _VALUE), _started("started")),
    (_compile(_I + r"(?:stopped|quit|gave\s+up|given\s+up)\s+" + _VALUE), _started("stopped")),
    (_compile(_I + r"(?:bought|purchased|got\s+(?=(?:myself\s+)?(?:a|an)\s+new\b)(?:myself\s+)?)\s*" + _VALUE),
     _fixed("latest purchase")),
    (_compile(_I + r"(?:switched|changed|moved\s+over)\s+(?:from\s+[^,.;!?]+?\s+)?to\s+" + _VALUE),
     _fixed("switched to")),
    (_compile(r"\bI\s+" + _ADV + r"drive\s+" + _VALUE), _fixed("car")),
    (_compile(r"\bmy\s+(?:all-time\s+|absolute\s+|new\s+)?favou?rite\s+(?P<a>[\w'-]+(?:\s+[\w'-]+)?)\s+"
              r"(?:is|are)\s+(?:now\s+)?" + _VALUE), _favorite),
    (_compile(r"\bmy\s+(?P<a>[\w'-]+(?:\s+[\w'-]+){0,3}?)\s+(?:is|are)\s+(?:now\s+|still\s+)?" + _VALUE), _my_x_is),
    (_compile(_IM + r"(?P<v>\d{1,3})\s+(?:years?\s+old|yo)\b"), _fixed("age")),
    (_compile(_I + r"turned\s+(?P<v>\d{1,3})\b"), _fixed("age")),
    (_compile(r"\bI(?:'m|\s+am|'ve|\s+have)?\s+" + _ADV + r"(?:got\s+|gotten\s+|been\s+)?" + _ADV +
              r"(?P<v>married|engaged|divorced|single|separated|widowed)\b"), _fixed("relationship status")),
]


def sentence_facts(sentence: str) -> list[tuple[str, str]]:
    """(attribute, value) statements in one sentence; [] for questions and hypotheticals."""
    if is_question(sentence):
        return []
    out: list[tuple[str, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern, make in RULES:
        for m in pattern.finditer(sentence):
            value = m.group("v")
            value = cut_value(value) if not value.isdigit() else value
            end = m.start("v") + len(value)  # the rest of the sentence is free for other statements
            if any(a < end and m.start() < b for a, b in taken) or not asserted_before(sentence, m.start()):
                continue
            made = make(m, value)
            if made and made[0] and made[1]:
                out.append(made)
                taken.append((m.start(), end))
    return out


def extract_facts(turns: Iterable[Turn], session_id: str, started_at: datetime) -> list[Fact]:
    """The rule statements of a session's user turns (`Fact.valid_from` = the turn's time)."""
    facts: list[Fact] = []
    for turn in turns:
        if not is_user_role(turn.role):
            continue
        seq = 0
        for sentence in sentences(turn.text):
            for attribute, value in sentence_facts(sentence):
                facts.append(Fact(subject=turn.speaker, attribute=attribute, value=value,
                                  valid_from=turn.timestamp or started_at, session_id=session_id,
                                  turn_id=str(turn.turn_id), extractor="rules", evidence=sentence[:300],
                                  position=turn.position, seq=seq))
                seq += 1
    return facts
