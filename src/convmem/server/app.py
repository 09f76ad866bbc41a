"""The HTTP server: `create_app(memory, keys=..., upstream=...)` returns a FastAPI app.

Routes mirror `Memory` with the same names (see `convmem.server.routes`); the OpenAI-compatible memory proxy is
`convmem.server.proxy`. Authentication: with API keys configured in the database (`convmem keys create`), every
/v1 request needs `Authorization: Bearer <key>` and works on the key's tenant only; with none, the server is
single-tenant (the memory's own tenant, "default") and `convmem serve` listens on loopback only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from convmem.api import Memory
from convmem.keys import KeyStore
from convmem.server.errors import ApiError, BodyLimit, install_error_handlers

DEFAULT_MAX_BODY = 10 * 1024 * 1024
_bearer = HTTPBearer(auto_error=False, description="An API key from `convmem keys create --tenant NAME`.")


@dataclass
class ServerState:
    memory: Memory
    keys: KeyStore | None = None
    upstream: Any = None  # OpenAICompatible or ChatModelBackend: has raw(body) and raw_stream(body)
    upstream_model: str | None = None
    memory_budget_tokens: int = 1000
    _keyed: bool = False
    _tenants: dict[str, Memory] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keyed(self) -> bool:
        """Whether API keys are required. Once a key exists this stays true (revoking keys never opens it)."""
        if not self._keyed and self.keys is not None and self.keys.configured():
            self._keyed = True
        return self._keyed

    def tenant_memory(self, tenant: str) -> Memory:
        with self._lock:
            mem = self._tenants.get(tenant)
            if mem is None:
                mem = self._tenants[tenant] = self.memory.for_tenant(tenant)
            return mem

    def memory_for(self, key: str | None) -> Memory:
        if not self.keyed():
            return self.memory  # single-tenant: any Authorization header is ignored
        if not key:
            raise ApiError(401, "unauthorized", "this server needs an API key: send 'Authorization: Bearer <key>' "
                           "(create one with `convmem keys create --tenant NAME`)", {"WWW-Authenticate": "Bearer"})
        tenant = self.keys.tenant_for(key) if self.keys else None
        if tenant is None:
            raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return self.tenant_memory(tenant)


def tenant_memory(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Memory:
    """FastAPI dependency: the `Memory` of the caller's tenant (runs in the threadpool: it may query keys)."""
    state: ServerState = request.app.state.convmem
    return state.memory_for(credentials.credentials if credentials else None)


def create_app(memory: Memory, *, keys: KeyStore | None = None, upstream: Any = None,
               upstream_model: str | None = None, memory_budget_tokens: int = 1000,
               max_body_bytes: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The convmem HTTP API for `memory`; `keys` enables tenants; `upstream` enables the chat proxy."""
    from convmem.server.proxy import install_proxy
    from convmem.server.routes import install_routes

    app = FastAPI(
        title="convmem",
        version=_version(),
        description="Long-term memory for LLM conversations. Routes mirror the Python API (`convmem.Memory`). "
                    "Errors are `{\"error\": {\"code\", \"message\"}}`.",
    )
    app.state.convmem = ServerState(memory=memory, keys=keys, upstream=upstream, upstream_model=upstream_model,
                                    memory_budget_tokens=memory_budget_tokens)
    install_error_handlers(app)
    install_routes(app)
    install_proxy(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("convmem")
    except Exception:  # not installed as a distribution
        return "0"
