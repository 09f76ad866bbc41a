"""Time expressions in questions ("last Saturday", "two weeks ago", "in March", "the first time") resolved against
the question's date into time ranges and ordering cues; and relative dates inside turns resolved against the
session's date, so "yesterday" said on 8 May 2023 can be found as 7 May 2023.

Rules cover the common spoken forms; explicit calendar dates ("May 7, 2023", "7 May", "2022/03/04") go through
`dateparser` (a maintained library), called only when the question holds a digit and a month name, a year or a
numeric date, because it costs ~6 ms a question here (a month name alone is handled by the rules).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

_NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
        "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3, "couple of": 2, "few": 3}
_WEEKDAYS = [d.lower() for d in calendar.day_name]
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m and m.lower() != "may"})
_NUMBER = r"(\d+|a couple of|couple of|a few|few|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT = r"(day|week|month|year)s?"
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}

AGO = re.compile(rf"\b{_NUMBER}\s+{_UNIT}\s+(ago|before|earlier)\b", re.I)
LAST_UNIT = re.compile(r"\b(last|past|previous|this)\s+(week(?:end)?|month|year)\b", re.I)
#: "in the past two months", "over the last 3 weeks", "the past few days": a window that ends now
TRAILING = re.compile(rf"\b(?:past|last|previous)\s+{_NUMBER}\s+{_UNIT}\b", re.I)
LAST_WEEKDAY = re.compile(rf"\b(last|this|on)\s+({'|'.join(_WEEKDAYS)})\b", re.I)
DAY_WORD = re.compile(r"\b(yesterday|today|tonight|this morning|last night)\b", re.I)
_MONTH_NAMES = "|".join(sorted(_MONTHS, key=len, reverse=True))  # longest first: "september" before "sep"
IN_MONTH = re.compile(rf"\b(?:in|during|since|of|early|late|mid)\s+({_MONTH_NAMES})"
                      r"\b(?:\s+(\d{4}))?", re.I)
#: a month or weekday name: a clause opening with one is a date, not an event ("before April 10")
DATE_NAME = re.compile(rf"\b(?:{_MONTH_NAMES}|{'|'.join(_WEEKDAYS)})\b", re.I)
#: "did", "was", "went": a question about the past, so "this weekend" / "this Friday" is the one just gone
PAST_TENSE = re.compile(r"\b(did|didn't|was|wasn't|were|weren't|went|had)\b", re.I)
FIRST = re.compile(r"\b(first time|for the first time|first|earliest|initially|originally|at first)\b", re.I)
LATEST = re.compile(r"\b(most recent(?:ly)?|latest|last time|currently|current|now|these days|still|anymore)\b", re.I)


#: a time expression right after one of these is a bound of the time asked about ("before today", "since last
#: month", "prior to last Saturday"), not that time itself
_BOUND_WORDS = r"(?:before|until|till|up to|prior to|after|since|by)"
_BOUND = re.compile(rf"\b{_BOUND_WORDS}\s+$", re.I)
_LEADING_BOUND = re.compile(rf"{_BOUND_WORDS}\b", re.I)


def _is_bound(question: str, m: re.Match) -> bool:
    return _BOUND.search(question, 0, m.start()) is not None


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    text: str

    def contains(self, ts: float, slack: timedelta = timedelta(0)) -> bool:
        return (self.start - slack).timestamp() <= ts <= (self.end + slack).timestamp()


@dataclass(frozen=True)
class TimeCues:
    ranges: tuple[TimeRange, ...] = ()
    order: str | None = None  # "first" | "latest" | None


def _day(dt: datetime) -> tuple[datetime, datetime]:
    start = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1) - timedelta(microseconds=1)


def _month(year: int, month: int, tz) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=tz)
    last = calendar.monthrange(year, month)[1]
    return start, datetime(year, month, last, 23, 59, 59, tzinfo=tz)


def _trailing(now: datetime, n: int, unit: str, text: str) -> TimeRange:
    """The n units before now, and a little slack before that (a week's events told a day after it ends)."""
    days = _UNIT_DAYS[unit] * n
    slack = {"day": 1, "week": 2, "month": 7, "year": 30}[unit]
    try:
        return TimeRange(now - timedelta(days=days + slack), now, text)
    except OverflowError:  # "the past 10000 years": everything on the calendar
        return TimeRange(datetime.min.replace(tzinfo=now.tzinfo), now, text)


def _this_weekday(now: datetime, weekday: int, tense: str) -> datetime:
    """"This Saturday" / "this weekend": the coming one ("What should I cook this weekend?", asked on a Wednesday,
    is about the days ahead, which no memory holds yet), or the one just gone when the question is in the past
    tense ("What did I do this weekend?"; `tense` is the text that says). A weekend under way (Saturday or Sunday)
    is itself "this weekend"."""
    if weekday == 5 and now.weekday() == 6:
        return now - timedelta(days=1)
    if PAST_TENSE.search(tense):
        return now - timedelta(days=(now.weekday() - weekday) % 7)
    return now + timedelta(days=(weekday - now.weekday()) % 7)


def _number(text: str) -> int:
    text = text.lower()
    return min(int(text), 100_000) if text.isdigit() else _NUM.get(text, 1)


def question_cues(question: str, now: datetime | None, tense: str | None = None) -> TimeCues:
    """Ranges named by the question (needs `now`, the question's date) and a first/latest ordering cue. `tense`:
    the text whose tense decides whether "this Friday" is ahead or just gone (default: the question)."""
    order = "first" if FIRST.search(question) else ("latest" if LATEST.search(question) else None)
    if now is None:
        return TimeCues((), order)
    try:
        return TimeCues(tuple(_question_ranges(question, now, tense)), order)
    except (OverflowError, ValueError):  # a date at the calendar's edge (year 1 or 9999) names no range
        return TimeCues((), order)


def _question_ranges(question: str, now: datetime, tense: str | None) -> list[TimeRange]:
    ranges = []
    for m in AGO.finditer(question):
        if _is_bound(question, m):
            continue
        n, unit = _number(m.group(1)), m.group(2).lower()
        days = _UNIT_DAYS[unit] * n
        slack = timedelta(days={"day": 1, "week": 4, "month": 15, "year": 180}[unit])
        try:
            centre = now - timedelta(days=days)
            ranges.append(TimeRange(centre - slack, centre + slack, m.group()))
        except OverflowError:  # "10000 years ago" is not on the calendar
            continue
    for m in TRAILING.finditer(question):
        if _is_bound(question, m):
            continue
        n, unit = _number(m.group(1)), m.group(2).lower()
        ranges.append(_trailing(now, n, unit, m.group()))
    for m in LAST_UNIT.finditer(question):
        if _is_bound(question, m):
            continue
        which, unit = m.group(1).lower(), m.group(2).lower()
        if which == "past" and unit != "weekend":  # "in the past month": the 30 days before now, not April
            ranges.append(_trailing(now, 1, unit, m.group()))
        elif unit == "weekend":
            sat = _this_weekday(now, 5, tense or question) if which == "this" else now - timedelta(
                days=(now.weekday() - 5) % 7 or 7)
            ranges.append(TimeRange(_day(sat)[0], _day(sat + timedelta(days=1))[1], m.group()))
        elif unit == "week":
            start = _day(now - timedelta(days=now.weekday() + (0 if which == "this" else 7)))[0]
            ranges.append(TimeRange(start, start + timedelta(days=7), m.group()))
        elif unit == "month":
            y, mo = (now.year, now.month) if which == "this" else (
                (now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1))
            ranges.append(TimeRange(*_month(y, mo, now.tzinfo), m.group()))
        else:
            y = now.year if which == "this" else now.year - 1
            ranges.append(TimeRange(datetime(y, 1, 1, tzinfo=now.tzinfo),
                                    datetime(y, 12, 31, 23, 59, 59, tzinfo=now.tzinfo), m.group()))
    for m in LAST_WEEKDAY.finditer(question):
        if _is_bound(question, m):
            continue
        wd = _WEEKDAYS.index(m.group(2).lower())
        day = _this_weekday(now, wd, tense or question) if m.group(1).lower() == "this" else now - timedelta(
            days=(now.weekday() - wd) % 7 or 7)
        ranges.append(TimeRange(*_day(day), m.group()))
    for m in DAY_WORD.finditer(question):
        if _is_bound(question, m):
            continue
        word = m.group(1).lower()
        day = now - timedelta(days=1) if word in ("yesterday", "last night") else now
        ranges.append(TimeRange(*_day(day), m.group()))
    ranges.extend(explicit_dates(question, now, skip={r.text.lower() for r in ranges}))
    for m in IN_MONTH.finditer(question):
        mo = _MONTHS[m.group(1).lower()]
        y = int(m.group(2)) if m.group(2) else (now.year if mo <= now.month else now.year - 1)
        ranges.append(TimeRange(*_month(y, mo, now.tzinfo), m.group()))
    return ranges


_DATE_GATE = re.compile(rf"\b({'|'.join(_MONTHS)})\b|\b(19|20)\d\d\b|\b\d{{1,2}}[/.]\d{{1,2}}\b", re.I)
_DIGIT = re.compile(r"\d")


def explicit_dates(question: str, now: datetime, skip: set[str] = frozenset()) -> list[TimeRange]:
    """Calendar dates written out in the question, as day ranges (month or year ranges when no day is given)."""
    if not (_DIGIT.search(question) and _DATE_GATE.search(question)):
        return []  # a month alone ("in March") is IN_MONTH's; without a digit there is no calendar date
    try:
        from dateparser.search import search_dates
    except ImportError:
        return []
    settings = {"RELATIVE_BASE": now.replace(tzinfo=None), "PREFER_DATES_FROM": "past",
                "RETURN_AS_TIMEZONE_AWARE": False}
    found = search_dates(question, languages=["en"], settings=settings) or []
    out = []
    for text, dt in found:
        low = text.lower()
        if low in skip or IN_MONTH.fullmatch(low) or not (_DATE_GATE.search(text) and re.search(r"\d", text)):
            continue  # months alone are handled by IN_MONTH; words like "now" are not dates
        at = question.find(text)
        if _LEADING_BOUND.match(low) or (
                at >= 0 and _BOUND.search(question, 0, at)):
            continue  # a bound ("before 5 March"), not the date asked about
        dt = dt.replace(tzinfo=now.tzinfo)
        if re.fullmatch(r"(?:(?:in|during|of|since|from)\s+)?(19|20)\d\d", text.strip(), re.I):
            out.append(TimeRange(datetime(dt.year, 1, 1, tzinfo=now.tzinfo),
                                 datetime(dt.year, 12, 31, 23, 59, 59, tzinfo=now.tzinfo), text))
        else:
            out.append(TimeRange(*_day(dt), text))
    return out


_REL_IN_TURN = re.compile(
    rf"\b(yesterday|today|tonight|last night|this morning|tomorrow|last (?:week(?:end)?|month|year)|"
    rf"next (?:week(?:end)?|month|year)|(?:last|this|next) (?:{'|'.join(_WEEKDAYS)})|{_NUMBER}\s+{_UNIT}\s+ago)\b",
    re.I,
)


@lru_cache(maxsize=65536)
def _relative_in_turn(text: str, said_at: datetime) -> tuple[tuple[str, tuple[TimeRange, ...]], ...]:
    """Each relative date of a turn, as (phrase, its ranges anchored at `said_at`); a phrase about the future
    ("tomorrow", "next week", "next Friday") gets no ranges here: `resolve_in_turn` keys it by its own rule.
    Cached: the index's date keys and its told dates read the same turns."""
    out = []
    for m in _REL_IN_TURN.finditer(text):
        phrase = m.group(1).lower()
        future = phrase == "tomorrow" or phrase.startswith("next ")
        # "this Monday": the tense is in the words around it ("I went ... this Monday"), not in the phrase
        clause = text[max(0, m.start() - 60):m.end() + 30] if phrase.startswith("this ") else phrase
        out.append((phrase, () if future else question_cues(phrase, said_at, clause).ranges))
    return tuple(out)


def _on_calendar(fn):
    """`fn`'s result, or nothing for a date off the calendar (a turn said in year 1 or 9999 telling "tomorrow")."""
    try:
        return fn()
    except (OverflowError, ValueError):
        return []


def resolve_in_turn(text: str, said_at: datetime) -> list[str]:
    """Calendar keys for relative dates in a turn, anchored at the time it was said: ["7 May 2023", ...]."""
    return _on_calendar(lambda: _turn_keys(text, said_at))


def _turn_keys(text: str, said_at: datetime) -> list[str]:
    keys = []
    for phrase, ranges in _relative_in_turn(text, said_at):
        if phrase == "tomorrow" or phrase.startswith("next "):
            if phrase == "tomorrow":
                day = said_at + timedelta(days=1)
            elif phrase.split()[1] in _WEEKDAYS:
                wd = _WEEKDAYS.index(phrase.split()[1])
                day = said_at + timedelta(days=(wd - said_at.weekday()) % 7 or 7)
            else:
                unit = phrase.split()[1]
                day = said_at + timedelta(days={"week": 7, "weekend": 7, "month": 30, "year": 365}[unit])
                keys.append(_month_key(day) if unit != "year" else str(day.year))
                continue
            keys.append(day_key(day))
            continue
        for r in ranges:
            span = (r.end - r.start).days
            keys.append(day_key(r.start + (r.end - r.start) / 2) if span <= 2 else (
                _month_key(r.start + (r.end - r.start) / 2) if span <= 40 else str((r.start + (r.end - r.start) / 2).year)))
    return list(dict.fromkeys(keys))


#: a written date holds a digit ("on 2/15", "July 17th") or a month's full name ("in June"): a fast test first
_MONTH_FULL = tuple(m.lower() for m in calendar.month_name if m)
#: every relative date `resolve_in_turn` recognises contains one of these words. A fast test that lets most turns
#: skip the full patterns; it holds on ASCII text only (with re.I, a few non-ASCII letters such as the Kelvin sign
#: match ASCII ones), so other text always goes through
RELATIVE_WORDS = re.compile("yesterday|today|tonight|last|this|tomorrow|next|ago")
#: calendar dates a turn writes out: "on July 17th", "17 July 2023", "on 2/15" (month/day), "in June"
_DATE_IN_TURN = re.compile(
    rf"\b(?P<m1>{_MONTH_NAMES})\.?\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y1>(?:19|20)\d\d)\b)?"
    rf"|\b(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{_MONTH_NAMES})\b(?:,?\s+(?P<y2>(?:19|20)\d\d)\b)?"
    rf"|\b(?:on|from|since|until|by)\s+(?P<m3>\d{{1,2}})/(?P<d3>\d{{1,2}})\b(?!/)"
    rf"|\b(?:in|during|early|late|mid)\s+(?P<m4>{_MONTH_NAMES})\b(?:\s+(?P<y4>(?:19|20)\d\d)\b)?",
    re.I,
)


def _dates_in_turn(text: str, said_at: datetime) -> list[TimeRange]:
    """The calendar dates a turn writes out, as days (or months, "in June"). Without a year, the date is the
    last one on the calendar before a month after the turn was said (a plan a few weeks ahead keeps its date)."""
    out = []
    for m in _DATE_IN_TURN.finditer(text):
        month = m.group("m1") or m.group("m2") or m.group("m4")
        mo = _MONTHS[month.lower()] if month else int(m.group("m3"))
        day = m.group("d1") or m.group("d2") or m.group("d3")
        year = m.group("y1") or m.group("y2") or m.group("y4")
        if not 1 <= mo <= 12 or (day and not 1 <= int(day) <= 31):
            continue
        y = int(year) if year else said_at.year
        if not year and datetime(y, mo, 1, tzinfo=said_at.tzinfo) + timedelta(days=int(day or 1) - 1) > \
                said_at + timedelta(days=31):
            y -= 1
        if day is None:
            out.append(TimeRange(*_month(y, mo, said_at.tzinfo), m.group()))
        elif int(day) <= calendar.monthrange(y, mo)[1]:
            out.append(TimeRange(*_day(datetime(y, mo, int(day), 12, tzinfo=said_at.tzinfo)), m.group()))
    return out


#: "I just planted", "I recently walked": an event of the days before the turn was said
_JUST = re.compile(r"\b(?:just|recently)\s+(?:\w+ed|got|went|came|saw|made|took|bought|began|won|ran|did|had|met|left|"
                   r"read|wrote|gave|found|sold|built|spent|heard|felt|started|finished)\b", re.I)


def told_dates(text: str, said_at: datetime) -> list[TimeRange]:
    """When the things a turn tells happened, where it says so: "I planted tomatoes today" said on 21 April ->
    21 April; "yesterday" -> the day before; "two weeks ago", "last weekend", "last Friday" -> those days; "on
    2/15", "on July 17th", "in June" -> those dates; "I just / recently did" -> the week before. A turn that
    dates its own event is better evidence for a question about that time than one that was only said then."""
    return _on_calendar(lambda: _told(text, said_at))


def _told(text: str, said_at: datetime) -> list[TimeRange]:
    low, every = text.lower(), not text.isascii()  # see RELATIVE_WORDS on non-ASCII text
    out = []
    if every or RELATIVE_WORDS.search(low):
        out += [r for _, ranges in _relative_in_turn(text, said_at) for r in ranges]
    if every or _DIGIT.search(text) or any(m in low for m in _MONTH_FULL):
        out += _dates_in_turn(text, said_at)
    if (every or "just" in low or "recently" in low) and _JUST.search(text):
        out.append(TimeRange(said_at - timedelta(days=7), said_at, "just"))
    return out


def day_key(day: datetime) -> str:
    return f"{day.day} {calendar.month_name[day.month]} {day.year} {day:%A}"


def _month_key(day: datetime) -> str:
    return f"{calendar.month_name[day.month]} {day.year}"
