"""A chat model behind any OpenAI-compatible HTTP API: OpenAI, vLLM, Ollama, llama.cpp server, LM Studio.

    OpenAICompatible("http://localhost:11434/v1", model="llama3.2")          # Ollama
    OpenAICompatible("https://api.openai.com/v1", model="gpt-4o-mini", api_key="sk-...")

Retries with exponential backoff on connection errors, timeouts, 429 and 5xx (honouring `Retry-After`); other
4xx fail at once with the server's message. Token usage is read from the response (`last_usage`, `total_usage`).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any, Iterator, Sequence

from convmem.errors import ConfigError, ConvmemError, require
from convmem.providers.chat import ChatModel, Completion, Message, Usage, check_messages, log

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class UpstreamError(ConvmemError):
    """The LLM server failed or refused the request; `status` is its HTTP status (0: unreachable)."""

    code = "upstream_error"

    def __init__(self, message: str, status: int = 0):
        self.status = status
        super().__init__(message)


class OpenAICompatible(ChatModel):
    """`base_url` is the API root that holds /chat/completions (e.g. https://api.openai.com/v1)."""

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, connect_timeout: float = 10.0, max_retries: int = 2, backoff: float = 0.5,
                 headers: dict[str, str] | None = None, transport: Any = None):
        httpx = require("httpx", "llm", "OpenAI-compatible chat models")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get("CONVMEM_LLM_MODEL") or ""
        self.name = f"openai:{self.model or 'default'}@{self.base_url}"
        key = api_key if api_key is not None else (os.environ.get("CONVMEM_LLM_API_KEY")
                                                  or os.environ.get("OPENAI_API_KEY"))
        self.max_retries, self.backoff = max_retries, backoff
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=all_headers, transport=transport,
                                    timeout=httpx.Timeout(timeout, connect=connect_timeout))
        self._httpx = httpx
        self._usage_lock = threading.Lock()
        self.last_usage = Usage()
        self.total_usage = Usage()

    # -- HTTP -----------------------------------------------------------------------------------------------
    def _payload(self, messages: Sequence[Message], max_tokens: int, temperature: float,
                 stop: Sequence[str] | None, stream: bool, extra: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": list(messages), "max_tokens": max_tokens, "temperature": temperature,
                                "stream": stream}
        if self.model:
            body["model"] = self.model
        if stop:
            body["stop"] = list(stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(extra or {})
        return body

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        try:
            delay = float(retry_after) if retry_after else self.backoff * 2 ** attempt
        except ValueError:
            delay = self.backoff * 2 ** attempt
        time.sleep(min(delay, 30.0) * (1 + 0.1 * random.random()))

    def _send(self, body: dict[str, Any], stream: bool):
        """The response (opened for streaming when asked), after retries; raises `UpstreamError`."""
        httpx = self._httpx
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                request = self._client.build_request("POST", "/chat/completions", json=body)
                response = self._client.send(request, stream=stream)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise UpstreamError(f"cannot reach {self.base_url}: {exc}") from exc
                log.warning("LLM request failed (%s); retrying", exc)
                self._sleep(attempt, None)
                continue
            if response.status_code < 400:
                return response
            if stream:
                response.read()
                response.close()
            if response.status_code in RETRY_STATUS and not last:
                log.warning("LLM server answered %s; retrying", response.status_code)
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            raise UpstreamError(f"{self.base_url} answered {response.status_code}: {_error_text(response)}",
                                response.status_code)
        raise AssertionError("unreachable")

    def _count(self, usage: dict[str, Any] | None) -> Usage:
        u = Usage(int((usage or {}).get("prompt_tokens") or 0), int((usage or {}).get("completion_tokens") or 0))
        with self._usage_lock:
            self.last_usage = u
            self.total_usage = Usage(self.total_usage.prompt_tokens + u.prompt_tokens,
                                     self.total_usage.completion_tokens + u.completion_tokens)
        return u

    # -- ChatModel ------------------------------------------------------------------------------------------
    def raw(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a whole chat-completions body and return the JSON answer unchanged (used by the proxy)."""
        response = self._send({**body, "stream": False}, stream=False)
        try:
            data = response.json()
        except ValueError as exc:
            raise UpstreamError(f"{self.base_url} answered with something that is not JSON") from exc
        self._count(data.get("usage") if isinstance(data, dict) else None)
        return data

    def raw_stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST a streaming chat-completions body and yield each chunk's JSON as it arrives."""
        response = self._send({**body, "stream": True}, stream=True)
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    log.warning("skipping a stream line that is not JSON: %r", data[:80])
                    continue
                if isinstance(chunk, dict) and chunk.get("usage"):
                    self._count(chunk["usage"])
                yield chunk
        except self._httpx.HTTPError as exc:
            raise UpstreamError(f"the stream from {self.base_url} broke off: {exc}") from exc
        finally:
            response.close()

    def generate(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None, extra: dict[str, Any] | None = None) -> Completion:
        data = self.raw(self._payload(check_messages(messages), max_tokens, temperature, stop, False, extra))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"{self.base_url} answered without choices[0].message: {str(data)[:200]}") from exc
        return Completion(text=text, model=data.get("model", self.model), finish_reason=choice.get("finish_reason")
                          or "stop", usage=self.last_usage)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Sequence[str] | None = None, extra: dict[str, Any] | None = None) -> Iterator[str]:
        body = self._payload(check_messages(messages), max_tokens, temperature, stop, True, extra)
        for chunk in self.raw_stream(body):
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece

    def close(self) -> None:
        self._client.close()


def _error_text(response: Any) -> str:
    try:
        data = response.json()
        err = data.get("error", data) if isinstance(data, dict) else data
        message = err.get("message") if isinstance(err, dict) else err
        return str(message)[:300]
    except ValueError:
        return response.text[:300]
