"""Named retrieval configurations. Every design choice is a field, so each can be ablated by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from convmem.errors import NotFound


@dataclass(frozen=True)
class RetrievalConfig:
    lexical: bool = True
    dense: bool = True
    fusion: str = "weighted"  # "weighted" (min-max normalised sum) | "rrf"
    rrf_k: int = 60
    dense_weight: float = 0.3  # for fusion="weighted": share of the normalised dense score
    neighbour_weights: tuple[float, ...] = (0.5, 0.25)  # share of the best turn 1, 2, ... positions away
    speaker_boost: float = 0.2  # turns by a speaker the query names score (1 + boost) times higher
    session_agg: str = "max"  # how turn scores make a session score: "max" | "max+mean"

    def to_dict(self) -> dict:
        return asdict(self)


RETRIEVERS: dict[str, RetrievalConfig] = {
    "convmem": RetrievalConfig(),
    "dense": RetrievalConfig(lexical=False, neighbour_weights=(), speaker_boost=0.0),
    "lexical": RetrievalConfig(dense=False, neighbour_weights=(), speaker_boost=0.0),
    "hybrid-rrf": RetrievalConfig(fusion="rrf", neighbour_weights=(), speaker_boost=0.0),
    "hybrid-weighted": RetrievalConfig(neighbour_weights=(), speaker_boost=0.0),
}


def get_retriever(name: str | RetrievalConfig, **overrides) -> RetrievalConfig:
    if isinstance(name, RetrievalConfig):
        return replace(name, **overrides) if overrides else name
    if name not in RETRIEVERS:
        raise NotFound(f"no retriever named {name!r}; choose one of: {', '.join(sorted(RETRIEVERS))}")
    return replace(RETRIEVERS[name], **overrides) if overrides else RETRIEVERS[name]
