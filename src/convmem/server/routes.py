"""The memory routes: each calls one `Memory` method of the caller's tenant, with the library's names.

    POST   /v1/sessions                          Memory.add_session
    POST   /v1/import                            Memory.add_sessions (of a payload in any import format)
    POST   /v1/search                            Memory.search
    POST   /v1/context                           Memory.context
    GET    /v1/users                             Memory.users          (?limit=&offset=)
    GET    /v1/users/{user}/sessions             Memory.sessions       (?limit=&offset=)
    GET    /v1/users/{user}/people               Memory.people
    GET    /v1/stats                             Memory.stats
    GET    /v1/users/{user}/facts                Memory.facts          (?at=&subject=)
    GET    /v1/users/{user}/facts/timeline       Memory.fact_timeline  (?subject=)
    GET    /v1/users/{user}/facts/contradictions Memory.contradictions (?subject=)
    GET    /v1/users/{user}/instructions         Memory.instructions, or applicable_instructions (?query=)
    GET    /v1/users/{user}/summaries            Memory.summaries      (?method=&session=)
    POST   /v1/users/{user}/instructions         Memory.add_instruction
    DELETE /v1/users/{user}/instructions/{id}    Memory.remove_instruction
    DELETE /v1/users/{user}                      Memory.forget
    DELETE /v1/users/{user}/sessions/{session}   Memory.forget(session=)

Routes are plain `def`s, so FastAPI runs the blocking library calls in its threadpool.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Path, Query, Request

from convmem import results
from convmem.api import Memory
from convmem.errors import NotFound
from convmem.ingest import parse_sessions
from convmem.server.app import tenant_memory
from convmem.server.schemas import (
    AddSessionOut,
    ContextIn,
    ContextOut,
    ContradictionsOut,
    FactsOut,
    InstructionIn,
    InstructionOut,
    InstructionsOut,
    PeopleOut,
    ForgetOut,
    ImportIn,
    ImportOut,
    SearchIn,
    SearchOut,
    SessionIn,
    SessionsOut,
    StatsOut,
    SummariesOut,
    UsersOut,
)

def install_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["server"], summary="Liveness, and whether API keys are required (no key needed)")
    def healthz(request: Request) -> dict[str, Any]:
        state = request.app.state.convmem
        return {"status": "ok", "auth": "api_keys" if state.keyed() else "none (single-tenant)",
                "proxy": state.upstream is not None}

    @app.post("/v1/sessions", response_model=AddSessionOut, tags=["memory"],
              summary="Store one session (Memory.add_session); idempotent")
    def add_session(body: SessionIn, mem: Memory = Depends(tenant_memory)) -> AddSessionOut:
        outcome = mem.add_session(body.model_dump(exclude_none=True))
        return AddSessionOut(outcome=outcome, user=str(body.user), session_id=str(body.session_id),
                             turns=len(body.turns))

    @app.post("/v1/import", response_model=ImportOut, tags=["memory"],
              summary="Import a payload in any import format (convmem, openai, locomo, longmemeval)")
    def import_(body: ImportIn, mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        user = str(body.user) if body.user is not None else None
        sessions = parse_sessions(body.data, body.format, source="request body", user=user)
        return mem.add_sessions(sessions).to_dict()

    @app.post("/v1/search", response_model=SearchOut, tags=["memory"],
              summary="The k best turns (or sessions) of one user's memory (Memory.search)")
    def search(body: SearchIn, mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        hits = mem.search(body.query, user=body.user, k=body.k, granularity=body.granularity, since=body.since,
                          until=body.until, speakers=body.speakers, roles=body.roles, neighbours=body.neighbours,
                          about=body.about)
        return {"hits": [h.to_dict() for h in hits]}

    @app.post("/v1/context", response_model=ContextOut, tags=["memory"],
              summary="A dated, cited memory block under a token budget (Memory.context)")
    def context(body: ContextIn, mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        ctx = mem.context(body.query, user=body.user, budget_tokens=body.budget_tokens, since=body.since,
                          until=body.until, speakers=body.speakers, instructions=body.instructions,
                          about=body.about)
        return ctx.to_dict()

    @app.get("/v1/users", response_model=UsersOut, tags=["memory"], summary="Users with memory (Memory.users)")
    def users(limit: int = Query(results.PAGE_LIMIT, ge=1, le=results.MAX_PAGE_LIMIT),
              offset: int = Query(0, ge=0), mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        return results.users(mem, limit=limit, offset=offset)

    @app.get("/v1/users/{user}/sessions", response_model=SessionsOut, tags=["memory"],
             summary="One user's sessions, oldest first (Memory.sessions)")
    def sessions(user: str = Path(max_length=256),
                 limit: int = Query(results.PAGE_LIMIT, ge=1, le=results.MAX_PAGE_LIMIT),
                 offset: int = Query(0, ge=0), mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        return results.sessions(mem, user, limit=limit, offset=offset)

    @app.get("/v1/users/{user}/people", response_model=PeopleOut, tags=["memory"],
             summary="The people a user's memory knows, with turns and first/last seen (Memory.people)")
    def people(user: str = Path(max_length=256), mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        return results.people(mem, user)

    @app.get("/v1/stats", response_model=StatsOut, tags=["memory"], summary="Counts for the tenant (Memory.stats)")
    def stats(mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        return results.stats(mem)

    @app.get("/v1/users/{user}/facts", response_model=FactsOut, tags=["facts"],
             summary="Facts valid now, or at `at` (Memory.facts)")
    def facts(user: str = Path(max_length=256), at: str | None = Query(None, max_length=64),
              subject: str | None = Query(None, max_length=256), mem: Memory = Depends(tenant_memory)) -> dict:
        return results.facts(mem, user, at=at, subject=subject)

    @app.get("/v1/users/{user}/facts/timeline", response_model=FactsOut, tags=["facts"],
             summary="Every fact record, closed and open (Memory.fact_timeline)")
    def fact_timeline(user: str = Path(max_length=256), subject: str | None = Query(None, max_length=256),
                      mem: Memory = Depends(tenant_memory)) -> dict:
        return results.fact_timeline(mem, user, subject=subject)

    @app.get("/v1/users/{user}/facts/contradictions", response_model=ContradictionsOut, tags=["facts"],
             summary="Attributes that changed, flagging same-session or same-day changes (Memory.contradictions)")
    def contradictions(user: str = Path(max_length=256), subject: str | None = Query(None, max_length=256),
                       mem: Memory = Depends(tenant_memory)) -> dict:
        return results.contradictions(mem, user, subject=subject)

    @app.get("/v1/users/{user}/instructions", response_model=InstructionsOut, tags=["instructions"],
             summary="Standing instructions (Memory.instructions), or those applying to `query` "
                     "(Memory.applicable_instructions)")
    def instructions(user: str = Path(max_length=256), query: str | None = Query(None, max_length=10_000),
                     mem: Memory = Depends(tenant_memory)) -> dict:
        return results.instructions(mem, user, query=query)

    @app.post("/v1/users/{user}/instructions", response_model=InstructionOut, tags=["instructions"],
              summary="Set a standing instruction (Memory.add_instruction); idempotent per text")
    def add_instruction(body: InstructionIn, user: str = Path(max_length=256),
                        mem: Memory = Depends(tenant_memory)) -> dict:
        return results.add_instruction(mem, user, body.text, kind=body.kind)

    @app.delete("/v1/users/{user}/instructions/{instruction_id}", tags=["instructions"],
                summary="Remove a standing instruction (Memory.remove_instruction)")
    def remove_instruction(user: str = Path(max_length=256), instruction_id: str = Path(max_length=256),
                           mem: Memory = Depends(tenant_memory)) -> dict:
        return results.remove_instruction(mem, user, instruction_id)

    @app.delete("/v1/users/{user}", response_model=ForgetOut, tags=["memory"],
                summary="Remove a user's whole memory (Memory.forget)")
    def forget_user(user: str = Path(max_length=256), mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        removed = mem.forget(user=user)
        if not removed:
            raise NotFound(f"user {user!r} has no stored memory")
        return {"user": user, "removed_turns": removed}

    @app.delete("/v1/users/{user}/sessions/{session}", response_model=ForgetOut, tags=["memory"],
                summary="Remove one session of a user (Memory.forget(session=))")
    def forget_session(user: str = Path(max_length=256), session: str = Path(max_length=256),
                       mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        removed = mem.forget(user=user, session=session)
        if not removed:
            raise NotFound(f"user {user!r} has no session {session!r}")
        return {"user": user, "session_id": session, "removed_turns": removed}

    @app.get("/v1/users/{user}/summaries", response_model=SummariesOut, tags=["memory"],
             summary="One summary per session, oldest first (Memory.summaries)")
    def summaries(user: str = Path(max_length=256), method: str | None = Query(None, max_length=32),
                  session: str | None = Query(None, max_length=256),
                  mem: Memory = Depends(tenant_memory)) -> dict[str, Any]:
        return results.summaries(mem, user, method=method, session=session)
