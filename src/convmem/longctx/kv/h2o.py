"""H2O (Heavy-Hitter Oracle): keep the `recent` latest tokens and the `heavy` tokens with the most accumulated
attention, per KV head.

Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language Models"
(NeurIPS 2023), https://arxiv.org/abs/2306.14048. Each entry's score is the attention it has received, summed
over every query so far and over the query heads that share its KV head (GQA). Positions are not changed (as in
the paper), so beyond the model's trained length H2O meets unseen positions.
"""

from __future__ import annotations

from dataclasses import dataclass

from convmem.longctx.kv.base import KVPolicy, causal, eager


@dataclass
class H2O(KVPolicy):
    name = "h2o"
    heavy: int = 1024
    recent: int = 1024

    def budget(self) -> int:
        return self.heavy + self.recent

    def attend(self, call):
        out, probs = eager(call, mask=causal(call))
        call.score += probs.float().sum(dim=(1, 2))  # attention received, over queries and grouped heads
        return out

    def keep(self, session, layer):
        import torch

        n = len(layer)
        if n <= self.budget():
            return None
        # the latest tokens are never evicted, so they are the last `r` entries of every head
        r = min(self.recent, n)
        older = n - r
        top = torch.topk(layer.score[:, :older], k=min(self.heavy, older), dim=1).indices.sort(dim=1).values
        tail = torch.arange(older, n)[None].expand(top.shape[0], -1)
        return torch.cat((top, tail), dim=1)
