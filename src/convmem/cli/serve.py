"""`convmem serve`, `convmem mcp` and `convmem keys create|list|revoke`: serving memory to apps and agents."""

from __future__ import annotations

import click

from convmem.cli import clean_errors, db_option, emit_json, open_memory, tenant_option


def _location(db: str | None) -> str:
    from convmem.api import default_db_path

    return db or default_db_path()


def _say(message: str) -> None:
    click.echo(f"convmem: {message}", err=True)


def _auth_banner(keys, host: str, tenant: str) -> bool:
    """Check the bind address against the key mode and say which mode the server runs in; True if keyed."""
    from convmem.server import check_bind

    keyed = keys.configured()
    check_bind(host, keyed)
    if keyed:
        active = keys.list(include_revoked=False)
        _say(f"API keys required: {len(active)} active key(s) for {len({k.tenant for k in active})} tenant(s); "
             f"each key sees only its tenant's memory")
    else:
        _say(f"no API keys configured: single-tenant mode (tenant {tenant!r}), listening on loopback only "
             f"(create keys with `convmem keys create --tenant NAME` to serve several tenants)")
    return keyed


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (only loopback while no API keys exist).")
@click.option("--port", default=8420, show_default=True, type=click.IntRange(0, 65535))
@click.option("--upstream", default=None, metavar="BASE_URL", envvar="CONVMEM_UPSTREAM",
              help="OpenAI-compatible API root the chat proxy forwards to, e.g. http://localhost:11434/v1 "
                   "($CONVMEM_UPSTREAM).")
@click.option("--upstream-key", default=None, envvar="CONVMEM_UPSTREAM_API_KEY",
              help="API key for the upstream ($CONVMEM_UPSTREAM_API_KEY).")
@click.option("--upstream-model", default=None, help="Model name sent upstream, replacing the client's.")
@click.option("--local-model", default=None, metavar="smollm2|PATH",
              help="Answer /v1/chat/completions with a local model (SmolLM2-135M, a .gguf file or a model folder) "
                   "instead of an upstream.")
@click.option("--memory-budget", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Token budget of the memory block the chat proxy adds.")
@click.option("--max-body-mb", default=10.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Largest request body accepted (413 above it).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@db_option
@tenant_option
@clean_errors
def serve(host: str, port: int, upstream: str | None, upstream_key: str | None, upstream_model: str | None,
          local_model: str | None, memory_budget: int, max_body_mb: float, log_level: str, db: str | None,
          tenant: str) -> None:
    """Serve the HTTP API (routes mirror the library) and the OpenAI-compatible memory proxy."""
    from convmem.errors import ConfigError, require

    uvicorn = require("uvicorn", "server", "the HTTP server")
    from convmem.keys import KeyStore
    from convmem.server import create_app

    if upstream and local_model:
        raise ConfigError("give either --upstream or --local-model, not both")
    location = _location(db)
    keys = KeyStore(location)
    _auth_banner(keys, host, tenant)
    mem = open_memory(location, tenant)
    backend = None
    if upstream:
        from convmem.providers.llm_openai import OpenAICompatible

        backend = OpenAICompatible(upstream, api_key=upstream_key or "", model=upstream_model)
        _say(f"chat proxy: /v1/chat/completions -> {upstream}")
    elif local_model:
        from convmem.providers.chat import load_chat_model
        from convmem.server.local_llm import ChatModelBackend

        _say(f"loading local model {local_model} ...")
        model = load_chat_model(local_model)
        getattr(model, "load", lambda: None)()
        backend = ChatModelBackend(model)
        _say(f"chat proxy: /v1/chat/completions -> {model.name} (in process)")
    else:
        _say("chat proxy off (start with --upstream BASE_URL or --local-model smollm2 to enable it)")
    mem.embedder  # load the embedding model now rather than on the first request
    app = create_app(mem, keys=keys, upstream=backend, upstream_model=upstream_model,
                     memory_budget_tokens=memory_budget, max_body_bytes=int(max_body_mb * 1024 * 1024))
    shown = f"[{host}]" if ":" in host else host
    _say(f"serving http://{shown}:{port} (OpenAPI at /openapi.json, docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@click.command("mcp")
@click.option("--http", "http", is_flag=True, help="Serve streamable HTTP (at /mcp) instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --http: address to listen on (only loopback while no API keys exist).")
@click.option("--port", default=8421, show_default=True, type=click.IntRange(0, 65535), help="With --http: port.")
@db_option
@tenant_option
@clean_errors
def mcp(http: bool, host: str, port: int, db: str | None, tenant: str) -> None:
    """Serve the memory tools (one per Memory operation: remember, search, context, facts, ...) over MCP: stdio,
    or streamable HTTP."""
    from convmem.errors import require
    from convmem.keys import KeyStore
    from convmem.server.mcp_server import create_mcp_server, mcp_http_app

    location = _location(db)
    mem = open_memory(location, tenant)
    if not http:
        create_mcp_server(mem).run("stdio")  # stdout carries the protocol: nothing else may print there
        return
    uvicorn = require("uvicorn", "server", "the MCP HTTP server")
    keys = KeyStore(location)
    _auth_banner(keys, host, tenant)
    shown = f"[{host}]" if ":" in host else host
    _say(f"MCP over streamable HTTP at http://{shown}:{port}/mcp")
    uvicorn.run(mcp_http_app(mem, keys=keys, host=host), host=host, port=port, log_level="warning")


@click.group()
def keys() -> None:
    """API keys: each key gives access to one tenant's memory (stored hashed, shown once)."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant the key gives access to.")
@click.option("--label", default="", help="A note to recognise the key by (who or what uses it).")
@db_option
@clean_errors
def keys_create(tenant: str, label: str, db: str | None) -> None:
    """Create an API key for a tenant; the key is the last word printed, and is shown only this once."""
    from convmem.keys import KeyStore

    with KeyStore(_location(db)) as store:
        key, info = store.create(tenant, label=label)
    note = f" ({info.label})" if info.label else ""
    click.echo(f"created key {info.key_id} for tenant {info.tenant!r}{note}; store it now, it is not shown again:")
    click.echo(key)


@keys.command("list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
@click.option("--json", "as_json", is_flag=True)
@db_option
@clean_errors
def keys_list(tenant: str | None, active: bool, as_json: bool, db: str | None) -> None:
    """List API keys by key id (the keys themselves are never stored)."""
    from convmem.keys import KeyStore

    with KeyStore(_location(db)) as store:
        rows = store.list(tenant=tenant, include_revoked=not active)
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no API keys", err=True)
    for r in rows:
        status = "active" if r.active else f"revoked {r.revoked_at}"
        click.echo(f"{r.key_id}\t{r.tenant}\t{r.created_at}\t{status}\t{r.label}")


@keys.command("revoke")
@click.argument("key_id")
@db_option
@clean_errors
def keys_revoke(key_id: str, db: str | None) -> None:
    """Revoke a key, named by its key id (from `convmem keys list`) or by the key itself."""
    from convmem.keys import KeyStore

    with KeyStore(_location(db)) as store:
        info = store.revoke(key_id)
    click.echo(f"revoked key {info.key_id} of tenant {info.tenant!r}")


__all__ = ["keys", "mcp", "serve"]
