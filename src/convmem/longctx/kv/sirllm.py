"""SirLLM: keep the tokens the model found most surprising (token entropy), with decay, beside sinks and a
recent window.

Yao et al., "SirLLM: Streaming Infinite Retentive LLM" (ACL 2024), https://arxiv.org/abs/2405.12528.
A token's entropy is -log p(token | what came before), from the model's own logits. The cache holds `n_sink`
first tokens, the `n_key` older tokens of highest entropy, and the `window` latest tokens; the entropies held
are multiplied by `decay` every `decay_every` processed tokens (the paper decays once per dialogue round; a
token count makes it independent of chunk size). Built on StreamingLLM, so positions are re-assigned inside the
cache. Inside a prefill chunk queries also see the chunk's own earlier tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from convmem.errors import ConfigError
from convmem.longctx.kv.base import KVPolicy


@dataclass
class SirLLM(KVPolicy):
    name = "sirllm"
    reposition = True
    needs_logits = True
    n_sink: int = 4
    n_key: int = 1020
    window: int = 1024
    decay: float = 0.95
    decay_every: int = 1024

    def check(self) -> None:
        if self.window < 1 or not 0.0 < self.decay <= 1.0 or self.decay_every < 1:
            raise ConfigError("sirllm needs window >= 1, 0 < decay <= 1 and decay_every >= 1")

    def budget(self) -> int:
        return self.n_sink + self.n_key + self.window

    def observe_logits(self, session, input_ids, logits) -> None:
        import torch

        logp = torch.log_softmax(logits[0].float(), dim=-1)  # [Q, V]
        ids = input_ids[0]
        ent = torch.zeros(ids.shape[0])
        prev = getattr(session, "_sirllm_last", None)
        if prev is not None:
            ent[0] = -prev[ids[0]]
        if ids.shape[0] > 1:
            ent[1:] = -logp[:-1].gather(1, ids[1:, None])[:, 0]
        session._sirllm_last = logp[-1]
        fade = self.decay ** (ids.shape[0] / self.decay_every)
        n = ids.shape[0]
        for layer in session.layers.values():
            layer.score[:, :-n] *= fade
            layer.score[:, -n:] = ent[None]

    def keep(self, session, layer):
        import torch

        n = len(layer)
        if n <= self.budget():
            return None
        tok, score = layer.tok[0], layer.score[0]
        fixed = (tok < self.n_sink) | (tok >= session.seen - self.window)
        cand = torch.nonzero(~fixed).flatten()
        k = min(self.n_key, len(cand))
        best = cand[torch.topk(score[cand], k=k).indices] if k else cand[:0]
        idx = torch.cat((torch.nonzero(fixed).flatten(), best)).sort().values
        return idx[None].expand(layer.tok.shape[0], -1)
