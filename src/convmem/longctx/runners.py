"""Run task instances through a model and score them; one record format for every runner.

- `run_openai`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) over httpx; pass
  `client=httpx.Client(transport=httpx.MockTransport(handler))` to run without a network.
- `run_local`: a transformers causal LM under a KV policy (`convmem.longctx.kv`), greedy.
- Runner (c), `run_memory` in `memory_runner.py`: the haystack stored in convmem's `Memory`, retrieved, read by
  the same local model.

Each runner returns `Record`s (task, method, length, depth, seed, prediction, score, timing, memory).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from convmem.errors import InputError, require
from convmem.longctx.tasks.base import TaskInstance


@dataclass
class Record:
    task: str
    method: str
    n_tokens: int
    depth: float | None
    seed: int
    score: float
    prediction: str
    references: list[str]
    scorer: str
    diffusion: str
    scope: str
    prompt_tokens: int | None = None  # tokens actually sent (chat template included)
    seconds: float | None = None
    prefill_s: float | None = None
    tokens_per_s: float | None = None
    kv_peak_mb: float | None = None  # keys + values held at the peak (local runner)
    rss_peak_mb: float | None = None  # process resident memory at the peak during this instance (local runner)
    cache_max: int | None = None  # most cache entries one layer held after eviction (local runner)
    error: str | None = None
    prompt_sha1: str = ""  # of the instance prompt, to check that a rerun asked the same thing
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.task, self.method, self.n_tokens, self.depth, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(inst: TaskInstance, method: str, prediction: str, **kw) -> Record:
    return Record(task=inst.task, method=method, n_tokens=inst.n_tokens, depth=inst.depth, seed=inst.seed,
                  score=inst.score(prediction), prediction=prediction, references=list(inst.references),
                  scorer=inst.scorer, diffusion=inst.diffusion, scope=inst.scope,
                  prompt_sha1=hashlib.sha1(inst.prompt.encode()).hexdigest(), **kw)


def _bar(items, show: bool, desc: str):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False)


# --------------------------------------------------------------------------------------------------- (a) OpenAI


def run_openai(instances: Iterable[TaskInstance], *, model: str, base_url: str = "https://api.openai.com/v1",
               api_key: str | None = None, client=None, max_tokens: int = 64, chat: bool = True,
               temperature: float = 0.0, timeout: float = 600.0, show_progress: bool = True,
               on_record: Callable[[Record], None] | None = None) -> list[Record]:
    """Score instances on an OpenAI-compatible endpoint (`/chat/completions`, or `/completions` if not chat).

    Chat: the user turn is the prompt without its answer prefix. Completions: the whole prompt.
    The API key defaults to $OPENAI_API_KEY.
    """
    httpx = require("httpx", "llm", "calling an OpenAI-compatible endpoint")
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
    own = client is None
    client = client or httpx.Client(timeout=timeout)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = base_url.rstrip("/") + ("/chat/completions" if chat else "/completions")
    records = []
    try:
        for inst in _bar(list(instances), show_progress, f"{model}"):
            body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "temperature": temperature}
            if chat:
                body["messages"] = [{"role": "user", "content": inst.question_prompt}]
            else:
                body["prompt"] = inst.prompt
            t0 = time.perf_counter()
            try:
                resp = client.post(url, json=body, headers=headers)
                resp.raise_for_status()
                data = resp.json()
                choice = data["choices"][0]
                text = choice["message"]["content"] if chat else choice["text"]
                error = None
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
                text, data, error = "", {}, f"{type(exc).__name__}: {exc}"
            dt = time.perf_counter() - t0
            usage = data.get("usage") or {}
            used = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
            rec = _record(inst, f"endpoint:{model}", text or "", prompt_tokens=usage.get("prompt_tokens"),
                          seconds=dt, tokens_per_s=used / dt if used and dt > 0 else None, error=error)
            records.append(rec)
            if on_record:
                on_record(rec)
    finally:
        if own:
            client.close()
    return records


# ---------------------------------------------------------------------------------------------------- (b) local


class MemoryWatch:
    """Peak resident memory of this process while the block runs (sampled every 10 ms; Linux /proc)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            return 0

    def _loop(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def encode_prompt(inst: TaskInstance, tokenizer, chat: bool) -> list[int]:
    """Token ids sent to a local model: the prompt, or a chat turn whose answer starts with the answer prefix."""
    if chat:
        messages = [{"role": "user", "content": inst.question_prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text += inst.answer_prefix
    else:
        text = inst.prompt
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def run_local(instances: Iterable[TaskInstance], model, tokenizer, policy="full", *, max_new_tokens: int = 32,
              chunk_size: int = 512, chat: bool | None = None, show_progress: bool = True,
              on_record: Callable[[Record], None] | None = None, method: str | None = None) -> list[Record]:
    """Greedy answers of a local transformers causal LM under a KV policy (a name or a `KVPolicy`).

    `chat` defaults to whether the tokenizer has a chat template. A fresh policy object is made per instance.
    """
    from convmem.longctx.kv import KVPolicy, generate, get_policy

    if isinstance(policy, str):
        make = lambda: get_policy(policy)  # noqa: E731
        name = policy
    elif isinstance(policy, KVPolicy):
        import copy

        make = lambda: copy.deepcopy(policy)  # noqa: E731
        name = policy.name
    else:
        raise InputError("policy must be a policy name or a KVPolicy")
    if chat is None:
        chat = bool(getattr(tokenizer, "chat_template", None))
    eos = getattr(tokenizer, "eos_token_id", None)
    records = []
    for inst in _bar(list(instances), show_progress, method or name):
        ids = encode_prompt(inst, tokenizer, chat)
        pol = make()
        with MemoryWatch() as mem:
            gen = generate(model, ids, pol, max_new_tokens=max_new_tokens, chunk_size=chunk_size, eos_token_id=eos)
        text = tokenizer.decode(gen.tokens, skip_special_tokens=True)
        rec = _record(inst, method or name, text, prompt_tokens=len(ids), seconds=gen.prefill_s + gen.decode_s,
                      prefill_s=gen.prefill_s, tokens_per_s=gen.tokens_per_s,
                      kv_peak_mb=gen.stats.kv_peak_bytes / 2**20, rss_peak_mb=mem.peak / 2**20,
                      cache_max=gen.stats.max_cache_after,
                      extra={"policy": {"name": pol.name, **vars(pol)}, "chat": chat})
        records.append(rec)
        if on_record:
            on_record(rec)
    return records


def load_local(path: str | None = None, *, gguf_file: str | None = None, dtype: str = "float32"):
    """(model, tokenizer) from a transformers folder/name, or SmolLM2-135M-Instruct's GGUF when `path` is None."""
    transformers = require("transformers", "longctx", "running a local model")
    torch = require("torch", "longctx", "running a local model")
    if path is None:
        from convmem.longctx.tokenizer import SMOLLM2_GGUF, smollm2_folder

        require("gguf", "llm", "reading GGUF files")
        require("accelerate", "longctx", "loading GGUF files with transformers")
        path, gguf_file = str(smollm2_folder()), SMOLLM2_GGUF
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, **kw)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **kw).eval()
    return model, tokenizer
