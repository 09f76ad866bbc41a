"""Serving convmem: the HTTP API and OpenAI-compatible memory proxy (`create_app`), the MCP server
(`create_mcp_server`) and a local chat model behind the OpenAI API (`create_llm_app`).

Needs `pip install 'convmem[server]'`; each submodule imports FastAPI / the MCP SDK only when used.
"""

from __future__ import annotations

from typing import Any

from convmem.errors import ConfigError, require

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_bind(host: str, keyed: bool) -> None:
    """Without API keys the server is single-tenant and must not be reachable from other machines."""
    if not keyed and not is_loopback(host):
        raise ConfigError(
            f"no API keys are configured, so this server is single-tenant and only listens on 127.0.0.1, "
            f"localhost or ::1, not {host!r}; create a key first (`convmem keys create --tenant NAME`) to serve "
            f"other machines"
        )


def create_app(*args: Any, **kwargs: Any) -> Any:
    require("fastapi", "server", "the HTTP server")
    from convmem.server.app import create_app as _create

    return _create(*args, **kwargs)


def create_mcp_server(*args: Any, **kwargs: Any) -> Any:
    from convmem.server.mcp_server import create_mcp_server as _create

    return _create(*args, **kwargs)


def create_llm_app(*args: Any, **kwargs: Any) -> Any:
    require("fastapi", "server", "the HTTP server")
    from convmem.server.local_llm import create_llm_app as _create

    return _create(*args, **kwargs)


__all__ = ["check_bind", "create_app", "create_llm_app", "create_mcp_server", "is_loopback"]
