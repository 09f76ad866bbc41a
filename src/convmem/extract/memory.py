"""`Memory`'s facts and standing-instruction methods (a mixin of `convmem.api.Memory`, kept in its own module).

Extraction runs at import: rule facts and recognised instructions are written in the same transaction as their
session; with `facts_extractor="llm"` the chat model's facts are then added to the rule facts of each new or
changed session (nothing changes when the model fails or finds nothing valid). `reextract` runs the same fact
extraction again over stored sessions (history imported before facts existed, or before an LLM was configured).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time as clock
from datetime import datetime, time, timezone
from typing import Any, Callable, Sequence

import numpy as np

from convmem.errors import InputError, NotFound
from convmem.extract import timeline
from convmem.extract.facts import extract_facts, norm_value
from convmem.extract.instructions import KINDS, extract_instructions, make_instruction
from convmem.extract.select import DEFAULT_THRESHOLD, Selected, select
from convmem.extract.text import is_user_role
from convmem.models import Fact, Instruction, Session, Turn, check_id, check_storable, parse_time

log = logging.getLogger("convmem")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXTRACTORS = ("rules", "llm")


def parse_at(at: datetime | str | None) -> datetime | None:
    """A moment for `facts(at=)`: a date alone (YYYY-MM-DD) means the end of that day, UTC."""
    if at is None:
        return None
    if isinstance(at, str) and _DATE_ONLY.match(at.strip()):
        day = parse_time(at.strip() + "T00:00:00", what="at").date()
        return datetime.combine(day, time.max, tzinfo=timezone.utc)
    return parse_time(at, what="at")


@dataclasses.dataclass
class SessionFacts:
    """One extraction of a session's facts: what to store, and what the model did."""

    rules: list[Fact]
    llm: list[Fact] = dataclasses.field(default_factory=list)  # new LLM facts, stored beside the rule facts
    kept: list[Fact] = dataclasses.field(default_factory=list)  # LLM facts already stored that stay (no new ones)
    read: bool = False  # the model read the session (it has a user turn)
    written: int = 0  # items the model wrote
    valid: int = 0  # items validation kept (grounded in their turn); some may repeat a rule fact
    failed: bool = False  # no JSON after the retries
    seconds: float = 0.0  # spent in the model

    @property
    def facts(self) -> list[Fact]:
        return self.rules + self.llm + self.kept


@dataclasses.dataclass
class ReextractReport:
    """What `Memory.reextract` did; reports of several runs add up (`merge`)."""

    extractor: str = "rules"
    users: int = 0
    sessions: int = 0
    sessions_changed: int = 0  # sessions whose stored facts differed and were replaced
    facts_rules: int = 0
    facts_llm: int = 0  # LLM facts this run found (valid, and not a value the rules found in the same turn)
    facts_llm_kept: int = 0  # LLM facts stored before that stay: rules-only runs, and sessions the model failed on
    llm_also_found_by_rules: int = 0
    items_written_by_model: int = 0
    items_dropped_by_validation: int = 0
    sessions_llm_read: int = 0
    sessions_llm_failed: int = 0
    llm_seconds: float = 0.0
    seconds: float = 0.0

    def add(self, run: SessionFacts, changed: bool) -> None:
        self.sessions += 1
        self.sessions_changed += changed
        self.facts_rules += len(run.rules)
        self.sessions_llm_read += run.read
        self.sessions_llm_failed += run.failed
        self.llm_seconds += run.seconds
        self.facts_llm += len(run.llm)
        self.facts_llm_kept += len(run.kept)
        self.llm_also_found_by_rules += run.valid - len(run.llm)
        self.items_written_by_model += run.written
        self.items_dropped_by_validation += run.written - run.valid

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReextractReport":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})

    def merge(self, other: "ReextractReport") -> None:
        for f in dataclasses.fields(self):
            if f.name != "extractor":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seconds_per_session"] = self.llm_seconds / self.sessions_llm_read if self.sessions_llm_read else None
        return out


def _fact_rows(facts: Sequence[Fact]) -> list[tuple]:
    """Facts as comparable rows (a session's stored facts against a new extraction)."""
    return sorted((f.session_id, f.turn_id, f.seq, f.position, f.subject, f.attribute, f.value,
                   f.valid_from.isoformat(), f.extractor, f.evidence) for f in facts)


