"""LLM providers behind one interface, structured-output repair, and memory as OpenAI tools."""

from __future__ import annotations

import json

import httpx
import pytest

from convmem.errors import ConfigError, InputError
from convmem.providers.chat import ChatModel, Completion, complete_json, load_chat_model
from convmem.providers.chat_json import JSONOutputError, parse_json_output
from convmem.providers.llm_openai import OpenAICompatible, UpstreamError
from convmem.tools import TOOLS, call_tool, tool_schemas
from server_helpers import SESSION_A


@pytest.mark.parametrize("text, value", [
    ('{"a": 1}', {"a": 1}),
    ('Sure! Here it is:\n```json\n{"name": "Ana", "tags": ["x", "y",],}\n```\nAnything else?',
     {"name": "Ana", "tags": ["x", "y"]}),
    ("{'name': 'Ana', 'ok': True, 'pet': None}", {"name": "Ana", "ok": True, "pet": None}),
    ('{name: "Lena", // the sister\n day: 15}', {"name": "Lena", "day": 15}),
    ('The facts are [1, 2, 3] as asked.', [1, 2, 3]),
    ('{"note": "line one\nline two"}', {"note": "line one\nline two"}),
    ("{'said': 'don\\'t'}", {"said": "don't"}),
    ('Answer: {"a": {"b": [1, {"c": "}"}]}} -- done', {"a": {"b": [1, {"c": "}"}]}}),
    ("It's here: {\"ok\": true}", {"ok": True}),
    ('```\n[{"x": 1}]\n```', [{"x": 1}]),
])
def test_parse_json_output_repairs_small_model_json(text, value):
    assert parse_json_output(text) == value


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("I don't know.", "no JSON"), ('{"facts": ["a", "b"', "truncated"),
    ('{"a": 1 "b": 2}', "delimiter"),
])
def test_parse_json_output_never_guesses(text, reason):
    with pytest.raises(JSONOutputError, match=reason):
        parse_json_output(text)


class Scripted(ChatModel):
    name = "scripted"

    def __init__(self, *answers: str):
        self.answers, self.seen = list(answers), []

    def generate(self, messages, *, max_tokens=256, temperature=0.0, stop=None):
        self.seen.append(list(messages))
        return Completion(self.answers.pop(0))


def test_complete_json_retries_then_raises():
    model = Scripted("no idea", '{"city": "Sintra",}')
    assert complete_json(model, [{"role": "user", "content": "JSON please"}]) == {"city": "Sintra"}
    assert "not valid JSON" in model.seen[1][-1]["content"]  # the retry says what was wrong
    with pytest.raises(JSONOutputError):
        complete_json(Scripted("nope", "still no", "never"), [{"role": "user", "content": "x"}], retries=2)


def test_openai_compatible_retries_backoff_usage_and_stream():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        assert request.headers["authorization"] == "Bearer sk-test"
        if len(calls) == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}}, headers={"retry-after": "0"})
        if calls[-1]["stream"]:
            events = [{"choices": [{"delta": {"content": p}}]} for p in ("Hel", "lo")]
            events.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
            body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "Hi"},
                                                                     "finish_reason": "stop"}],
                                         "usage": {"prompt_tokens": 7, "completion_tokens": 1}})

    model = OpenAICompatible("http://llm.test/v1", model="m", api_key="sk-test", backoff=0,
                             transport=httpx.MockTransport(handler))
    out = model.generate([{"role": "user", "content": "hi"}], max_tokens=5)
    assert (out.text, out.usage.prompt_tokens, out.usage.completion_tokens) == ("Hi", 7, 1)
    assert len(calls) == 2 and calls[-1]["model"] == "m" and calls[-1]["max_tokens"] == 5
    assert "".join(model.stream([{"role": "user", "content": "hi"}])) == "Hello"
    assert model.total_usage.total_tokens == 15


def test_openai_compatible_client_errors_are_not_retried():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "model 'x' not found"}})

    model = OpenAICompatible("http://llm.test/v1", transport=httpx.MockTransport(handler), backoff=0)
    with pytest.raises(UpstreamError, match="not found") as info:
        model.complete([{"role": "user", "content": "hi"}])
    assert info.value.status == 400 and len(calls) == 1
    with pytest.raises(ConfigError):
        OpenAICompatible("localhost:8000")


def test_load_chat_model_specs(tmp_path):
    assert isinstance(load_chat_model("http://localhost:11434/v1", model="llama3.2"), OpenAICompatible)
    assert load_chat_model("openai:https://api.openai.com/v1", api_key="k").base_url == "https://api.openai.com/v1"
    with pytest.raises(ConfigError, match="unknown chat model"):
        load_chat_model("nonsense-model-name")


def test_local_transformers_generates_and_streams(local_llm):
    messages = [{"role": "user", "content": "Say hello."}]
    out = local_llm.generate(messages, max_tokens=8)
    assert out.text.strip() and 0 < out.usage.completion_tokens <= 8 and out.usage.prompt_tokens > 3
    assert "".join(local_llm.stream(messages, max_tokens=8)).strip() == out.text.strip()  # greedy: same text


def test_memory_tools_schema_and_dispatch(memory):
    names = [t["function"]["name"] for t in TOOLS]
    assert names == ["remember", "search", "context", "facts", "instructions"]
    for tool in tool_schemas(with_user=True, include_forget=True):
        params = tool["function"]["parameters"]
        assert tool["type"] == "function" and params["type"] == "object" and "user" in params["required"]
        assert set(params["required"]) <= set(params["properties"])
    assert all("user" not in t["function"]["parameters"]["properties"] for t in TOOLS)

    memory.add_session(SESSION_A)
    stored = call_tool(memory, "remember", '{"text": "Ana is allergic to peanuts.",}', user="ana")
    assert stored["stored"] == 1 and stored["session"].startswith("memory-")
    hits = call_tool(memory, "search", {"query": "allergy peanuts", "k": 2}, user="ana")["hits"]
    assert hits[0]["text"] == "Ana is allergic to peanuts."
    ctx = call_tool(memory, "context", {"query": "when is the wedding?"}, user="ana")
    assert "Sintra" in ctx["text"] and "s1_1" in ctx["citations"]
    assert call_tool(memory, "search", {"user": "ana", "query": "wedding"})["hits"]  # user as an argument
    for name, args in [("search", {"query": 3}), ("search", {"query": "x", "user": "ben"}), ("nope", {}),
                       ("remember", {"text": ""}), ("search", "not json"), ("search", {"query": "x", "k": 0})]:
        with pytest.raises(InputError):
            call_tool(memory, name, args, user="ana")
    assert call_tool(memory, "forget", {}, user="ana")["removed_turns"] == 3
