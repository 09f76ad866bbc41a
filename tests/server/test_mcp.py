"""The MCP server end to end with the official SDK's own client: stdio (a `convmem mcp` subprocess) and HTTP."""

from __future__ import annotations

import asyncio
import sys

import pytest

from convmem.cli import main as cli_main
from server_helpers import SESSION_A, ServerThread

mcp = pytest.importorskip("mcp")
TOOLS = {"remember", "search", "context", "facts", "instructions", "forget", "users", "sessions", "people", "stats",
         "fact_timeline", "contradictions", "summaries", "add_instruction", "remove_instruction"}


def mcp_command(db: str) -> list[str]:
    """`python -m convmem mcp --db DB` (the command a desktop app would be configured with)."""
    if "mcp" in cli_main.commands:
        return ["-m", "convmem", "mcp", "--db", db]
    return ["-c", "from convmem.cli.serve import mcp; mcp()", "--db", db]  # until the command is registered


async def _stdio_session(db: str) -> dict:
    params = mcp.StdioServerParameters(command=sys.executable, args=mcp_command(db))
    out: dict = {}
    async with mcp.Client(params) as client:
        out["tools"] = {t.name: t for t in (await client.list_tools()).tools}
        out["remember"] = await client.call_tool("remember", {"user": "ana", "text": "My dog is called Biscuit.",
                                                              "session": "notes"})
        out["search"] = await client.call_tool("search", {"user": "ana", "query": "what is the dog's name?", "k": 3})
        out["context"] = await client.call_tool("context", {"user": "ana", "query": "dog name", "budget_tokens": 300})
        out["bad"] = await client.call_tool("search", {"user": "ana", "query": "x", "since": "last week"})
        out["forget"] = await client.call_tool("forget", {"user": "ana", "session": "notes"})
        out["after"] = await client.call_tool("search", {"user": "ana", "query": "dog"})
    return out


def test_mcp_over_stdio(memory, db_path):
    memory.add_session(SESSION_A)
    out = asyncio.run(asyncio.wait_for(_stdio_session(db_path), timeout=120))
    assert set(out["tools"]) == TOOLS
    schema = out["tools"]["search"].input_schema
    assert {"user", "query"} <= set(schema["required"]) and "k" in schema["properties"]

    assert not out["remember"].is_error
    assert out["remember"].structured_content == {"stored": 1, "user": "ana", "session": "notes"}
    hits = out["search"].structured_content["hits"]
    assert hits[0]["text"] == "My dog is called Biscuit." and hits[0]["session_id"] == "notes"
    assert "Biscuit" in out["context"].structured_content["text"]
    assert out["bad"].is_error and "ISO-8601" in out["bad"].content[0].text
    assert out["forget"].structured_content == {"removed_turns": 1}
    assert all(h["session_id"] != "notes" for h in out["after"].structured_content["hits"])
    assert memory.sessions(user="ana")[0]["session_id"] == "s1"  # the same database the library reads


async def _http_session(url: str, key: str | None) -> dict:
    import httpx2

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        from mcp.client.streamable_http import streamable_http_client

        async with mcp.Client(streamable_http_client(url, http_client=http)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("context", {"user": "ana", "query": "wedding"})
            stats = await client.call_tool("stats", {})
            people = await client.call_tool("people", {"user": "ana"})
    return {"names": names, "context": result, "stats": stats, "people": people}


def test_mcp_over_http_with_keys(memory, keystore):
    import httpx

    from convmem.server.mcp_server import mcp_http_app

    key_a, _ = keystore.create("A")
    keystore.create("B")
    memory.for_tenant("A").add_session(SESSION_A)
    memory.for_tenant("B").add_session({**SESSION_A, "turns": [{"text": "Tenant B's secret wedding in Porto."}]})
    with ServerThread(mcp_http_app(memory, keys=keystore)) as server:
        url = server.url + "/mcp"
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = httpx.post(url, json={}, headers={"Authorization": "Bearer cm_nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        out = asyncio.run(asyncio.wait_for(_http_session(url, key_a), timeout=60))
    assert out["names"] == TOOLS
    text = out["context"].structured_content["text"]
    assert "Sintra" in text and "Porto" not in text
    stats = out["stats"].structured_content  # the key's tenant, as for the tools above
    assert (stats["tenant"], stats["turns"]) == ("A", 2) and "location" not in stats
    assert [p["name"] for p in out["people"].structured_content["people"]] == ["Ana", "assistant"]
