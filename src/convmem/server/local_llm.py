"""Any `ChatModel` as an OpenAI-compatible chat-completions backend, in-process or as its own small app.

- `ChatModelBackend(model)` answers OpenAI request bodies with OpenAI response objects (`raw`, `raw_stream`),
  the same two methods `OpenAICompatible` has, so the memory proxy treats a local model and a remote server alike
  (`convmem serve --local-model smollm2`).
- `create_llm_app(model)` serves it at POST /v1/chat/completions and GET /v1/models with no memory at all: a
  local SmolLM2 behind the OpenAI API, used as the proxy's upstream in the tests.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Iterator

from convmem.errors import InputError
from convmem.providers.chat import ChatModel
from convmem.server.schemas import ChatCompletionIn


def _id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


class ChatModelBackend:
    def __init__(self, model: ChatModel, *, default_max_tokens: int = 256):
        self.model = model
        self.default_max_tokens = default_max_tokens
        self.name = model.name

    def _options(self, body: dict[str, Any]) -> dict[str, Any]:
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or self.default_max_tokens
        temperature = body.get("temperature") or 0.0
        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError("max_tokens must be a positive integer")
        if body.get("n", 1) != 1:
            raise InputError("only n=1 is supported by a local model")
        return {"max_tokens": max_tokens, "temperature": float(temperature), "stop": stop}

    def raw(self, body: dict[str, Any]) -> dict[str, Any]:
        out = self.model.generate(body.get("messages") or [], **self._options(body))
        return {
            "id": _id(), "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or self.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                         "finish_reason": out.finish_reason, "logprobs": None}],
            "usage": out.usage.to_dict(),
        }

    def raw_stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        options = self._options(body)  # checked before the first chunk, so errors are still plain 4xx answers
        cid, created, model = _id(), int(time.time()), body.get("model") or self.name

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        def pieces() -> Iterator[dict[str, Any]]:
            yield chunk({"role": "assistant", "content": ""})
            for piece in self.model.stream(body.get("messages") or [], **options):
                yield chunk({"content": piece})
            yield chunk({}, "stop")

        return pieces()


def sse(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    """OpenAI's server-sent events: one `data: {json}` per chunk, then `data: [DONE]`."""
    for c in chunks:
        yield f"data: {json.dumps(c, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def create_llm_app(model: ChatModel, *, max_body_bytes: int = 1 << 20) -> Any:
    """A FastAPI app serving `model` at the OpenAI chat-completions routes (no memory, no keys: bind it locally)."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from convmem.server.errors import BodyLimit, install_error_handlers

    backend = ChatModelBackend(model)
    app = FastAPI(title="convmem local LLM", version="1", description="A local chat model behind the OpenAI API.")
    install_error_handlers(app)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": backend.name, "object": "model", "owned_by": "convmem"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionIn) -> Any:
        body = request.model_dump(exclude_none=True)
        if request.stream:
            chunks = backend.raw_stream(body)
            return StreamingResponse(sse(chunks), media_type="text/event-stream")
        return backend.raw(body)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
