"""The base of every KV-cache policy: it keeps everything (the `full` baseline).

A policy decides three things, each a small overridable method:
- `allowed(call)`: which cached/new keys each new query may attend to (default: causal over everything kept);
- `attend(call)`: the attention itself (default: SDPA with that mask; H2O and LM-Infinite override it);
- `keep(session, layer)`: after each forward (a prefill chunk or one decoded token), which entries each layer
  keeps, as sorted indices per KV head; None keeps all.
Class flags: `reposition` (keys are re-rotated so positions are their index in the cache, as StreamingLLM does)
and `needs_logits` (SirLLM reads every token's log-probability). `budget()` is the most entries a layer holds
after eviction; during a forward it holds at most budget + the tokens of that forward.

Keys are stored rotated (RoPE) at `pos`; `tok` is each entry's index in the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from convmem.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from convmem.longctx.kv.session import KVSession


class LayerCache:
    """One layer's entries, in growable buffers (appending copies only the new entries).

    `keys`/`values` [1, Hkv, N, D] are rotated at `pos`; `pos`, `tok` (sequence index) and `score` (the policy's
    running score: accumulated attention, token entropy) are [Hkv, N]. The properties are views of the buffers.
    """

    def __init__(self, keys, values, pos, tok, score):
        self._n = 0
        self._buf = None
        self.append(keys, values, pos, tok, score)

    def __len__(self) -> int:
        return self._n

    def append(self, keys, values, pos, tok, score) -> None:
        import torch

        n, add = self._n, keys.shape[2]
        parts = (keys, values, pos, tok, score)
        if self._buf is None or n + add > self._buf[0].shape[2]:
            cap = max(n + add, int(1.5 * (n + add)) + 16)
            grown = []
            for i, x in enumerate(parts):
                dim = 2 if i < 2 else 1
                shape = list(x.shape)
                shape[dim] = cap
                buf = torch.empty(shape, dtype=x.dtype)
                if self._buf is not None and n:
                    buf.narrow(dim, 0, n).copy_(self._buf[i].narrow(dim, 0, n))
                grown.append(buf)
            self._buf = grown
        for i, x in enumerate(parts):
            dim = 2 if i < 2 else 1
            self._buf[i].narrow(dim, n, add).copy_(x)
        self._n = n + add

    def _view(self, i):
        return self._buf[i].narrow(2 if i < 2 else 1, 0, self._n)

    keys = property(lambda self: self._view(0))
    values = property(lambda self: self._view(1))
    pos = property(lambda self: self._view(2))
    tok = property(lambda self: self._view(3))
    score = property(lambda self: self._view(4))


@dataclass
class AttnCall:
    """Everything one layer's attention needs, with the new tokens already appended to the cache tensors."""

    module: Any
    query: torch.Tensor  # [1, Hq, Q, D] rotated at q_pos
    keys: torch.Tensor  # [1, Hkv, M, D] (M = cached + new)
    values: torch.Tensor
    q_pos: torch.Tensor  # [Q]
    q_tok: torch.Tensor  # [Q]
    k_pos: torch.Tensor  # [Hkv, M]
    k_tok: torch.Tensor  # [Hkv, M]
    score: torch.Tensor  # [Hkv, M] the layer's running score; `attend` may add to it in place
    scaling: float
    session: KVSession

    @property
    def groups(self) -> int:
        return self.query.shape[1] // self.keys.shape[1]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate(x: torch.Tensor, delta: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Move RoPE-rotated vectors `x` [..., N, D] by `delta` [..., N] positions (a pure rotation)."""
    import torch

    freqs = delta.to(torch.float64)[..., None] * inv_freq.to(torch.float64)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    return x * cos + rotate_half(x) * sin


@dataclass
class KVPolicy:
    """Keep every entry: the full cache, the baseline every other policy is compared with."""

    name: ClassVar[str] = "full"
    reposition: ClassVar[bool] = False
    needs_logits: ClassVar[bool] = False

    def setup(self, config: Any) -> None:
        """Resolve defaults that depend on the model (e.g. its trained length); called once per session."""

    def budget(self) -> int | None:
        return None

    def allowed(self, call: AttnCall) -> torch.Tensor | None:
        """Bool mask [Hkv or 1, Q, M] of keys each query may see; None means causal over everything."""
        return None

    def attend(self, call: AttnCall) -> torch.Tensor:
        """Attention output [1, Hq, Q, D]: SDPA under `allowed` (grouped-query heads without copying K/V)."""
        import torch.nn.functional as F

        mask = self.allowed(call)
        q, m = call.query.shape[2], call.keys.shape[2]
        kw = {}
        if mask is not None:
            if mask.shape[0] > 1:
                mask = mask.repeat_interleave(call.groups, dim=0)
            kw["attn_mask"] = mask[None]
        elif q > 1 and q == m:
            kw["is_causal"] = True  # nothing cached yet: the fast causal kernel
        elif q > 1:
            kw["attn_mask"] = causal(call)[None]
        return F.scaled_dot_product_attention(call.query, call.keys, call.values, scale=call.scaling,
                                              enable_gqa=call.groups > 1, **kw)

    def keep(self, session: KVSession, layer: LayerCache) -> torch.Tensor | None:
        return None

    def observe_logits(self, session: KVSession, input_ids: torch.Tensor, logits: torch.Tensor) -> None:
        """Called after each forward with the logits of every new token (only when `needs_logits`)."""

    def check(self) -> None:
        for key, value in vars(self).items():
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{self.name}: {key} must be >= 0, got {value}")


def causal(call: AttnCall) -> torch.Tensor | None:
    """[1, Q, M] causal mask by sequence index; None for a single query (it sees everything kept)."""
    if call.query.shape[2] == 1:
        return None
    return (call.k_tok[:1, None, :] <= call.q_tok[None, :, None])


def grouped_scores(call: AttnCall) -> torch.Tensor:
    """Scaled scores [Hkv, g, Q, M] (query head h = kv * g + i reads KV head kv)."""
    import torch

    hkv, g = call.keys.shape[1], call.groups
    _, _, q, d = call.query.shape
    query = call.query.reshape(hkv, g * q, d)
    return (torch.matmul(query, call.keys[0].transpose(-1, -2)) * call.scaling).reshape(hkv, g, q, -1)


def eager(call: AttnCall, scores: torch.Tensor | None = None, mask: torch.Tensor | None = None):
    """Softmax attention by hand; `scores` [Hkv, g, Q, M]; returns (output [1, Hq, Q, D], probs [Hkv, g, Q, M])."""
    import torch

    if scores is None:
        scores = grouped_scores(call)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None], float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(call.query.dtype)
    hkv, g, q, m = probs.shape
    out = torch.matmul(probs.reshape(hkv, g * q, m), call.values[0])
    return out.reshape(1, hkv * g, q, -1), probs


def window_keep(layer: LayerCache, seen: int, first: int, window: int) -> torch.Tensor | None:
    """Indices of the first `first` tokens and the last `window` tokens (same for every head)."""
    import torch

    tok = layer.tok[0]
    keep = (tok < first) | (tok >= seen - window)
    if bool(keep.all()):
        return None
    idx = torch.nonzero(keep).flatten()
    return idx[None].expand(layer.tok.shape[0], -1)


def window_mask(call: AttnCall, first: int, window: int) -> torch.Tensor:
    """[1, Q, M]: causal, and only the first `first` tokens or the `window` latest (the query included)."""
    k, q = call.k_tok[:1, None, :], call.q_tok[None, :, None]
    return (k <= q) & ((k < first) | (q - k < window))
