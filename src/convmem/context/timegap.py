"""Time between sessions in words, as Conversation Chronicles / ReBot put it in front of each session.

`gap_phrase(earlier, later)`: "the same day", "the next day", "3 days later", "a week later", "3 weeks later",
"a month later", "5 months later", "a year later", "2 years later".
`ago_phrase(then, now)`: "today", "yesterday", "3 days ago", ..., "2 years ago"; "" when `then` is after `now`.

Counted in UTC calendar days (both datetimes are timezone-aware, see `models.parse_time`):
- under 7 days: days (0 and 1 have their own words);
- 7 to 29 days, or under a calendar month: whole weeks (7-13 days: "a week", 14-20: "2 weeks", ...);
- under a calendar year: whole calendar months (10 May -> 9 June is still 4 weeks; 10 May -> 10 June a month);
- then whole calendar years.
"""

from __future__ import annotations

from datetime import date, datetime, timezone


def _days_months_years(earlier: datetime, later: datetime) -> tuple[int, int, int]:
    a: date = earlier.astimezone(timezone.utc).date()
    b: date = later.astimezone(timezone.utc).date()
    days = (b - a).days
    months = (b.year - a.year) * 12 + (b.month - a.month) - (b.day < a.day)
    return days, months, months // 12


def _amount(days: int, months: int, years: int) -> str:
    """'3 days', 'a week', '2 weeks', 'a month', '5 months', 'a year', '2 years' (days >= 2)."""
    if days < 7:
        return f"{days} days"
    if days < 30 or months < 1:
        weeks = days // 7
        return "a week" if weeks == 1 else f"{weeks} weeks"
    if years < 1:
        return "a month" if months == 1 else f"{months} months"
    return "a year" if years == 1 else f"{years} years"


def _phrase(earlier: datetime, later: datetime, same_day: str, one_day: str, suffix: str) -> str | None:
    days, months, years = _days_months_years(earlier, later)
    if days < 0:
        return None
    if days <= 1:
        return one_day if days else same_day
    return f"{_amount(days, months, years)} {suffix}"


def gap_phrase(earlier: datetime, later: datetime) -> str:
    """How long after `earlier` `later` came, in words ("3 weeks later"); `later` before `earlier` is "earlier"."""
    return _phrase(earlier, later, "the same day", "the next day", "later") or "earlier"


def ago_phrase(then: datetime, now: datetime) -> str:
    """How long before `now` `then` was ("3 weeks ago"); "" when `then` is after `now`."""
    return _phrase(then, now, "today", "yesterday", "ago") or ""
