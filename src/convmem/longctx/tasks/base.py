"""Task instances and the one composer that makes every task exact in length and needle depth.

A task family writes a `Draft` (instruction prefix, blocks of text, question suffix, references); `compose` lays
the blocks into filler so that the prompt is exactly `n_tokens` tokens under the tokenizer and the target block
starts exactly at context token `round(depth * (context_tokens - target_tokens))`, where the context is what lies
between prefix and suffix (depth 0: first context token; depth 1: the target's last token is the last context
token). Filler is cut only where a word starts, so the text reads cleanly and re-tokenizes to the same ids; the
composer checks that and, for the rare tokenizer/corpus where a cut still merges, repairs the length and records
the target's real position (`TaskInstance.exact_depth` says which).

Tags from "Is It Really Long Context if All You Need Is Retrieval?" (Goldman et al., 2024,
https://arxiv.org/abs/2407.00402): `diffusion` says how hard the needed information is to find, `scope` how much
of it is needed; each is "low", "medium" or "high".
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from convmem.errors import InputError
from convmem.longctx.tasks.filler import Filler, Stream
from convmem.longctx.tokenizer import Tok, as_tok

LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class TaskInstance:
    """One prompt with its references; `score(prediction)` applies the task's scorer."""

    task: str
    prompt: str
    references: tuple[str, ...]
    scorer: str
    diffusion: str
    scope: str
    n_tokens: int
    depth: float | None
    seed: int
    answer_prefix: str = ""
    target_token: int | None = None
    exact_depth: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    context_span: tuple[int, int] | None = None  # characters of `prompt` between instruction and question

    def score(self, prediction: str) -> float:
        from convmem.longctx.scoring import score

        return score(self.scorer, prediction, self.references)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["references"] = list(self.references)
        return d

    @property
    def question_prompt(self) -> str:
        """The prompt without its trailing answer prefix (what a chat model gets as the user turn)."""
        if self.answer_prefix and self.prompt.endswith(self.answer_prefix):
            return self.prompt[: -len(self.answer_prefix)].rstrip()
        return self.prompt

    @property
    def context(self) -> str:
        """The haystack: what lies between the instruction and the question (the whole prompt if unknown)."""
        a, b = self.context_span or (0, len(self.prompt))
        return self.prompt[a:b]

    @property
    def instruction(self) -> str:
        return self.prompt[: self.context_span[0]] if self.context_span else ""

    @property
    def question(self) -> str:
        """The question after the context, without the answer prefix."""
        text = self.prompt[self.context_span[1] :] if self.context_span else ""
        if self.answer_prefix and text.endswith(self.answer_prefix):
            text = text[: -len(self.answer_prefix)]
        return text.strip()


@dataclass
class Block:
    """A piece of task text placed in the context; its text starts with its separator (" " or "\\n")."""

    text: str
    target: bool = False


@dataclass
class Draft:
    prefix: str
    blocks: list[Block]
    suffix: str
    references: list[str]
    answer_prefix: str = ""
    filler: Filler | None = None  # overrides the task's filler (e.g. key-value pairs for Needle Threading)
    ordered: bool = False  # keep blocks in order, back to back, filler after them; no target depth
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    """What a draft may ask about the tokens it has."""

    tok: Tok
    n_tokens: int
    depth: float | None = None  # for drafts that place their target themselves (ordered drafts)

    def count(self, text: str) -> int:
        return self.tok.count(text)


@dataclass
class Task(ABC):
    """A task family: dataclass fields are its parameters; `generate` gives one exact-length instance."""

    name: ClassVar[str] = ""
    scorer: ClassVar[str] = "string_match_all"
    diffusion: ClassVar[str] = "low"
    scope: ClassVar[str] = "low"
    uses_depth: ClassVar[bool] = True

    filler: str | Sequence[str] = "noise"

    @abstractmethod
    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        """The task text for one instance; `rng` depends only on the seed."""

    def generate(self, n_tokens: int, *, depth: float | None = 0.5, seed: int = 0, tokenizer=None) -> TaskInstance:
        if not isinstance(n_tokens, int) or n_tokens <= 0:
            raise InputError(f"n_tokens must be a positive integer, got {n_tokens!r}")
        if not self.uses_depth:
            depth = None
        elif depth is None or not 0.0 <= float(depth) <= 1.0:
            raise InputError(f"depth must be between 0 and 1, got {depth!r}")
        tok = as_tok(tokenizer)
        draft = self.draft(random.Random(f"{self.name}|{seed}"), Budget(tok, n_tokens, depth))
        layout_rng = random.Random(f"{self.name}|{seed}|{n_tokens}|{depth}")
        filler = draft.filler or Filler(self.filler)
        text, target, exact = compose(tok, draft, n_tokens, depth, filler, layout_rng)
        return TaskInstance(
            task=self.name,
            prompt=text,
            references=tuple(draft.references),
            scorer=self.scorer,
            diffusion=self.diffusion,
            scope=self.scope,
            n_tokens=n_tokens,
            depth=None if depth is None else float(depth),
            seed=seed,
            answer_prefix=draft.answer_prefix,
            target_token=target,
            exact_depth=exact,
            meta=draft.meta,
            context_span=(len(draft.prefix), len(text) - len(draft.suffix)),
        )


# ---------------------------------------------------------------------------------------------------- composing


