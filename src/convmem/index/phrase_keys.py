"""Phrase keys: the names, numbers and key phrases a turn mentions, each embedded on its own as an extra dense key
of the turn (key expansion without an LLM, issue 4; LongMemEval's "K = V + keyphrase", with the phrases as
separate keys rather than appended to the value).

A turn's vector is about everything it says; a question usually names one thing in it ("the pottery class",
"my trip to Sweden", "the 12 tomato saplings"). The phrase's own vector can be close to the question where the
turn's is not. With the keys on, a turn's dense score is the best cosine among its own vector and its keys.

Three kinds of phrase, found by rules over the turn's sentences (no tagger is needed):
- names: runs of capitalised words ("Sweden", "Run for the Cure", "Dr. Patel"), not counting the capital a
  sentence opens with unless the next word is capitalised too;
- numbers with what they count or measure: a number and up to three words after it ("12 new tomato saplings",
  "$1,200 budget", "5k run");
- key phrases (RAKE): runs of two to four content words between stopwords and punctuation, the turn's best
  `PER_TURN` by the summed degree/frequency of their words ("pottery class", "LGBTQ activist group").
Only turns of people count (not assistant or system turns), as for statement keys.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Sequence

import numpy as np

from convmem.extract.text import is_user_role, sentences
from convmem.store.base import TurnRow, text_hash

#: key phrases kept per turn (names and numbers are all kept, up to `MAX_KEYS` in all)
PER_TURN = 3
MAX_KEYS = 8

_WORD = re.compile(r"[$£€]?\d[\d,.:/]*[a-zA-Z%]*|[^\W\d_][\w'\u2019&.-]*", re.UNICODE)
_STOP = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each even
ever every few for from further get gets getting got had hadn't has hasn't have haven't having he he'd he'll he's
her here here's hers herself him himself his how how's however i i'd i'll i'm i've if in into is isn't it it's its
itself just let's like lot lots me more most much must mustn't my myself no nor not now of off oh on once only or
other ought our ours ourselves out over own really same she she'd she'll she's should shouldn't so some still
such than that that's the their theirs them themselves then there there's these they they'd they'll they're
they've this those through to too under until up upon us very was wasn't we we'd we'll we're we've were weren't
what what's when when's where where's whether which while who who's whom why why's will with won't would wouldn't
yet you you'd you'll you're you've your yours yourself yourselves yeah yes hey hi hello okay ok thanks thank
please sure well wow great awesome amazing cool nice good glad love totally definitely maybe actually already
always never something anything everything nothing thing things one ones way kind sort bit pretty quite
since ago across around among within without against toward towards
recently lately today yesterday tomorrow week weeks month months year years day days time times ago last next
been going gonna want wanted need needed make made think thought know knew feel felt see saw look looking say
said tell told go went come came take took give gave try tried keep kept seem seems seemed
""".split())
_NAME_GLUE = frozenset({"of", "the", "for", "and", "&", "de", "la", "van", "von", "da"})
_NOT_NAMES = frozenset("""
i i'm i've i'd i'll ok okay oh hey hi hello thanks yes yeah no wow well so and but also btw by the a my
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
january february march april may june july august september october november december jan feb mar apr jun jul aug
sep sept oct nov dec
""".split())


def _is_cap(word: str) -> bool:
    return word[:1].isupper() and word.casefold().rstrip(".") not in _NOT_NAMES


def _glued(words: list[str], j: int) -> bool:
    """`words[j]` joins a name: it is one of a run of glue words ("for the") followed by a capitalised word."""
    while j < len(words) and words[j].casefold() in _NAME_GLUE:
        j += 1
    return j < len(words) and _is_cap(words[j])


def _names(words: list[str]) -> list[str]:
    out, run = [], []
    for j, w in enumerate(words + [""]):
        glue = bool(run) and w.casefold() in _NAME_GLUE and _glued(words, j)
        if w and (_is_cap(w) or glue):
            run.append(w)
            continue
        if run:
            # the sentence's first word is capitalised anyway: a name only with a capitalised word after it
            if not (run[0] is words[0] and len(run) == 1):
                out.append(re.sub(r"['\u2019]s$", "", " ".join(run).strip(".,'-")))
            run = []
    return [n for n in out if len(n) >= 3]


def _numbers(words: list[str]) -> list[str]:
    out = []
    for j, w in enumerate(words):
        if not any(c.isdigit() for c in w):
            continue
        tail = []
        for nxt in words[j + 1 : j + 4]:
            if any(c.isdigit() for c in nxt) or nxt.casefold() in _STOP:
                break
            tail.append(nxt)
        if tail:
            out.append(" ".join([w] + tail).rstrip(".,'-"))
    return out


def _candidates(words: list[str]) -> list[tuple[str, ...]]:
    runs, run = [], []
    for w in words + [""]:
        lw = w.casefold().strip(".'-")
        if w and lw not in _STOP and not any(c.isdigit() for c in w) and len(lw) > 1:
            run.append(lw)
            continue
        if 2 <= len(run) <= 4:
            runs.append(tuple(run))
        run = []
    return runs


@lru_cache(maxsize=65536)
def phrase_texts_of(text: str, speakers: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The phrase keys of one turn (see the module's docstring), in the order names, numbers, key phrases.
    `speakers` (casefolded): names not to key on; the people of the conversation are named in most of its turns
    ("Thanks, Melanie!"), so a key on their name would match every question about them."""
    names: list[str] = []
    numbers: list[str] = []
    runs: list[tuple[str, ...]] = []
    for sentence in sentences(text):
        words = _WORD.findall(sentence)
        names += [n for n in _names(words) if n.casefold() not in speakers]
        numbers += _numbers(words)
        runs += _candidates(words)
    freq: Counter[str] = Counter(w for run in runs for w in run)
    degree: Counter[str] = Counter()
    for run in runs:
        for w in run:
            degree[w] += len(run)
    # sorted() is stable: phrases of equal score keep the order they were said in
    scored = sorted(dict.fromkeys(runs), key=lambda r: -sum(degree[w] / freq[w] for w in r))
    phrases = [" ".join(r) for r in scored[:PER_TURN]]
    whole = text.strip().rstrip(".!?").casefold()  # a turn that is one phrase: its own vector already is it
    out: dict[str, str] = {}  # casefolded -> first spelling
    for key in names + numbers + phrases:
        if key.casefold() != whole:
            out.setdefault(key.casefold(), key)
    return tuple(list(out.values())[:MAX_KEYS])


def phrase_texts(rows: Sequence[TurnRow]) -> tuple[dict[str, str], list[str], np.ndarray]:
    """The phrase keys of some turns: ({hash: phrase} to embed, the hash of each key, the turn each key belongs to
    (position in `rows`))."""
    texts: dict[str, str] = {}
    hashes: list[str] = []
    owners: list[int] = []
    speakers = frozenset(name.casefold() for row in rows for name in row.speaker.split())
    for i, row in enumerate(rows):
        if not is_user_role(row.role):
            continue
        for phrase in phrase_texts_of(row.text, speakers):
            h = text_hash(phrase)
            texts[h] = phrase
            hashes.append(h)
            owners.append(i)
    return texts, hashes, np.asarray(owners, dtype=np.int64)
