"""The retrievers a benchmark run can name: the protocol baseline `flat-bm25`, and every `Memory` retrieval
configuration registered in `convmem.retrieve.config.RETRIEVERS` (read at call time, so configurations added
there later appear here without any change to the harness).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convmem.errors import NotFound
from convmem.retrieve.config import RETRIEVERS, RetrievalConfig

PROTOCOL_BASELINES = {
    "flat-bm25": "the LongMemEval paper's baseline: rank_bm25 BM25Okapi per question over whitespace-split text "
    "(convmem.bench.flat_bm25); not a Memory retriever",
    "flat-bm25-words": "flat-bm25 with lowercased word tokens (punctuation dropped) instead of the protocol's "
    "whitespace split; a second baseline, not the protocol's",
}


@dataclass(frozen=True)
class BenchRetriever:
    name: str
    kind: str  # "protocol" (a baseline implemented by the bench itself) | "memory" (a Memory RetrievalConfig)
    config: RetrievalConfig | None = None
    description: str = ""

    @property
    def is_memory(self) -> bool:
        return self.kind == "memory"

    @property
    def dense(self) -> bool:
        return bool(self.config and self.config.dense)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "config": self.config.to_dict() if self.config else None}


def bench_retrievers() -> dict[str, BenchRetriever]:
    """Every retriever a benchmark can run, by name (protocol baselines first, then `RETRIEVERS`)."""
    out = {name: BenchRetriever(name, "protocol", None, desc) for name, desc in PROTOCOL_BASELINES.items()}
    for name, config in RETRIEVERS.items():
        if name not in out:
            out[name] = BenchRetriever(name, "memory", config, f"convmem Memory(retriever={name!r})")
    return out


def get_bench_retriever(name: str) -> BenchRetriever:
    known = bench_retrievers()
    if name not in known:
        raise NotFound(f"no benchmark retriever named {name!r}; choose one of: {', '.join(known)}")
    return known[name]
