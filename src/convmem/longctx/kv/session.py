"""Run a transformers causal LM under a KV policy: chunked prefill, then greedy decoding, evicting after every
forward so the cache stays within the policy's budget.

The model is switched (for the duration of `generate`) to the attention function `convmem_kv`, registered in
transformers' `AttentionInterface`; the model runs without its own cache (`use_cache=False`) and this session
holds the keys and values. Works for models that dispatch attention through `AttentionInterface` and use RoPE
(Llama family: Llama, Mistral, Qwen2, SmolLM...); needs transformers >= 4.48. Batch size 1.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import time
from dataclasses import dataclass, field

from convmem.errors import ConfigError, InputError, require
from convmem.longctx.kv.base import AttnCall, KVPolicy, LayerCache, rotate

ATTN_NAME = "convmem_kv"
_ACTIVE: contextvars.ContextVar[KVSession | None] = contextvars.ContextVar("convmem_kv_session", default=None)
_registered = False


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    session = _ACTIVE.get()
    if session is None:  # the model is used outside `generate`: plain SDPA, no cache of ours
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    return session.attention(module, query, key, value, scaling), None


def register() -> None:
    global _registered
    if _registered:
        return
    transformers = require("transformers", "longctx", "KV-cache policies")
    interface = getattr(transformers, "AttentionInterface", None)
    if interface is None:
        raise ConfigError("KV policies need transformers >= 4.48 (AttentionInterface); upgrade transformers")
    interface.register(ATTN_NAME, _attention)
    _registered = True


@contextlib.contextmanager
def attention_of(model):
    """Temporarily route the model's attention through `convmem_kv`."""
    register()
    previous = model.config._attn_implementation
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if setter:
            setter(ATTN_NAME)
        else:  # older transformers
            model.config._attn_implementation = ATTN_NAME
        yield
    finally:
        if setter:
            setter(previous)
        else:
            model.config._attn_implementation = previous


def inv_freq_of(model):
    for module in model.modules():
        inv = getattr(module, "inv_freq", None)
        if inv is not None:
            return inv.detach().float()
    raise ConfigError(f"{type(model).__name__} has no rotary embedding (inv_freq); KV policies need a RoPE model")


@dataclass
class Stats:
    forwards: int = 0
    max_cache_during: int = 0  # most entries one layer held while attending
    max_cache_after: int = 0  # most entries one layer held after eviction
    kv_peak_bytes: int = 0  # most bytes of keys + values held by all layers at once
    history: list[int] = field(default_factory=list)  # layer-0 size after each forward


