"""Full cache: keep every key and value (the baseline; plain causal attention)."""

from __future__ import annotations

from dataclasses import dataclass

from convmem.longctx.kv.base import KVPolicy


@dataclass
class Full(KVPolicy):
    """Keep everything. Its output equals transformers' greedy `generate`."""

    name = "full"
