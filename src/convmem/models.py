"""The data model: tenant -> user -> session -> turn, and what retrieval hands back.

A *tenant* is the isolation boundary (one app, one customer); a *user* is whose memory it is; a *session* is one
conversation with a start time and its participants; a *turn* is one utterance with its speaker's name and role.
Sessions may have any number of named speakers and any roles (user, assistant, author, reviewer, ...).

Time rule: every timestamp is timezone-aware. Input with an explicit offset keeps it; input without one (naive)
is declared UTC. This rule is applied in one place, `parse_time`, and documented in docs/formats.md.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from convmem.errors import InputError

DEFAULT_TENANT = "default"
_ID = re.compile(r"^[^\x00-\x1f]{1,256}$")


def parse_time(value: Any, *, what: str = "timestamp") -> datetime:
    """Parse an ISO-8601 string, a UNIX epoch number or a datetime into an aware datetime (naive = UTC)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, bool):
        raise InputError(f"{what}: expected an ISO-8601 date-time, got {value!r}")
    elif isinstance(value, (int, float)):
        try:
            dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise InputError(f"{what}: {value!r} is not a valid UNIX time") from exc
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InputError(
                f"{what}: {value[:80]!r} is not an ISO-8601 date-time (example: 2024-05-08T13:56:00+02:00)"
            ) from exc
    else:
        raise InputError(f"{what}: expected an ISO-8601 date-time string, got {type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:  # 9999-12-31T23:00-05:00 parses, but is past year 9999 in UTC: it could be stored but never read back
        dt.astimezone(timezone.utc)
    except (OverflowError, ValueError) as exc:
        raise InputError(f"{what}: {value!r} is out of range once converted to UTC") from exc
    return dt


def check_storable(value: Any, what: str) -> None:
    """Text and metadata must be valid Unicode (no lone surrogates, which JSON's \\ud800 escapes can produce),
    serialisable as JSON, and not nested beyond what JSON parsers and the stores handle."""
    import json

    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} is not valid Unicode (a lone surrogate such as \\ud800?)") from exc
    except (RecursionError, ValueError, TypeError) as exc:
        raise InputError(f"{what} cannot be stored as JSON (nested too deeply or circular)") from exc


def check_id(value: Any, what: str) -> str:
    """Ids are non-empty strings of at most 256 characters without control characters (ints are accepted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _ID.match(value) or not _encodable(value):
        raise InputError(f"{what} must be a non-empty string of at most 256 characters without control characters "
                         "(and valid Unicode)")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate: SQLite and PostgreSQL cannot store it
        return False


@dataclass(slots=True)
class Turn:
    speaker: str
    text: str
    role: str = "user"
    turn_id: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    position: int = 0


@dataclass(slots=True)
class Session:
    user: str
    session_id: str
    started_at: datetime
    turns: list[Turn]
    participants: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user = check_id(self.user, "user")
        self.session_id = check_id(self.session_id, "session_id")
        self.started_at = parse_time(self.started_at, what="started_at")
        if not self.turns:
            raise InputError(f"session {self.session_id!r} has no turns; a session needs at least one turn")
        seen: set[str] = set()
        for i, turn in enumerate(self.turns):
            turn.position = i
            if not isinstance(turn.text, str):
                raise InputError(f"session {self.session_id!r} turn {i}: text must be a string")
            if not isinstance(turn.speaker, str) or not turn.speaker.strip():
                raise InputError(f"session {self.session_id!r} turn {i}: speaker must be a non-empty string")
            if not isinstance(turn.role, str) or not turn.role.strip():
                raise InputError(f"session {self.session_id!r} turn {i}: role must be a non-empty string")
            turn.turn_id = check_id(turn.turn_id or f"{self.session_id}_{i + 1}", f"turn {i} turn_id")
            if turn.turn_id in seen:
                raise InputError(f"session {self.session_id!r}: turn_id {turn.turn_id!r} appears twice")
            seen.add(turn.turn_id)
            turn.timestamp = parse_time(turn.timestamp, what=f"turn {i} timestamp") if turn.timestamp else None
            if not isinstance(turn.metadata, dict):
                raise InputError(f"session {self.session_id!r} turn {i}: metadata must be an object")
        if not self.participants:
            self.participants = list(dict.fromkeys(t.speaker for t in self.turns))

    def check_storable(self) -> None:
        """Raise InputError unless every text and metadata value can be written (see `check_storable`)."""
        if not isinstance(self.metadata, dict):
            raise InputError(f"session {self.session_id!r}: metadata must be an object")
        check_storable([self.user, self.session_id, self.participants, self.metadata,
                        [[t.turn_id, t.speaker, t.role, t.text, t.metadata] for t in self.turns]],
                       f"session {self.session_id!r}")


@dataclass(slots=True)
class Hit:
    """One retrieved turn (or, at session granularity, one session represented by its best turn)."""

    session_id: str
    turn_id: str
    speaker: str
    role: str
    timestamp: datetime
    text: str
    score: float
    position: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    neighbours: list["Hit"] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["timestamp"] = self.timestamp.isoformat()
        out["neighbours"] = [n.to_dict() for n in self.neighbours]
        return out


@dataclass(slots=True)
class Citation:
    turn_id: str
    session_id: str
    speaker: str
    timestamp: str


@dataclass(slots=True)
class Context:
    """A block of text for an LLM, never over `budget_tokens` as counted by `tokenizer`.

    `instructions`: the user's standing instructions selected for this request (`Instruction.to_dict()` plus
    `reason`), rendered as the block's first section.
    `evidence`: whether memory holds evidence for the request (`{"confidence", "found", "features"}`, see
    `convmem.retrieve.abstain`); when not found, the text says so after the memories.
    """

    text: str
    citations: list[Citation]
    tokens: int
    budget_tokens: int
    tokenizer: str
    instructions: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Fact:
    """One statement about a subject's attribute, valid from `valid_from` until `valid_until` (None: still valid).

    Extracted from the turn `turn_id` of session `session_id` by `extractor` ("rules" or "llm"); `evidence` is the
    sentence it came from. The store keeps every statement; validity intervals are derived from them in time order
    (`convmem.extract.timeline`), so a newer value closes the older one and nothing is ever overwritten.
    """

    subject: str
    attribute: str
    value: str
    valid_from: datetime
    session_id: str
    turn_id: str
    extractor: str = "rules"
    valid_until: datetime | None = None
    evidence: str = ""
    position: int = 0  # the turn's position in its session (orders statements of one session)
    seq: int = 0  # the statement's number within its turn

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "attribute": self.attribute, "value": self.value,
                "valid_from": self.valid_from.isoformat(),
                "valid_until": self.valid_until.isoformat() if self.valid_until else None,
                "session_id": self.session_id, "turn_id": self.turn_id, "extractor": self.extractor,
                "evidence": self.evidence}


@dataclass(slots=True)
class Instruction:
    """A standing instruction or preference of a user, applied to later requests (NLSI).

    `source` is "api" (set with `Memory.add_instruction`) or "turn" (recognised in the user turn `turn_id` of
    session `session_id`, and forgotten with it). `always_on` ones are applied to every request.
    """

    instruction_id: str
    text: str
    kind: str
    always_on: bool
    source: str
    created_at: datetime
    session_id: str | None = None
    turn_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"instruction_id": self.instruction_id, "text": self.text, "kind": self.kind,
                "always_on": self.always_on, "source": self.source, "created_at": self.created_at.isoformat(),
                "session_id": self.session_id, "turn_id": self.turn_id}
