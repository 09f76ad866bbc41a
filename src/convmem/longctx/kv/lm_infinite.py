"""LM-Infinite: a Lambda-shaped mask (the first tokens + a local window) and a distance limit.

Han et al., "LM-Infinite: Zero-Shot Extreme Length Generalization for Large Language Models" (NAACL 2024),
https://arxiv.org/abs/2308.16137. Each query sees the `n_global` first tokens and the `window` latest ones
(global branch + local branch of the Lambda); positions stay absolute, but the distance from a query to a
global token is capped at `max_distance` (the query is rotated to min(its position, key position + max_distance)
for those keys), so no distance exceeds what the model saw in training. Defaults: `window` = the model's trained
length (`max_position_embeddings`), `max_distance` = `window`. Tokens outside the Lambda are evicted.
"""

from __future__ import annotations

from dataclasses import dataclass

from convmem.errors import ConfigError
from convmem.longctx.kv.base import KVPolicy, eager, grouped_scores, rotate, window_keep, window_mask


@dataclass
class LMInfinite(KVPolicy):
    name = "lm-infinite"
    n_global: int = 10
    window: int | None = None
    max_distance: int | None = None

    def setup(self, config) -> None:
        trained = getattr(config, "max_position_embeddings", None) or 4096
        self.window = self.window or trained
        self.max_distance = self.max_distance or self.window

    def check(self) -> None:
        if (self.window or 1) < 1 or (self.max_distance or 1) < 1 or self.n_global < 0:
            raise ConfigError("lm-infinite needs window >= 1, max_distance >= 1 and n_global >= 0")

    def budget(self) -> int:
        return self.n_global + (self.window or 0)

    def allowed(self, call):
        return window_mask(call, self.n_global, self.window)

    def attend(self, call):
        import torch

        mask = self.allowed(call)
        g = int((call.k_tok[0] < self.n_global).sum())  # global entries are the first g (sorted by position)
        far = g and int(call.q_pos.max()) - int(call.k_pos[0, 0]) > self.max_distance
        if not far:
            return super().attend(call)
        hkv, groups = call.keys.shape[1], call.groups
        _, _, nq, d = call.query.shape
        scores = grouped_scores(call)  # [Hkv, groups, Q, M]
        qp, kp = call.q_pos[:, None], call.k_pos[0, :g][None, :]
        delta = torch.minimum(qp, kp + self.max_distance) - qp  # [Q, g], <= 0: the capped distance
        q = call.query.reshape(hkv, groups, nq, 1, d).expand(-1, -1, -1, g, -1)
        q_far = rotate(q, delta, call.session.inv_freq)  # [Hkv, groups, Q, g, D]
        k_glob = call.keys[0, :, None, None, :g, :]  # [Hkv, 1, 1, g, D]
        scores[..., :g] = (q_far * k_glob).sum(-1) * call.scaling
        out, _ = eager(call, scores=scores, mask=mask)
        return out

    def keep(self, session, layer):
        return window_keep(layer, session.seen, self.n_global, self.window)
