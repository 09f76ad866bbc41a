"""StreamingLLM: attention sinks + a window of recent tokens, positions re-assigned inside the cache.

Xiao et al., "Efficient Streaming Language Models with Attention Sinks" (ICLR 2024),
https://arxiv.org/abs/2309.17453. As in the paper, a token's position is its index in the cache, not in the text:
after each eviction the kept keys are re-rotated to positions 0..n-1, so the model never sees a distance beyond
the cache size. Each query sees the sinks and the `window` latest tokens (itself included), also inside a
prefill chunk, so chunked prefill attends to the same tokens as token-by-token streaming (only the sinks' distance
can exceed the token-by-token one, by at most the chunk size).
"""

from __future__ import annotations

from dataclasses import dataclass

from convmem.errors import ConfigError
from convmem.longctx.kv.base import KVPolicy, window_keep, window_mask


@dataclass
class StreamingLLM(KVPolicy):
    name = "streaming"
    reposition = True
    n_sink: int = 4
    window: int = 2044

    def check(self) -> None:
        if self.window < 1 or self.n_sink < 0:
            raise ConfigError("streaming needs window >= 1 and n_sink >= 0")

    def budget(self) -> int:
        return self.n_sink + self.window

    def allowed(self, call):
        return window_mask(call, self.n_sink, self.window)

    def keep(self, session, layer):
        return window_keep(layer, session.seen, self.n_sink, self.window)
