"""Facts and standing instructions in the stores: one set of SQL for both backends.

Both tables are keyed like the others (tenant, user, ...). `facts` holds every extracted statement with its
source session and turn (validity intervals are derived on read, `convmem.extract.timeline`); `instructions`
holds standing instructions set through the API (no session) or recognised in a turn (session and turn set, so
forgetting the session forgets them). The SQL here runs on a SQLite connection or a psycopg cursor: `Dialect`
says which placeholder and schema prefix to use; every statement is valid in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from convmem.models import Fact, Instruction

FACT_COLUMNS = ("tenant, user_id, session_id, turn_id, seq, position, subject, attribute, value, valid_from,"
                " valid_ts, extractor, evidence")
INSTRUCTION_COLUMNS = ("tenant, user_id, instruction_id, text, kind, always_on, source, session_id, turn_id,"
                       " created_at, created_ts")


@dataclass(frozen=True)
class Dialect:
    ph: str  # "?" or "%s"
    prefix: str  # "" or "convmem."
    ts: Any  # datetime -> the value stored in the *_ts columns

    def sql(self, text: str) -> str:
        return text.replace("?", self.ph).replace("{p}", self.prefix)


def fact_values(tenant: str, user: str, f: Fact, dialect: Dialect) -> tuple:
    return (tenant, user, f.session_id, f.turn_id, f.seq, f.position, f.subject, f.attribute, f.value,
            f.valid_from.isoformat(), dialect.ts(f.valid_from), f.extractor, f.evidence)


def fact_from_row(row: Sequence[Any]) -> Fact:
    session_id, turn_id, seq, position, subject, attribute, value, valid_from, extractor, evidence = row
    return Fact(subject=subject, attribute=attribute, value=value, valid_from=datetime.fromisoformat(valid_from),
                session_id=session_id, turn_id=turn_id, extractor=extractor, evidence=evidence, position=position,
                seq=seq)


def instruction_values(tenant: str, user: str, i: Instruction, dialect: Dialect) -> tuple:
    return (tenant, user, i.instruction_id, i.text, i.kind, 1 if i.always_on else 0, i.source, i.session_id,
            i.turn_id, i.created_at.isoformat(), dialect.ts(i.created_at))


def instruction_from_row(row: Sequence[Any]) -> Instruction:
    instruction_id, text, kind, always_on, source, session_id, turn_id, created_at = row
    return Instruction(instruction_id=instruction_id, text=text, kind=kind, always_on=bool(always_on), source=source,
                       created_at=datetime.fromisoformat(created_at), session_id=session_id, turn_id=turn_id)


def write_derived(cur: Any, d: Dialect, tenant: str, user: str, facts: Iterable[Fact],
                  instructions: Iterable[Instruction], *, replace_session: str | None = None,
                  replace_facts_only: bool = False) -> int:
    """Insert facts and instructions (rows already there are kept); with `replace_session`, first delete that
    session's facts (and, unless `replace_facts_only`, its recognised instructions). Returns rows inserted."""
    if replace_session is not None:
        clear_session(cur, d, tenant, user, replace_session, facts_only=replace_facts_only)
    inserted = 0
    fact_rows = [fact_values(tenant, user, f, d) for f in facts]
    if fact_rows:
        res = cur.executemany(d.sql(f"INSERT INTO {{p}}facts ({FACT_COLUMNS}) VALUES ({', '.join(['?'] * 13)})"
                                    " ON CONFLICT DO NOTHING"), fact_rows)
        inserted += max((res if res is not None else cur).rowcount, 0)  # psycopg's executemany returns None
    for ins in instructions:  # one by one: rowcount says whether it was new
        res = cur.execute(d.sql(f"INSERT INTO {{p}}instructions ({INSTRUCTION_COLUMNS})"
                                f" VALUES ({', '.join(['?'] * 11)}) ON CONFLICT DO NOTHING"),
                          instruction_values(tenant, user, ins, d))
        inserted += max(res.rowcount, 0)
    return inserted


def clear_session(cur: Any, d: Dialect, tenant: str, user: str, session_id: str, *, facts_only: bool = False) -> None:
    args = (tenant, user, session_id)
    cur.execute(d.sql("DELETE FROM {p}facts WHERE tenant=? AND user_id=? AND session_id=?"), args)
    if not facts_only:
        cur.execute(d.sql("DELETE FROM {p}instructions WHERE tenant=? AND user_id=? AND session_id=?"), args)


def forget_derived(cur: Any, d: Dialect, tenant: str, user: str, session_id: str | None) -> None:
    """A user's facts and instructions (all of them), or one session's (facts and recognised instructions)."""
    if session_id is not None:
        clear_session(cur, d, tenant, user, session_id)
        return
    for table in ("facts", "instructions"):
        cur.execute(d.sql(f"DELETE FROM {{p}}{table} WHERE tenant=? AND user_id=?"), (tenant, user))


def read_facts(cur: Any, d: Dialect, tenant: str, user: str) -> list[Fact]:
    cur = cur.execute(d.sql(
        "SELECT session_id, turn_id, seq, position, subject, attribute, value, valid_from, extractor, evidence"
        " FROM {p}facts WHERE tenant=? AND user_id=? ORDER BY valid_ts, session_id, position, seq, turn_id"),
        (tenant, user))
    return [fact_from_row(r) for r in cur.fetchall()]


def read_instructions(cur: Any, d: Dialect, tenant: str, user: str) -> list[Instruction]:
    cur = cur.execute(d.sql(
        "SELECT instruction_id, text, kind, always_on, source, session_id, turn_id, created_at"
        " FROM {p}instructions WHERE tenant=? AND user_id=? ORDER BY created_ts, instruction_id"), (tenant, user))
    return [instruction_from_row(r) for r in cur.fetchall()]


def remove_instruction(cur: Any, d: Dialect, tenant: str, user: str, instruction_id: str) -> bool:
    cur = cur.execute(d.sql("DELETE FROM {p}instructions WHERE tenant=? AND user_id=? AND instruction_id=?"),
                      (tenant, user, instruction_id))
    return cur.rowcount > 0


def derived_users(cur: Any, d: Dialect, tenant: str) -> list[str]:
    cur = cur.execute(d.sql("SELECT user_id FROM {p}facts WHERE tenant=? UNION"
                            " SELECT user_id FROM {p}instructions WHERE tenant=? ORDER BY 1"), (tenant, tenant))
    return [r[0] for r in cur.fetchall()]


def derived_counts(cur: Any, d: Dialect, tenant: str) -> dict[str, int]:
    cur = cur.execute(d.sql("SELECT (SELECT COUNT(*) FROM {p}facts WHERE tenant=?),"
                            " (SELECT COUNT(*) FROM {p}instructions WHERE tenant=?)"), (tenant, tenant))
    facts, instructions = cur.fetchone()
    return {"facts": facts, "instructions": instructions}
