"""KV-cache policies for transformers causal LMs, one module each, and the session that runs them.

    from convmem.longctx.kv import generate, get_policy
    gen = generate(model, ids, get_policy("streaming", window=1020), max_new_tokens=16)

`POLICIES` lists every policy by name (the contract tests run over all of them). Written here rather than on
NVIDIA's kvpress: kvpress 0.5.5 pins transformers < 5.3 (we run 5.x) and its presses compress once after
prefill, while these must also evict during chunked prefill and during decoding.
"""

from __future__ import annotations

from typing import Any

from convmem.errors import NotFound
from convmem.longctx.kv.base import AttnCall, KVPolicy, LayerCache
from convmem.longctx.kv.full import Full
from convmem.longctx.kv.h2o import H2O
from convmem.longctx.kv.lm_infinite import LMInfinite
from convmem.longctx.kv.session import Generation, KVSession, generate
from convmem.longctx.kv.sirllm import SirLLM
from convmem.longctx.kv.streaming import StreamingLLM

POLICIES: dict[str, type[KVPolicy]] = {p.name: p for p in (Full, StreamingLLM, LMInfinite, H2O, SirLLM)}


def get_policy(name: str, **args: Any) -> KVPolicy:
    """The policy registered as `name`, with `args` as its dataclass fields."""
    if name not in POLICIES:
        raise NotFound(f"unknown KV policy {name!r}; known: {', '.join(POLICIES)}")
    return POLICIES[name](**args)


__all__ = [
    "POLICIES", "AttnCall", "Full", "Generation", "H2O", "KVPolicy", "KVSession", "LMInfinite", "LayerCache",
    "SirLLM", "StreamingLLM", "generate", "get_policy",
]
