"""`Memory`'s facts and standing-instruction methods (a mixin of `convmem.api.Memory`, kept in its own module).

Extraction runs at import: rule facts and recognised instructions are written in the same transaction as their
session; with `facts_extractor="llm"` the chat model's facts are then added to the rule facts of each new or
changed session (nothing changes when the model fails or finds nothing valid).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import datetime, time, timezone
from typing import Any, Sequence

import numpy as np

from convmem.errors import InputError, NotFound
from convmem.extract import timeline
from convmem.extract.facts import extract_facts, norm_value
from convmem.extract.instructions import KINDS, extract_instructions, make_instruction
from convmem.extract.select import DEFAULT_THRESHOLD, Selected, select
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
        """With the LLM extractor, its facts are added to the rule facts of a session that was added or changed
        (those whose value the rules already found in the same turn are left out; LLM facts number from 1000 in
        their turn)."""
        if outcome == "unchanged" or self.facts_extractor != "llm":
            return
        from convmem.extract.facts_llm import llm_facts
        from convmem.providers.chat import load_chat_model
        from convmem.providers.chat_json import JSONOutputError

        if self._chat is None:
            self._chat = load_chat_model(self._chat_spec)
        try:
            facts = llm_facts(self._chat, session)
        except JSONOutputError as exc:
            log.warning("LLM fact extraction failed for session %r, rule facts kept: %s", session.session_id, exc)
            return
        rules = self._derive(session)[0]
        seen = {(f.turn_id, norm_value(f.value)) for f in rules}
        extra = [dataclasses.replace(f, seq=1000 + f.seq) for f in facts
                 if (f.turn_id, norm_value(f.value)) not in seen]
        if extra:
            self.store.put_derived(self.tenant, session.user, rules + extra, [], replace_session=session.session_id,
                                   facts_only=True)

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
