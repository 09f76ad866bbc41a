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
    dense_weight: float = 0.5  # for fusion="weighted": share of the normalised dense score
    value: str = "turn"  # the unit scored: "turn", or "round" (a turn of the session's opener and its replies)
    neighbour_weights: tuple[float, ...] = (0.5, 0.25)  # share of the best turn 1, 2, ... positions away
    answer_weight: float = 0.85  # a person's reply to another's question: this share of the question's score
    speaker_boost: float = 0.2  # turns by a speaker the query names score (1 + boost) times higher
    time_boost: float = 0.5  # turns dated inside a range the query names ("last Saturday") score (1 + boost) x
    told_date_boost: float = 1.0  # and turns that date their own events there ("... today") (1 + this) x more
    event_bounds: bool = True  # "before I moved": turns on the asked side of the event's date get the time boost
    order_boost: float = 0.1  # "first time" / "currently" cues: earliest / latest turns score up to (1 + boost) x
    date_keys: bool = True  # relative dates inside turns ("yesterday") resolved to calendar dates for matching
    statement_keys: bool = True  # a turn's first-person statement sentences embedded as extra dense keys
    fact_keys: bool = False  # each stored fact of a turn ("Ana lives in Lisbon") embedded as an extra dense key
    phrase_keys: bool = False  # the names, numbers and key phrases of a turn embedded as extra dense keys
    assistant_weight: float = 0.6  # turns by the assistant score this share, unless the question asks about them
    session_agg: str = "max"  # how turn scores make a session score: "max" | "max+mean"
    session_dense_weight: float = 0.7  # granularity="session": dense share of the turn scores whose max ranks it
    session_doc_weight: float = 0.5  # granularity="session": weight of the whole session as one document
    session_prior: float = 0.0  # two-stage: each turn also gets this x its session's document score
    session_diversity: float = 1.0  # turn ranking: each earlier pick from a session multiplies its others by this
    update_similarity: float = 0.5  # same statement in two sessions (cosine >= this): the one asked for first
    update_closeness: float = 0.9  # ... when it also scored at least this share of the other's score
    context_turn_tokens: int = 80  # context assembly: longer turns are cut to the sentences around the match
    context_full_turns: int = 10  # ... the first this many turns taken; the ones after them are cut shorter:
    context_tail_tokens: int = 48  # ... to this many tokens (no shorter cut when >= context_turn_tokens)
    rerank: str = "none"  # "lm": a local language model re-scores the best turns (query likelihood, retrieve.rerank)
    rerank_depth: int = 20  # ... this many of them
    rerank_weight: float = 1.0  # ... their z-scored likelihood added with this weight to the z-scored first stage

    def to_dict(self) -> dict:
        return asdict(self)

    def key_kinds(self) -> tuple[str, ...]:
        """The kinds of extra dense keys switched on, in the order an index stacks them (`index.user_index`)."""
        kinds = (("statement", self.statement_keys), ("phrase", self.phrase_keys), ("fact", self.fact_keys))
        return tuple(kind for kind, on in kinds if on)


# the plain retrievers: no conversation-aware steps, for ablations
_PLAIN = dict(neighbour_weights=(), answer_weight=0.0, speaker_boost=0.0, time_boost=0.0, order_boost=0.0,
              event_bounds=False, date_keys=False, dense_weight=0.4, context_tail_tokens=80,
              session_doc_weight=0.0, session_dense_weight=0.4, update_similarity=0.0,
              statement_keys=False, assistant_weight=1.0)

RETRIEVERS: dict[str, RetrievalConfig] = {
    "convmem": RetrievalConfig(),
    "dense": RetrievalConfig(lexical=False, **_PLAIN),
    "lexical": RetrievalConfig(dense=False, **_PLAIN),
    "hybrid-rrf": RetrievalConfig(fusion="rrf", **_PLAIN),
    "hybrid-weighted": RetrievalConfig(**_PLAIN),
    # ablations: the default with one design switched off
    "convmem-no-neighbours": RetrievalConfig(neighbour_weights=(), answer_weight=0.0),
    "convmem-no-answers": RetrievalConfig(answer_weight=0.0),
    "convmem-round": RetrievalConfig(value="round", neighbour_weights=()),  # LongMemEval's round values
    "convmem-round-neighbours": RetrievalConfig(value="round"),
    "convmem-no-speaker": RetrievalConfig(speaker_boost=0.0),
    "convmem-no-time": RetrievalConfig(time_boost=0.0, order_boost=0.0, date_keys=False, event_bounds=False),
    "convmem-no-events": RetrievalConfig(event_bounds=False),
    "convmem-no-told-dates": RetrievalConfig(told_date_boost=0.0),
    "convmem-dw40": RetrievalConfig(dense_weight=0.4),  # the dense share before statement keys strengthened it
    "convmem-no-session-doc": RetrievalConfig(session_doc_weight=0.0, session_dense_weight=0.4),
    "convmem-no-updates": RetrievalConfig(update_similarity=0.0),
    "convmem-no-keys": RetrievalConfig(statement_keys=False),
    "convmem-no-assistant-prior": RetrievalConfig(assistant_weight=1.0),
    # designs measured and left out of the default (docs/benchmarks.md)
    "convmem-two-stage": RetrievalConfig(session_prior=0.3),
    "convmem-diverse": RetrievalConfig(session_diversity=0.85),
    "convmem-ctx160": RetrievalConfig(context_turn_tokens=160, context_tail_tokens=160),
    "convmem-ctx-even": RetrievalConfig(context_tail_tokens=80),  # every turn cut at 80, as before the tail cut
    "convmem-facts": RetrievalConfig(fact_keys=True),  # LongMemEval's "K = V + fact" key expansion
    "convmem-phrases": RetrievalConfig(phrase_keys=True),  # ... and "K = V + keyphrase"
    "convmem-rerank": RetrievalConfig(rerank="lm"),  # a second stage by the local LLM: seconds per question
}


def get_retriever(name: str | RetrievalConfig, **overrides) -> RetrievalConfig:
    if isinstance(name, RetrievalConfig):
        return replace(name, **overrides) if overrides else name
    if name not in RETRIEVERS:
        raise NotFound(f"no retriever named {name!r}; choose one of: {', '.join(sorted(RETRIEVERS))}")
    return replace(RETRIEVERS[name], **overrides) if overrides else RETRIEVERS[name]
