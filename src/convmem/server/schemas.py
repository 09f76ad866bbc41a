"""Request and response bodies of the HTTP API. Field names are the library's names (`Memory` arguments).

Types and shapes are checked here (422 with the field path when wrong); meaning (ids, timestamps, formats) is
checked by the library, whose `InputError`s become 400/404/422 with its message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = str | int
Time = str | int | float


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TurnIn(Strict):
    text: str
    speaker: str | None = Field(None, description="Who spoke (default: the role).")
    role: str | None = Field(None, description="user (default), assistant, or any role name.")
    turn_id: Id | None = Field(None, description="Default: <session_id>_<n>.")
    timestamp: Time | None = Field(None, description="ISO-8601; naive means UTC.")
    metadata: dict[str, Any] | None = None


class SessionIn(Strict):
    """One session in convmem's session format (docs/formats.md)."""

    user: Id
    session_id: Id
    started_at: Time = Field(description="ISO-8601 date-time (naive means UTC) or UNIX seconds.")
    turns: list[TurnIn] = Field(min_length=1)
    participants: list[str] | None = None
    metadata: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "user": "ana", "session_id": "s1", "started_at": "2024-03-01T10:00:00+01:00",
        "turns": [{"speaker": "Ana", "role": "user", "text": "My sister Lena gets married in Sintra on June 15th."},
                  {"speaker": "assistant", "role": "assistant", "text": "Congratulations to Lena!"}]}]})


class AddSessionOut(BaseModel):
    outcome: Literal["added", "unchanged", "replaced"]
    user: str
    session_id: str
    turns: int


class ImportIn(Strict):
    format: Literal["convmem", "openai", "locomo", "longmemeval"] = "convmem"
    data: Any = Field(description="What the file would hold: one session, a list of sessions, ...")
    user: Id | None = Field(None, description="Store every session under this user.")


class ImportOut(BaseModel):
    sessions_added: int
    sessions_unchanged: int
    sessions_replaced: int
    turns_written: int
    texts_embedded: int
    seconds: float
    users: list[str]


class SearchIn(Strict):
    user: Id
    query: str
    k: int = Field(10, ge=1, le=1000)
    granularity: Literal["turn", "session"] = "turn"
    since: Time | None = None
    until: Time | None = None
    speakers: list[str] | None = None
    roles: list[str] | None = None
    neighbours: int = Field(0, ge=0, le=20)
    about: str | None = Field(None, max_length=256, description="A person's name: turns spoken by them or "
                                                               "mentioning them rank first.")


class HitOut(BaseModel):
    session_id: str
    turn_id: str
    speaker: str
    role: str
    timestamp: str
    text: str
    score: float
    position: int = 0
    metadata: dict[str, Any] = {}
    neighbours: list["HitOut"] = []


class SearchOut(BaseModel):
    hits: list[HitOut]


class ContextIn(Strict):
    user: Id
    query: str
    budget_tokens: int = Field(2000, ge=1, le=200_000)
    since: Time | None = None
    until: Time | None = None
    speakers: list[str] | None = None
    instructions: bool = Field(True, description="Put the standing instructions that apply first (false: "
                                                 "memories only).")
    about: str | None = Field(None, max_length=256, description="A person's name: turns spoken by them or "
                                                               "mentioning them rank first.")


class CitationOut(BaseModel):
    turn_id: str
    session_id: str
    speaker: str
    timestamp: str


class InstructionOut(BaseModel):
    instruction_id: str
    text: str
    kind: str
    always_on: bool
    source: Literal["api", "turn"]
    created_at: str
    session_id: str | None = None
    turn_id: str | None = None
    score: float | None = Field(None, description="Only for instructions selected for a request.")
    reason: str | None = Field(None, description="Why it applies (only for instructions selected for a request).")


class EvidenceOut(BaseModel):
    confidence: float = Field(description="P(memory holds evidence for the query), calibrated on dev data.")
    found: bool
    features: dict[str, float] = {}


class PersonOut(BaseModel):
    name: str
    roles: list[str]
    turns: int
    sessions: int
    mentioned_by_others: int
    first_seen: str
    last_seen: str


class PeopleOut(BaseModel):
    user: str
    people: list[PersonOut]


class ContextOut(BaseModel):
    text: str
    citations: list[CitationOut]
    tokens: int
    budget_tokens: int
    tokenizer: str
    instructions: list[InstructionOut] = Field([], description="Standing instructions selected for the query "
                                                               "(the first section of `text`).")
    evidence: EvidenceOut | None = Field(None, description="Whether memory holds evidence for the query.")


class FactOut(BaseModel):
    subject: str
    attribute: str
    value: str
    valid_from: str
    valid_until: str | None
    session_id: str
    turn_id: str
    extractor: Literal["rules", "llm"]
    evidence: str


class FactsOut(BaseModel):
    user: str
    facts: list[FactOut]


class ContradictionOut(BaseModel):
    subject: str
    attribute: str
    changes: list[FactOut]
    conflicts: list[dict[str, Any]]
    conflicting: bool


class ContradictionsOut(BaseModel):
    user: str
    contradictions: list[ContradictionOut]


class InstructionIn(Strict):
    text: str = Field(description="One standing instruction, e.g. 'Always answer in French.'")
    kind: Literal["allergy", "diet", "language", "format", "address", "units", "general"] | None = Field(
        None, description="Default: classified from the text.")


class InstructionsOut(BaseModel):
    user: str
    instructions: list[InstructionOut]


class SessionInfo(BaseModel):
    session_id: str
    started_at: datetime | str
    participants: list[str]
    metadata: dict[str, Any] = {}
    turns: int


class SessionsOut(BaseModel):
    user: str
    sessions: list[SessionInfo]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page, or null on the last page.")


class UsersOut(BaseModel):
    users: list[str]
    limit: int
    offset: int
    next_offset: int | None


class StatsOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    tenant: str
    users: int
    sessions: int
    turns: int


class ForgetOut(BaseModel):
    user: str
    session_id: str | None = None
    removed_turns: int


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionIn(BaseModel):
    """An OpenAI chat-completions request; fields other than these pass through to the upstream unchanged."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(None, description="Whose memory (or the X-Convmem-User header).")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)


class SummaryOut(BaseModel):
    session_id: str
    started_at: str
    text: str
    method: str = Field(description="extractive (no LLM) or llm")
    turn_ids: list[str] = Field([], description="The turns an extractive summary was taken from.")


class SummariesOut(BaseModel):
    user: str
    summaries: list[SummaryOut]
