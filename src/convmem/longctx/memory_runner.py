"""Runner (c): the haystack stored as a conversation in convmem's `Memory`, retrieved, read by the same local model.

For each instance:

1. The context (what lies between the instruction and the question) is split into turns of whole sentences, at
   most `turn_tokens` tokens each under the task's tokenizer (a longer sentence is cut where a word starts). 96
   tokens is a chat message of a few sentences, and stays inside the 128 tokens the default embedder (int8
   MiniLM) reads, so every word of a turn is embedded. A needle that is one sentence (the RULER niah needles)
   always lands whole in one turn; a needle of several sentences (passkey: "The pass key is K. Remember it. K is
   the pass key.") may be split between two turns, each of which still holds the key.
2. Turns are grouped into sessions of at most `session_tokens` tokens (2048: a long chat a day), dated one day
   apart from 2024-01-01 09:00 UTC, turns a minute apart, alternating user and assistant: the haystack reads as a
   history of chats, the form convmem stores.
3. The sessions go into a fresh SQLite `Memory` in a temporary folder (embedded, indexed), and
   `Memory.context(question, budget_tokens=...)` picks a small dated block of turns for the question (asked the
   day after the last session).
4. The same local model reads the task's instruction, that block and the question with the full cache (the path
   `run_local` uses), and the answer is scored by the task's scorer.

Records have the same fields as the other runners': `seconds` is end to end (split, store, embed, index,
retrieve, read), `tokens_per_s` is (instance tokens + generated) / `seconds`, so it says how fast each method turns
a prompt of `n_tokens` into an answer; `kv_peak_mb` and `cache_max` are the reader's; `rss_peak_mb` covers the whole
instance. `extra` holds the parts: ingest_s, retrieve_s, read_s, context_tokens (as `Memory` counts them),
turns, sessions, and needle_in_context (fraction of the references present in the retrieved block: retrieval
recall, to tell a retrieval miss from a reading miss).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from convmem.errors import InputError
from convmem.longctx.runners import MemoryWatch, Record, _bar, _record, encode_prompt
from convmem.longctx.tasks.base import TaskInstance
from convmem.longctx.tokenizer import as_tok

USER = "longctx"
START = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)
ROLES = ("user", "assistant")
MEMORY_ARGS = ("budget_tokens", "turn_tokens", "session_tokens", "embedder", "retriever")


def _positive(value, what: str) -> int:
    """`value` if it is an integer >= 1, else InputError naming `what`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return value


def split_turns(text: str, tokenizer=None, *, turn_tokens: int = 96) -> list[tuple[int, int]]:
    """Character spans that cover `text` exactly, in order; each is at most `turn_tokens` tokens (counted in the
    tokenization of the whole text) and ends where a sentence ends, else where a word starts, else anywhere."""
    _positive(turn_tokens, "turn_tokens")
    enc = as_tok(tokenizer).encode_offsets(text)
    starts = [s for s, _ in enc.offsets]
    n = len(starts)
    if n == 0:
        return []

    def word(k: int) -> bool:
        s = starts[k]
        return text[s].isspace() and not text[s - 1].isspace()

    def sentence(k: int) -> bool:
        s = starts[k]
        return text[s] == "\n" or (word(k) and text[s - 1] in ".!?")

    cuts, i = [0], 0
    while i < n:
        j = min(i + turn_tokens, n)
        if j < n:
            inside = range(j, i, -1)  # cut before token k, k in (i, j]
            j = next((k for k in inside if sentence(k)), None) or next((k for k in inside if word(k)), j)
        cuts.append(j)
        i = j
    chars = [starts[k] if k < n else len(text) for k in cuts]
    chars[0] = 0
    return list(zip(chars[:-1], chars[1:], strict=True))


def haystack_sessions(inst: TaskInstance, tokenizer=None, *, turn_tokens: int = 96, session_tokens: int = 2048,
                      user: str = USER, start: datetime = START):
    """The instance's context as dated `Session`s of turns (see the module docstring for the layout)."""
    from convmem.models import Session, Turn

    _positive(session_tokens, "session_tokens")
    if inst.context_span is None:
        raise InputError("this task instance does not mark its context; make it with Task.generate")
    tok = as_tok(tokenizer)
    text = inst.context
    groups: list[list[str]] = [[]]
    used = 0
    for a, b in split_turns(text, tok, turn_tokens=turn_tokens):
        piece = text[a:b].strip()
        if not piece:
            continue
        cost = tok.count(piece)
        if groups[-1] and used + cost > session_tokens:
            groups.append([])
            used = 0
        groups[-1].append(piece)
        used += cost
    if not groups[-1]:
        raise InputError("the task instance has an empty context: there is nothing to store in memory")
    sessions = []
    for s, texts in enumerate(groups):
        began = start + timedelta(days=s)
        turns = [Turn(speaker=ROLES[i % 2], role=ROLES[i % 2], text=t, timestamp=began + timedelta(minutes=i))
                 for i, t in enumerate(texts)]
        sessions.append(Session(user=user, session_id=f"s{s + 1:02d}", started_at=began, turns=turns))
    return sessions


