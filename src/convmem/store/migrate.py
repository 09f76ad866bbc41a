"""Copy a whole store to another backend (SQLite <-> PostgreSQL, or between two databases of one kind).

    report = migrate("memory.db", "postgresql://app@db/convmem")
    assert report.verified

Tenant by tenant: sessions with their turns (each session atomically, through the target's `add_session`), then
users left without sessions, then facts and standing instructions (as stored, whichever extractor made them),
then cached embeddings. Resumable: a session already in the target with the same
content is skipped (`add_session` answers 'unchanged'), embeddings already there are not written again, so an
interrupted copy is finished by running the same command again. Verified at the end, per tenant, by the counts of
`stats()` and by one content hash over users, sessions (with `session_hash`), facts, instructions and vectors,
computed on each side.

Revisions are not copied (they are cache keys, not data): indexes on the target are built fresh.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from convmem.errors import InputError
from convmem.models import Fact, Instruction, Session
from convmem.store import Store, open_store
from convmem.store.base import session_hash

COUNTED = ("users", "sessions", "turns", "embeddings", "facts", "instructions")


class TenantDigest:
    """One hash over a tenant's users, sessions and vectors, fed in the stores' export order."""

    def __init__(self) -> None:
        self._users, self._sessions, self._vectors = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
        self._derived = hashlib.sha256()

    def add_users(self, users: Iterable[str]) -> None:
        for user in users:
            self._users.update(user.encode("utf-8", "surrogatepass") + b"\0")

    def add_session(self, session: Session) -> None:
        line = f"{session.user}\0{session.session_id}\0{session_hash(session)}\n"
        self._sessions.update(line.encode("utf-8", "surrogatepass"))

    def add_derived(self, user: str, facts: list[Fact], instructions: list[Instruction]) -> None:
        for record in [f.to_dict() | {"position": f.position, "seq": f.seq} for f in facts] + \
                [i.to_dict() for i in instructions]:
            line = user + "\0" + "\0".join(f"{k}={v}" for k, v in sorted(record.items())) + "\n"
            self._derived.update(line.encode("utf-8", "surrogatepass"))

    def add_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        for h in sorted(vectors):
            self._vectors.update(f"{model}\0{h}\0".encode())
            self._vectors.update(np.asarray(vectors[h], dtype="<f4").tobytes())

    def hexdigest(self) -> str:
        return hashlib.sha256(
            b"".join(d.digest() for d in (self._users, self._sessions, self._derived, self._vectors))
        ).hexdigest()


def all_users(store: Store, tenant: str, page: int = 10_000) -> list[str]:
    out: list[str] = []
    while True:
        chunk = store.users(tenant, limit=page, offset=len(out))
        out.extend(chunk)
        if len(chunk) < page:
            return out


def tenant_digest(store: Store, tenant: str) -> str:
    """The content hash of one tenant of a store (what `migrate` compares between source and target)."""
    digest = TenantDigest()
    digest.add_users(all_users(store, tenant))
    for session in store.iter_sessions(tenant):
        digest.add_session(session)
    for user, facts, instructions in store.iter_derived(tenant):
        digest.add_derived(user, facts, instructions)
    for model, vectors in store.iter_embeddings(tenant):
        digest.add_vectors(model, vectors)
    return digest.hexdigest()


@dataclass
class TenantReport:
    tenant: str
    sessions_copied: int = 0
    sessions_skipped: int = 0
    turns_copied: int = 0
    users_added: int = 0
    derived_copied: int = 0
    embeddings_copied: int = 0
    embeddings_skipped: int = 0
    source_counts: dict[str, int] = field(default_factory=dict)
    target_counts: dict[str, int] = field(default_factory=dict)
    source_hash: str = ""
    target_hash: str = ""

    @property
    def verified(self) -> bool:
        return self.source_counts == self.target_counts and self.source_hash == self.target_hash

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verified": self.verified}


@dataclass
class MigrationReport:
    source: str
    target: str
    tenants: list[TenantReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verified(self) -> bool:
        return all(t.verified for t in self.tenants)

    def totals(self) -> dict[str, int]:
        keys = ("sessions_copied", "sessions_skipped", "turns_copied", "users_added", "derived_copied",
                "embeddings_copied", "embeddings_skipped")
        return {k: sum(getattr(t, k) for t in self.tenants) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "verified": self.verified, "seconds": self.seconds,
                **self.totals(), "tenants": [t.to_dict() for t in self.tenants]}


def migrate(source: str | Store, target: str | Store, *, tenants: Iterable[str] | None = None,
            progress: Callable[[int], None] | None = None) -> MigrationReport:
    """Copy every tenant (or `tenants`) of `source` into `target`, then verify; returns a `MigrationReport`.

    `source` and `target` are locations for `open_store` (a SQLite path or a postgresql:// URL) or open stores.
    The target may be empty or hold an earlier, interrupted copy; data it holds beyond the source is kept and
    makes the verification fail. `progress(n)` is called with the number of turns handled since the last call.
    """
    src = open_store(source) if isinstance(source, str) else source
    try:
        dst = open_store(target) if isinstance(target, str) else target
    except BaseException:
        if isinstance(source, str):
            src.close()
        raise
    try:
        if src.location == dst.location and src.location != ":memory:":
            raise InputError(f"source and target are the same store ({src.location})")
        start = time.perf_counter()
        report = MigrationReport(source=src.location, target=dst.location)
        for tenant in (list(tenants) if tenants is not None else src.tenants()):
            report.tenants.append(_copy_tenant(src, dst, tenant, progress))
        report.seconds = time.perf_counter() - start
        return report
    finally:
        if isinstance(target, str):
            dst.close()
        if isinstance(source, str):
            src.close()


def _copy_tenant(src: Store, dst: Store, tenant: str, progress: Callable[[int], None] | None) -> TenantReport:
    rep = TenantReport(tenant=tenant)
    digest = TenantDigest()
    users = all_users(src, tenant)
    digest.add_users(users)
    for session in src.iter_sessions(tenant):
        digest.add_session(session)
        if session.turns:
            outcome = dst.add_session(tenant, session)
        elif _has_session(dst, tenant, session):
            outcome = "unchanged"
        else:  # a session opened by add_turns without turns: recreate it the same way
            dst.add_turns(tenant, session.user, session.session_id, [], session.started_at)
            outcome = "added"
        if outcome == "unchanged":
            rep.sessions_skipped += 1
        else:
            rep.sessions_copied += 1
            rep.turns_copied += len(session.turns)
        if progress and session.turns:
            progress(len(session.turns))
    have = set(all_users(dst, tenant))
    for user in users:
        if user not in have:
            rep.users_added += dst.add_user(tenant, user)
    for user, facts, instructions in src.iter_derived(tenant):  # after sessions: a replaced session clears its own
        digest.add_derived(user, facts, instructions)
        rep.derived_copied += dst.put_derived(tenant, user, facts, instructions)
    # embeddings last: replacing a session on the target drops the target's orphan vectors
    for model, vectors in src.iter_embeddings(tenant):
        digest.add_vectors(model, vectors)
        present = dst.get_embeddings(tenant, model, vectors.keys())
        missing = {h: v for h, v in vectors.items() if h not in present}
        dst.put_embeddings(tenant, model, missing)
        rep.embeddings_copied += len(missing)
        rep.embeddings_skipped += len(present)
    rep.source_hash = digest.hexdigest()
    rep.target_hash = tenant_digest(dst, tenant)
    src_stats, dst_stats = src.stats(tenant), dst.stats(tenant)
    rep.source_counts = {k: src_stats[k] for k in COUNTED}
    rep.target_counts = {k: dst_stats[k] for k in COUNTED}
    return rep


def _has_session(store: Store, tenant: str, session: Session) -> bool:
    return any(s["session_id"] == session.session_id for s in store.sessions(tenant, session.user, limit=10**9))
