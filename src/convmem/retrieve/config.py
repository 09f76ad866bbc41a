"""Named retrieval configurations. Every design choice is a field, so each can be ablated by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from convmem.errors import NotFound


@dataclass(frozen=True)
class RetrievalConfig:
    lexical: bool = True
    dense: bool = True
    fusion: str = "rrf"  # "rrf" | "weighted"
    rrf_k: int = 60
    dense_weight: float = 0.5  # for fusion="weighted": share of the min-max normalised dense score
    session_agg: str = "max"  # how turn scores make a session score: "max" | "max+mean"

    def to_dict(self) -> dict:
        return asdict(self)


RETRIEVERS: dict[str, RetrievalConfig] = {
    "convmem": RetrievalConfig(),
    "dense": RetrievalConfig(lexical=False),
    "lexical": RetrievalConfig(dense=False),
}


def get_retriever(name: str | RetrievalConfig, **overrides) -> RetrievalConfig:
    if isinstance(name, RetrievalConfig):
        return replace(name, **overrides) if overrides else name
    if name not in RETRIEVERS:
        raise NotFound(f"no retriever named {name!r}; choose one of: {', '.join(sorted(RETRIEVERS))}")
    return replace(RETRIEVERS[name], **overrides) if overrides else RETRIEVERS[name]