def reader_instance(inst: TaskInstance, memory_text: str) -> TaskInstance:
    """The instance with its haystack replaced by the retrieved memory block (instruction and question kept)."""
    a, b = inst.context_span
    prompt = inst.prompt[:a] + memory_text + inst.prompt[b:]
    return replace(inst, prompt=prompt, context_span=(a, a + len(memory_text)))


def run_memory(instances: Iterable[TaskInstance], model, tokenizer, *, budget_tokens: int = 512,
               turn_tokens: int = 96, session_tokens: int = 2048, embedder=None, retriever="convmem",
               max_new_tokens: int = 32, chunk_size: int = 512, chat: bool | None = None,
               show_progress: bool = True, on_record: Callable[[Record], None] | None = None,
               method: str = "memory") -> list[Record]:
    """Answer each instance from convmem's memory of its haystack, read by `model` with the full cache.

    `embedder`: an `Embedder` or a name (default "minilm"), loaded once for all instances; `retriever`: a named
    retriever or `RetrievalConfig` (default "convmem"); `budget_tokens`: the size of the retrieved block, as
    `Memory.context` counts tokens.
    """
    from convmem.api import Memory
    from convmem.longctx.kv import generate, get_policy
    from convmem.providers.embedders import load_embedder

    _positive(budget_tokens, "budget_tokens")
    if chat is None:
        chat = bool(getattr(tokenizer, "chat_template", None))
    emb = load_embedder(embedder)
    eos = getattr(tokenizer, "eos_token_id", None)
    records = []
    for inst in _bar(list(instances), show_progress, method):
        with MemoryWatch() as mem:
            t0 = time.perf_counter()
            sessions = haystack_sessions(inst, tokenizer, turn_tokens=turn_tokens, session_tokens=session_tokens)
            now = sessions[-1].started_at + timedelta(days=1)
            with tempfile.TemporaryDirectory(prefix="convmem-longctx-") as folder:
                with Memory(os.path.join(folder, "memory.db"), embedder=emb, retriever=retriever) as memory:
                    memory.add_sessions(sessions)
                    memory.index(USER)  # built here, so retrieve_s is the query alone
                    t1 = time.perf_counter()
                    ctx = memory.context(inst.question or inst.prompt, user=USER, budget_tokens=budget_tokens,
                                         now=now)
                    t2 = time.perf_counter()
            reader = reader_instance(inst, ctx.text)
            ids = encode_prompt(reader, tokenizer, chat)
            gen = generate(model, ids, get_policy("full"), max_new_tokens=max_new_tokens, chunk_size=chunk_size,
                           eos_token_id=eos)
            t3 = time.perf_counter()
        text = tokenizer.decode(gen.tokens, skip_special_tokens=True)
        found = [r.casefold() in ctx.text.casefold() for r in inst.references]
        seconds = t3 - t0
        rec = _record(inst, method, text, prompt_tokens=len(ids), seconds=seconds, prefill_s=gen.prefill_s,
                      tokens_per_s=(inst.n_tokens + len(gen.tokens)) / seconds,
                      kv_peak_mb=gen.stats.kv_peak_bytes / 2**20, rss_peak_mb=mem.peak / 2**20,
                      cache_max=gen.stats.max_cache_after,
                      extra={"budget_tokens": budget_tokens, "turn_tokens": turn_tokens,
                             "session_tokens": session_tokens, "embedder": emb.name,
                             "retriever": getattr(retriever, "name", retriever), "chat": chat,
                             "ingest_s": t1 - t0, "retrieve_s": t2 - t1, "read_s": t3 - t2,
                             "context_tokens": ctx.tokens, "turns": sum(len(s.turns) for s in sessions),
                             "sessions": len(sessions), "cited_turns": len(ctx.citations),
                             "needle_in_context": sum(found) / len(found) if found else None})
        records.append(rec)
        if on_record:
            on_record(rec)
    return records
