"""Per-speaker views (EMMA, Mixed-Session Conversation): what a user's memory holds about one person.

A memory can hold many people: the user, an assistant, friends in a group chat, LoCoMo's two participants.
`about_mask` marks the turns *about* a person: spoken by them, or mentioning them by name (first name or full
name, whole words, case-insensitive). `Memory.search(..., about=NAME)` and `Memory.context(..., about=NAME)` boost
those turns rather than keep only them: a partner is also described in turns of the others that never name them
("how did the adoption go?" answered by someone else), and on LoCoMo dev the boost ranks evidence better than a
filter (docs/memory.md has the figures). `people` lists the speakers a memory knows, with counts and first/last seen.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from convmem.errors import InputError
from convmem.index.user_index import UserIndex

#: turns about the person score (1 + ABOUT_BOOST) times higher; the best of 0.25 / 0.5 / 1 / 2 on the LoCoMo dev
#: questions that name the right speaker (`convmem bench about`, categories 1-4)
ABOUT_BOOST = 0.5
_WORDS = re.compile(r"[^\W\d_][\w'-]*")


def _first(name: str) -> str:
    words = name.split()
    return words[0] if words else name


def check_about(about: Any) -> str | None:
    """None, or a name: a non-empty string of at most 256 characters with a letter in it."""
    if about is None:
        return None
    if not isinstance(about, str) or not 0 < len(about.strip()) <= 256 or not _WORDS.search(about):
        raise InputError("about must be a person's name (a non-empty string of at most 256 characters)")
    return " ".join(about.split())


def matching_speakers(index: UserIndex, name: str) -> list[str]:
    """Speakers the name designates: the same full name, or one is the other's first name ("Caroline" matches
    the speaker "Caroline Smith"; "Caroline Smith" matches the speaker "Caroline")."""
    n = name.casefold()
    out = []
    for speaker in index.speakers:
        s = speaker.casefold()
        if n == s or n == _first(s) or _first(n) == s:
            out.append(speaker)
    return out


def name_forms(index: UserIndex, name: str) -> list[str]:
    """The strings that mention the person: the name as given, and each matching speaker's full and first name."""
    forms = {name.casefold(), _first(name.casefold())}
    for speaker in matching_speakers(index, name):
        forms |= {speaker.casefold(), _first(speaker.casefold())}
    return sorted(f for f in forms if f)


def about_mask(index: UserIndex, name: str) -> np.ndarray:
    """True for each turn spoken by the person or mentioning them by name."""
    speakers = {s.casefold() for s in matching_speakers(index, name)}
    pattern = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(f) for f in name_forms(index, name)) + r")(?![\w])",
                         re.IGNORECASE)
    return np.fromiter((r.speaker.casefold() in speakers or pattern.search(r.text) is not None for r in index.rows),
                       bool, len(index.rows))


def boost_about(scores: np.ndarray, mask: np.ndarray, boost: float = ABOUT_BOOST) -> np.ndarray:
    """Turns about the person score (1 + boost) times higher (scores are >= 0, so the order among them holds)."""
    return scores * np.where(mask, 1.0 + boost, 1.0)


def people(index: UserIndex) -> list[dict[str, Any]]:
    """Each speaker of the memory: roles, turns spoken, sessions, turns of others that mention them by first name,
    first and last time they spoke. Most turns first."""
    out = []
    texts = [r.text for r in index.rows]
    for k, speaker in enumerate(index.speakers):
        mine = np.flatnonzero(index.speaker_index == k)
        first = re.compile(r"(?<![\w])" + re.escape(_first(speaker)) + r"(?![\w])", re.IGNORECASE)
        mentions = sum(1 for i, t in enumerate(texts) if index.speaker_index[i] != k and first.search(t))
        stamps = index.timestamps[mine]
        rows = [index.rows[i] for i in mine]
        out.append({
            "name": speaker,
            "roles": sorted({r.role for r in rows}),
            "turns": int(len(mine)),
            "sessions": int(len(set(index.session_index[mine].tolist()))),
            "mentioned_by_others": mentions,
            "first_seen": rows[int(np.argmin(stamps))].timestamp.isoformat(),
            "last_seen": rows[int(np.argmax(stamps))].timestamp.isoformat(),
        })
    return sorted(out, key=lambda p: (-p["turns"], p["name"]))