class KVSession:
    """Keys and values of one sequence under one policy; `forward(ids)` runs the model on the next tokens."""

    def __init__(self, model, policy: KVPolicy | None = None):
        self.torch = require("torch", "longctx", "KV-cache policies")
        self.model = model
        self.policy = policy or KVPolicy()
        self.policy.setup(model.config)
        self.policy.check()
        self.layers: dict[int, LayerCache] = {}
        self.seen = 0
        self.inv_freq = inv_freq_of(model)
        self.stats = Stats()
        self._q_pos = None
        self._calls = 0
        params = inspect.signature(model.forward).parameters
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in params), None)

    # -- positions ----------------------------------------------------------------------------------------
    def cache_len(self) -> int:
        return len(self.layers[0]) if self.layers else 0

    def next_positions(self, n: int):
        start = self.cache_len() if self.policy.reposition else self.seen
        return self.torch.arange(start, start + n)

    # -- one forward ----------------------------------------------------------------------------------------
    def forward(self, input_ids, *, all_logits: bool = False):
        """Run the model on `input_ids` [1, Q] after everything seen so far; returns logits [1, Q or 1, V]."""
        if input_ids.dim() != 2 or input_ids.shape[0] != 1:
            raise InputError("KV policies run one sequence at a time: input_ids must have shape [1, n]")
        n = input_ids.shape[1]
        self._q_pos = self.next_positions(n)
        kwargs = {}
        wants_all = all_logits or self.policy.needs_logits
        if self._keep_arg:
            kwargs[self._keep_arg] = 0 if wants_all else 1
        token = _ACTIVE.set(self)
        try:
            out = self.model(input_ids=input_ids, position_ids=self._q_pos[None], use_cache=False, **kwargs)
        finally:
            _ACTIVE.reset(token)
        if self._calls == 0:
            raise ConfigError(
                f"{type(self.model).__name__} does not dispatch attention through transformers' AttentionInterface"
            )
        self._calls = 0
        logits = out.logits
        if self.policy.needs_logits:
            self.policy.observe_logits(self, input_ids, logits)
        self.seen += n
        self._evict()
        self.stats.forwards += 1
        after = max((len(c) for c in self.layers.values()), default=0)
        self.stats.max_cache_after = max(self.stats.max_cache_after, after)
        self.stats.history.append(self.cache_len())
        return logits if all_logits else logits[:, -1:]

    def attention(self, module, query, key, value, scaling):
        torch = self.torch
        idx = module.layer_idx
        hkv, n = key.shape[1], key.shape[2]
        q_tok = torch.arange(self.seen, self.seen + n)
        new_pos = self._q_pos[None].expand(hkv, -1)
        new_tok = q_tok[None].expand(hkv, -1)
        score = torch.zeros(hkv, n, dtype=torch.float32)
        layer = self.layers.get(idx)
        if layer is None:
            layer = self.layers[idx] = LayerCache(key, value, new_pos, new_tok, score)
        else:
            layer.append(key, value, new_pos, new_tok, score)
        call = AttnCall(module, query, layer.keys, layer.values, self._q_pos, q_tok, layer.pos, layer.tok,
                        layer.score, scaling if scaling is not None else module.scaling, self)
        out = self.policy.attend(call)
        self._calls += 1
        self.stats.max_cache_during = max(self.stats.max_cache_during, len(layer))
        held = sum(2 * len(c) * c.keys.shape[1] * c.keys.shape[3] * c.keys.element_size() for c in self.layers.values())
        self.stats.kv_peak_bytes = max(self.stats.kv_peak_bytes, held)
        return out.transpose(1, 2).contiguous()

    def _evict(self) -> None:
        torch = self.torch
        for idx, layer in list(self.layers.items()):
            keep = self.policy.keep(self, layer)
            if keep is None:
                continue
            gather = keep[None, :, :, None].expand(1, -1, -1, layer.keys.shape[-1])
            keys = torch.gather(layer.keys, 2, gather)
            values = torch.gather(layer.values, 2, gather)
            pos, tok = torch.gather(layer.pos, 1, keep), torch.gather(layer.tok, 1, keep)
            score = torch.gather(layer.score, 1, keep)
            if self.policy.reposition:
                new_pos = torch.arange(keep.shape[1])[None].expand_as(pos)
                keys = rotate(keys, (new_pos - pos)[None], self.inv_freq)
                pos = new_pos
            self.layers[idx] = LayerCache(keys, values, pos.contiguous(), tok.contiguous(), score)


@dataclass
class Generation:
    tokens: list[int]
    prompt_tokens: int
    prefill_s: float
    decode_s: float
    stats: Stats

    @property
    def tokens_per_s(self) -> float:
        total = self.prefill_s + self.decode_s
        return (self.prompt_tokens + len(self.tokens)) / total if total > 0 else 0.0


def generate(model, input_ids, policy: KVPolicy | None = None, *, max_new_tokens: int = 32,
             chunk_size: int = 512, eos_token_id: int | list[int] | None = None, progress=None) -> Generation:
    """Greedy generation under `policy`: prefill in chunks of `chunk_size`, then decode one token at a time."""
    torch = require("torch", "longctx", "KV-cache policies")
    if chunk_size < 1 or max_new_tokens < 0:
        raise InputError("chunk_size must be >= 1 and max_new_tokens >= 0")
    input_ids = torch.as_tensor(input_ids)
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    stops = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id or ())
    session = KVSession(model, policy)
    out: list[int] = []
    with torch.inference_mode(), attention_of(model):
        t0 = time.perf_counter()
        logits = None
        for start in range(0, input_ids.shape[1], chunk_size):
            logits = session.forward(input_ids[:, start : start + chunk_size])
            if progress is not None:
                progress(min(start + chunk_size, input_ids.shape[1]))
        t1 = time.perf_counter()
        for _ in range(max_new_tokens):
            nxt = int(logits[0, -1].argmax())
            out.append(nxt)
            if nxt in stops or len(out) == max_new_tokens:
                break
            logits = session.forward(torch.tensor([[nxt]]))
        t2 = time.perf_counter()
    return Generation(out, int(input_ids.shape[1]), t1 - t0, t2 - t1, session.stats)
