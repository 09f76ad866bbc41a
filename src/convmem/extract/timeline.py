"""Validity intervals derived from stored fact statements (Graphiti-style `valid_from` / `valid_until`).

The store keeps every statement. Per (subject, attribute), in time order (then session, turn position, order in
the turn): a statement whose value differs from the open record's starts a new record and closes the open one
(`valid_until` = the new `valid_from`); a restatement of the same value makes no new record. Deriving records at
read time means forgetting a session, or importing an older one late, gives the same records as if that session
had never existed, or had come in order.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Iterable

from convmem.extract.facts import norm_value
from convmem.models import Fact


def _key(fact: Fact) -> tuple[str, str]:
    return fact.subject.casefold(), fact.attribute


def timeline(statements: Iterable[Fact], *, subject: str | None = None) -> list[Fact]:
    """Every fact record (closed and open), by subject, attribute, then time."""
    ordered = sorted(statements, key=lambda f: (f.valid_from, f.session_id, f.position, f.seq))
    open_by_key: dict[tuple[str, str], Fact] = {}
    records: list[Fact] = []
    for statement in ordered:
        if subject is not None and statement.subject.casefold() != subject.casefold():
            continue
        key = _key(statement)
        current = open_by_key.get(key)
        if current is not None and norm_value(current.value) == norm_value(statement.value):
            continue  # restated: the record stands, from its first statement
        record = dataclasses.replace(statement, valid_until=None)
        if current is not None:
            current.valid_until = statement.valid_from
        open_by_key[key] = record
        records.append(record)
    records.sort(key=lambda f: (f.subject.casefold(), f.attribute, f.valid_from, f.session_id, f.position, f.seq))
    return records


def facts_at(statements: Iterable[Fact], at: datetime | None = None, *, subject: str | None = None) -> list[Fact]:
    """The records valid at `at` (valid_from <= at < valid_until); None: the records still open."""
    records = timeline(statements, subject=subject)
    if at is None:
        return [r for r in records if r.valid_until is None]
    return [r for r in records if r.valid_from <= at and (r.valid_until is None or at < r.valid_until)]


def contradictions(statements: Iterable[Fact], *, subject: str | None = None) -> list[dict[str, Any]]:
    """Per (subject, attribute) that changed: its records in order, and the changes that look like conflicts.

    A change is flagged when the two values were stated in the same session or on the same (UTC) day: a persona
    that says two things at once (LMEDR's consistency check), or an extraction error worth a look.
    """
    groups: dict[tuple[str, str], list[Fact]] = {}
    for record in timeline(statements, subject=subject):
        groups.setdefault(_key(record), []).append(record)
    report = []
    for records in groups.values():
        if len(records) < 2:
            continue
        conflicts = []
        for old, new in zip(records, records[1:]):
            same_session = old.session_id == new.session_id
            same_day = old.valid_from.date() == new.valid_from.date()
            if same_session or same_day:
                conflicts.append({"from": old.to_dict(), "to": new.to_dict(),
                                  "reason": "same session" if same_session else "same day"})
        report.append({"subject": records[0].subject, "attribute": records[0].attribute,
                       "changes": [r.to_dict() for r in records], "conflicts": conflicts,
                       "conflicting": bool(conflicts)})
    report.sort(key=lambda g: (not g["conflicting"], g["subject"].casefold(), g["attribute"]))
    return report