def _pick_span(stream: Stream, f: int, rng: random.Random, clean: str = "end") -> int:
    """Start of a filler span of f tokens; prefers spans that start and end at sentence starts, then at word
    starts; when both cannot hold, the `clean` side ("end": a needle follows; "start": it follows a needle)."""
    n = len(stream)
    if f >= n:
        raise InputError("filler stream too short")
    starts = np.arange(0, n - f + 1)
    word = np.append(stream.boundary, True)
    sent = np.append(stream.sentence, True)
    a, b = (starts + f, starts) if clean == "end" else (starts, starts + f)
    for ok in (sent[a] & sent[b], sent[a] & word[b], word[a] & word[b], sent[a], word[a]):
        pool = np.flatnonzero(ok)
        if len(pool):
            return int(pool[rng.randrange(len(pool))])
    return rng.randrange(len(starts))


def _snap(stream: Stream, pos: int, lo: int, hi: int) -> int:
    """Nearest sentence start to `pos` within [lo, hi] (up to 256 tokens away), else the nearest word start (up to
    64 away), else `pos` itself."""
    for marks, reach in ((stream.sentence, 256), (stream.boundary, 64)):
        for d in range(0, reach):
            for p in (pos - d, pos + d):
                if lo <= p <= hi and (p == len(stream) or marks[p]):
                    return p
    return pos


def _region(stream: Stream, f: int, blocks: list[tuple[int, Block]], rng: random.Random, ordered: bool,
            clean: str = "end"):
    """Pieces for a stretch of f filler tokens with `blocks` cut into it at sentence/word starts (random places)."""
    start = _pick_span(stream, f, rng, clean) if f else 0
    if ordered:
        cuts = [0] * len(blocks)
    else:
        cuts = sorted(_snap(stream, start + rng.randint(0, f), start, start + f) - start for _ in blocks)
    pieces, prev = [], 0
    for cut, (index, block) in zip(cuts, blocks, strict=True):
        pieces.append(("filler", stream.piece(start + prev, start + cut)))
        pieces.append((index, block))
        prev = cut
    pieces.append(("filler", stream.piece(start + prev, start + f)))
    return pieces


def _layout(tok, draft, n_tokens, depth, stream, rng, lens, adjust):
    prefix_ids, suffix_ids = tok.encode(draft.prefix), tok.encode(draft.suffix)
    context = n_tokens - len(prefix_ids) - len(suffix_ids)
    total_filler = context - sum(lens)
    if total_filler < 0:
        raise InputError(
            f"{n_tokens} tokens is too short for this instance of the task: it needs at least "
            f"{n_tokens - total_filler} tokens (lower its parameters or raise the length)"
        )
    targets = [i for i, b in enumerate(draft.blocks) if b.target]
    before: list[tuple[int, Block]] = []
    after: list[tuple[int, Block]] = []
    if draft.ordered or depth is None or not targets:
        t = None
        ordered_target = targets[0] if draft.ordered and targets else None
        before = list(enumerate(draft.blocks))
        if draft.ordered:
            fb, fa = 0, total_filler
        else:
            fb, fa = total_filler, 0
    else:
        t = targets[0]
        t_star = round(float(depth) * (context - lens[t]))
        cap = {"before": t_star, "after": context - t_star - lens[t]}
        others = [i for i in range(len(draft.blocks)) if i != t]
        rng.shuffle(others)
        for i in others:
            side = "before" if rng.random() * context < t_star else "after"
            if lens[i] > cap[side]:
                side = "after" if side == "before" else "before"
            if lens[i] > cap[side]:
                raise InputError(f"{n_tokens} tokens is too short to place every block of this task instance")
            cap[side] -= lens[i]
            (before if side == "before" else after).append((i, draft.blocks[i]))
        fb, fa = cap["before"], cap["after"]
        ordered_target = None
    fa += adjust
    if fa < 0:
        fb, fa = fb + fa, 0
    pieces = [("text", (draft.prefix, prefix_ids))]
    pieces += _region(stream, fb, before, rng, draft.ordered)
    if t is not None:
        pieces.append((t, draft.blocks[t]))
        pieces += _region(stream, fa, after, rng, False, clean="start")
    elif draft.ordered and fa:
        start = _pick_span(stream, fa, rng, clean="start")
        pieces.append(("filler", stream.piece(start, start + fa)))
    pieces.append(("text", (draft.suffix, suffix_ids)))
    texts, ids, target_token, target_char = [], [], None, None
    for kind, item in pieces:
        if isinstance(kind, int):
            if kind in (t, ordered_target):
                target_token, target_char = len(ids), sum(len(x) for x in texts)
            texts.append(item.text)
            ids += tok.encode(item.text)
        else:
            texts.append(item[0])
            ids += list(item[1])
    return "".join(texts), ids, target_token, target_char


def compose(tok: Tok, draft: Draft, n_tokens: int, depth: float | None, filler: Filler, rng: random.Random):
    """Prompt text of exactly `n_tokens` tokens; returns (text, target token index, depth exact?)."""
    lens = [tok.count(b.text) for b in draft.blocks]
    need = n_tokens - sum(lens) + 64
    stream = filler.stream(tok, max(need, 64) + 512, rng)
    seed = rng.random()
    adjust = 0
    for _ in range(8):
        text, ids, target_token, target_char = _layout(
            tok, draft, n_tokens, depth, stream, random.Random(seed), lens, adjust
        )
        real = tok.encode_offsets(text)
        exact = not (draft.ordered and any(b.target for b in draft.blocks))  # placed by whole blocks
        if real.ids == ids:
            return text, target_token, exact
        if len(real.ids) == n_tokens:
            if target_char is None:
                return text, None, True
            actual = next(i for i, (_, end) in enumerate(real.offsets) if end > target_char)
            return text, actual, exact and actual == target_token
        adjust -= len(real.ids) - n_tokens
    raise InputError(
        f"could not build a prompt of exactly {n_tokens} tokens with this tokenizer and filler; "
        "try another filler or length"
    )
