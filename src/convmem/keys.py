"""API keys: each key maps to one tenant. Only the SHA-256 of a key is stored; the key itself is shown once.

Keys live in the same database as the memory, in their own table (created on first use):

    convmem_api_keys(key_hash TEXT PRIMARY KEY, tenant TEXT, label TEXT, created_at TEXT, revoked_at TEXT)

`created_at`/`revoked_at` are ISO-8601 UTC strings. A key looks like `cm_<43 url-safe characters>` (32 random
bytes). A key is named in listings by its *key id*: the first 12 hex digits of its hash, which says nothing about
the key itself.

>>> keys = KeyStore("memory.db")
>>> key, info = keys.create("acme", label="backend")
>>> keys.tenant_for(key)
'acme'
>>> keys.revoke(info.key_id)
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from convmem.errors import InputError, NotFound, StoreError, require
from convmem.models import check_id

KEY_PREFIX = "cm_"
KEY_ID_LENGTH = 12
_SCHEMA = """CREATE TABLE IF NOT EXISTS convmem_api_keys (
    key_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    revoked_at TEXT
)"""
_COLUMNS = "key_hash, tenant, label, created_at, revoked_at"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    tenant: str
    label: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


def _info(row: Sequence[Any]) -> KeyInfo:
    return KeyInfo(key_id=row[0][:KEY_ID_LENGTH], tenant=row[1], label=row[2], created_at=row[3], revoked_at=row[4])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class KeyStore:
    """The API keys of one database (SQLite file or `postgresql://` URL), independent of the memory store classes."""

    def __init__(self, location: str | os.PathLike[str]):
        self.location = os.fspath(location)
        self._lock = threading.RLock()
        self._pg = self.location.startswith(("postgresql://", "postgres://"))
        self._param = "%s" if self._pg else "?"
        self._conn: Any = None
        self._connect()

    # -- connection -----------------------------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            if self._pg:
                psycopg = require("psycopg", "postgres", "API keys in PostgreSQL")
                self._conn = psycopg.connect(self.location, autocommit=True)
            else:
                self._conn = sqlite3.connect(self.location, check_same_thread=False, isolation_level=None,
                                             timeout=30)
                self._conn.execute("PRAGMA busy_timeout = 30000")
            self._conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the API key table in {self.location}: {exc}") from exc
        except Exception as exc:  # psycopg errors, without importing psycopg up front
            if type(exc).__module__.startswith("psycopg"):
                raise StoreError(f"cannot open the API key table in PostgreSQL: {exc}") from exc
            raise

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        sql = sql.replace("?", self._param)
        with self._lock:
            for attempt in (0, 1):
                try:
                    cur = self._conn.execute(sql, tuple(args))
                    return list(cur.fetchall()) if cur.description else []
                except sqlite3.Error as exc:
                    raise StoreError(f"API key table: {exc}") from exc
                except Exception as exc:
                    if not type(exc).__module__.startswith("psycopg"):
                        raise
                    if attempt == 0 and getattr(self._conn, "closed", False):
                        self._connect()  # the connection was lost: reconnect once
                        continue
                    raise StoreError(f"API key table: {exc}") from exc
        return []

    # -- operations -----------------------------------------------------------------------------------------
    def create(self, tenant: str, *, label: str = "") -> tuple[str, KeyInfo]:
        """A new key for `tenant`: returns (the key, shown only now; its info)."""
        tenant = check_id(tenant, "tenant")
        if not isinstance(label, str) or len(label) > 256:
            raise InputError("label must be a string of at most 256 characters")
        key = new_key()
        digest = hash_key(key)
        created = _now()
        self._execute(f"INSERT INTO convmem_api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, NULL)",
                      (digest, tenant, label, created))
        return key, KeyInfo(digest[:KEY_ID_LENGTH], tenant, label, created, None)

    def list(self, *, tenant: str | None = None, include_revoked: bool = True) -> list[KeyInfo]:
        sql, args = f"SELECT {_COLUMNS} FROM convmem_api_keys WHERE 1=1", []
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(check_id(tenant, "tenant"))
        if not include_revoked:
            sql += " AND revoked_at IS NULL"
        return [_info(r) for r in self._execute(sql + " ORDER BY created_at, key_hash", args)]

    def revoke(self, key_or_id: str) -> KeyInfo:
        """Revoke a key, named by its key id (from `list`) or by the key itself. Revoking twice is harmless."""
        if not isinstance(key_or_id, str) or not key_or_id.strip():
            raise InputError("name the key to revoke by its key id (see `convmem keys list`) or by the key itself")
        token = key_or_id.strip()
        if token.startswith(KEY_PREFIX):
            rows = self._execute(f"SELECT {_COLUMNS} FROM convmem_api_keys WHERE key_hash = ?", (hash_key(token),))
        else:
            if len(token) < 6 or any(c not in "0123456789abcdef" for c in token.lower()):
                raise InputError(f"{token[:20]!r} is neither a key (cm_...) nor a key id (hex, as `keys list` shows)")
            rows = self._execute(f"SELECT {_COLUMNS} FROM convmem_api_keys WHERE key_hash LIKE ?",
                                 (token.lower() + "%",))
        if not rows:
            raise NotFound(f"no API key {token[:20]!r}; `convmem keys list` shows the key ids")
        if len(rows) > 1:
            raise InputError(f"key id {token!r} matches {len(rows)} keys; give more of it")
        if rows[0][4] is None:
            self._execute("UPDATE convmem_api_keys SET revoked_at = ? WHERE key_hash = ?", (_now(), rows[0][0]))
            rows = self._execute(f"SELECT {_COLUMNS} FROM convmem_api_keys WHERE key_hash = ?", (rows[0][0],))
        return _info(rows[0])

    def tenant_for(self, key: str) -> str | None:
        """The tenant of an active key, else None (unknown or revoked)."""
        if not isinstance(key, str) or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        rows = self._execute("SELECT tenant FROM convmem_api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                             (hash_key(key),))
        return rows[0][0] if rows else None

    def configured(self) -> bool:
        """Whether any key was ever created (revoked keys count: revoking every key does not open the server)."""
        return bool(self._execute("SELECT 1 FROM convmem_api_keys LIMIT 1"))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "KeyStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