class FactsAndInstructions:
    """Facts that change over time and standing instructions, per user (see docs/memory.md)."""

    store: Any
    tenant: str
    facts_extractor: str = "rules"
    instruction_threshold: float = DEFAULT_THRESHOLD

    def _init_understanding(self, facts_extractor: str, chat_model: Any) -> None:
        if facts_extractor not in EXTRACTORS:
            raise InputError(f"facts_extractor must be one of {EXTRACTORS}, got {facts_extractor!r}")
        if facts_extractor == "llm" and chat_model is None:
            raise InputError("facts_extractor='llm' needs a chat model: pass chat_model= (e.g. 'smollm2' or a URL)")
        self.facts_extractor = facts_extractor
        self._chat_spec = chat_model
        self._chat = None
        self._vectors: dict[str, np.ndarray] = {}

    # -- extraction at import -------------------------------------------------------------------------------
    def _derive(self, session: Session) -> tuple[list[Fact], list[Instruction]]:
        return (extract_facts(session.turns, session.session_id, session.started_at),
                extract_instructions(session.user, session.turns, session.session_id, session.started_at))

    def _after_write(self, session: Session, outcome: str) -> None:
        """With the LLM extractor, its facts are added to the rule facts of a session that was added or changed."""
        if outcome == "unchanged" or self.facts_extractor != "llm":
            return
        run = self._session_facts(session)
        if run.llm:
            self.store.put_derived(self.tenant, session.user, run.facts, [], replace_session=session.session_id,
                                   facts_only=True)

    def _session_facts(self, session: Session, *, stored_llm: Sequence[Fact] = ()) -> SessionFacts:
        """A session's facts: the rules', plus with the LLM extractor the model's (those whose value the rules
        already found in the same turn left out; LLM facts number from 1000 in their turn). When the model's output
        is not JSON after `complete_json`'s retries, or without the LLM extractor, `stored_llm` (the session's LLM
        facts already stored) stay."""
        run = SessionFacts(rules=extract_facts(session.turns, session.session_id, session.started_at))
        if self.facts_extractor != "llm":
            run.kept = list(stored_llm)
            return run
        from convmem.extract.facts_llm import llm_facts_raw
        from convmem.providers.chat import load_chat_model
        from convmem.providers.chat_json import JSONOutputError

        if self._chat is None:
            self._chat = load_chat_model(self._chat_spec)
        run.read = any(is_user_role(t.role) for t in session.turns)
        start = clock.perf_counter()
        try:
            facts, run.written = llm_facts_raw(self._chat, session)
        except JSONOutputError as exc:
            log.warning("LLM fact extraction failed for session %r, rule facts kept: %s", session.session_id, exc)
            run.failed, run.kept = True, list(stored_llm)
        else:
            seen = {(f.turn_id, norm_value(f.value)) for f in run.rules}
            run.valid = len(facts)
            run.llm = [dataclasses.replace(f, seq=1000 + f.seq) for f in facts
                       if (f.turn_id, norm_value(f.value)) not in seen]
        run.seconds = clock.perf_counter() - start
        return run

    def reextract(self, user: str | None = None, *, limit_sessions: int | None = None,
                  progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Run fact extraction again over the stored sessions of `user` (default: every user of the tenant): the
        rules, and the chat model with `facts_extractor="llm"`. Each session's facts are replaced by the new ones
        (instructions are left alone); a session whose facts come out the same is not written, so a second run
        changes nothing. LLM facts already stored stay when the model's output is not JSON and in a run without
        the LLM extractor (which cannot redo them). A session forgotten while this runs gets no facts back.
        `limit_sessions`: stop after that many sessions. `progress` is called after each session with {user,
        session_id, facts_rules, facts_llm, llm_seconds, changed}. Returns the report (`ReextractReport.to_dict`;
        `seconds_per_session`: model time per session it read)."""
        if limit_sessions is not None and (not isinstance(limit_sessions, int) or isinstance(limit_sessions, bool)
                                           or limit_sessions < 1):
            raise InputError("limit_sessions must be a positive integer")
        start = clock.perf_counter()
        report = ReextractReport(extractor=self.facts_extractor)
        for name in [check_id(user, "user")] if user is not None else self._every_user():
            if limit_sessions is not None and report.sessions >= limit_sessions:
                break
            stored: dict[str, list[Fact]] = {}
            for f in self.store.facts(self.tenant, name):
                stored.setdefault(f.session_id, []).append(f)
            written: list[Fact] = []
            before = report.sessions
            for session in self.store.iter_sessions(self.tenant, user=name):
                if limit_sessions is not None and report.sessions >= limit_sessions:
                    break
                old = stored.get(session.session_id, [])
                run = self._session_facts(session, stored_llm=[f for f in old if f.extractor == "llm"])
                changed = _fact_rows(run.facts) != _fact_rows(old)
                if changed:  # put_derived writes nothing when the session was forgotten meanwhile
                    self.store.put_derived(self.tenant, name, run.facts, [], replace_session=session.session_id,
                                           facts_only=True)
                    written += run.facts
                report.add(run, changed)
                if progress:
                    progress({"user": name, "session_id": session.session_id, "facts_rules": len(run.rules),
                              "facts_llm": len(run.llm), "llm_seconds": run.seconds, "changed": changed})
            report.users += report.sessions > before
            self._embed_fact_keys(written)
        report.seconds = clock.perf_counter() - start
        return report.to_dict()

    def _every_user(self) -> list[str]:
        users: list[str] = []
        while True:
            page = self.store.users(self.tenant, limit=1000, offset=len(users))
            users += page
            if len(page) < 1000:
                return users

    def _embed_fact_keys(self, facts: Sequence[Fact]) -> None:
        """With `fact_keys`, embed (and cache) the key texts of facts just written, so searches need not."""
        retriever = getattr(self, "retriever", None)
        if facts and retriever is not None and retriever.dense and retriever.fact_keys:
            from convmem.index.fact_keys import fact_texts
            from convmem.index.user_index import embed_missing

            embed_missing(self.store, self.tenant, self.embedder, fact_texts(facts))

    def _derive_turns(self, user: str, session: str, turns: Sequence[Turn], started_at: datetime) -> None:
        """Facts and instructions of appended turns (ids are set by the store); idempotent."""
        facts = extract_facts(turns, session, started_at)
        instructions = extract_instructions(user, turns, session, started_at)
        if facts or instructions:
            self.store.put_derived(self.tenant, user, facts, instructions)

    # -- facts ----------------------------------------------------------------------------------------------
    def _statements(self, user: str, subject: str | None) -> list[Fact]:
        if subject is not None and (not isinstance(subject, str) or not subject.strip()):
            raise InputError("subject must be a non-empty string (a speaker's name)")
        return self.store.facts(self.tenant, check_id(user, "user"))

    def facts(self, user: str, *, at: datetime | str | None = None, subject: str | None = None) -> list[Fact]:
        """The facts valid at `at` (default: the current ones, i.e. not yet replaced), optionally of one subject.
        A date alone (YYYY-MM-DD) means the end of that day (UTC)."""
        when = parse_at(at)
        return timeline.facts_at(self._statements(user, subject), when, subject=subject)

    def fact_timeline(self, user: str, *, subject: str | None = None) -> list[Fact]:
        """Every fact record, closed (valid_until set) and open, by subject, attribute and time."""
        return timeline.timeline(self._statements(user, subject), subject=subject)

    def contradictions(self, user: str, *, subject: str | None = None) -> list[dict[str, Any]]:
        """Per (subject, attribute) that changed: the changes, flagging those within one session or one day."""
        return timeline.contradictions(self._statements(user, subject), subject=subject)

    # -- standing instructions ------------------------------------------------------------------------------
    def add_instruction(self, user: str, text: str, *, kind: str | None = None) -> Instruction:
        """Set a standing instruction ("Always answer in French", "I'm allergic to nuts"); idempotent per text."""
        user = check_id(user, "user")
        if not isinstance(text, str) or not text.strip():
            raise InputError("an instruction must be a non-empty string, e.g. 'Always answer in French.'")
        if len(text) > 1000:
            raise InputError(f"an instruction is at most 1000 characters (got {len(text)}); state one rule at a time")
        if kind is not None and kind not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)} (or left out to classify it), got {kind!r}")
        check_storable(text, "instruction")
        ins = make_instruction(user, text.strip(), source="api", created_at=datetime.now(timezone.utc), kind=kind)
        for stored in self.store.instructions(self.tenant, user):
            if stored.instruction_id == ins.instruction_id:
                return stored
        self.store.put_derived(self.tenant, user, [], [ins])
        return ins

    def instructions(self, user: str) -> list[Instruction]:
        """A user's standing instructions (set through the API or recognised in their turns), oldest first."""
        return self.store.instructions(self.tenant, check_id(user, "user"))

    def applicable_instructions(self, user: str, query: str) -> list[Selected]:
        """The instructions that apply to a request (the rule: `convmem.extract.select`), with the reason."""
        if not isinstance(query, str):
            raise InputError("query must be a string")
        return self._select(self.instructions(user), query, None)

    def remove_instruction(self, user: str, instruction_id: str) -> None:
        """Remove one standing instruction (NotFound if the user has none with this id)."""
        user = check_id(user, "user")
        if not self.store.remove_instruction(self.tenant, user, check_id(instruction_id, "instruction_id")):
            raise NotFound(f"user {user!r} has no instruction {instruction_id!r} (list them with instructions)")

    def _select(self, instructions: list[Instruction], query: str, qvec: np.ndarray | None) -> list[Selected]:
        if not instructions:
            return []
        embed = None
        if getattr(self, "retriever", None) is None or self.retriever.dense:
            def embed(texts: list[str]) -> np.ndarray:
                missing = [t for t in texts[1:] if t not in self._vectors]
                if missing:
                    if len(self._vectors) > 10_000:
                        self._vectors.clear()
                    self._vectors.update(zip(missing, self.embedder.embed_batch(missing)))
                first = qvec if qvec is not None else self.embedder.embed(texts[0])
                return np.stack([first, *(self._vectors[t] for t in texts[1:])])
        return select(instructions, query, embed=embed, threshold=self.instruction_threshold)
