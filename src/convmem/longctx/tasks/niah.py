"""Needle in a haystack: the passkey test and the RULER variants (single, multi-key, multi-value, multi-query).

Passkey: Mohtashami & Jaggi, "Landmark Attention" (2023), https://arxiv.org/abs/2305.16300.
RULER: Hsieh et al., "RULER: What's the Real Context Size of Your Long-Context Language Models?" (2024),
https://arxiv.org/abs/2404.06654. Scored by string_match_all (fraction of the asked values found), as RULER does.
The needle of the first asked key is placed at the requested depth; distractor needles at seeded random places.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from convmem.errors import InputError
from convmem.longctx.tasks import words
from convmem.longctx.tasks.base import Block, Budget, Draft, Task


@dataclass
class Passkey(Task):
    """A 5-digit pass key hidden in noise; the model completes "The pass key is"."""

    name = "passkey"
    digits: int = 5

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        key = words.number(rng, self.digits)
        answer = "The pass key is"
        return Draft(
            prefix="There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
            "I will quiz you about the important information there.\n",
            blocks=[Block(f" The pass key is {key}. Remember it. {key} is the pass key.", target=True)],
            suffix=f"\nWhat is the pass key? {answer}",
            references=[key],
            answer_prefix=answer,
            meta={"needles": 1},
        )


@dataclass
class Niah(Task):
    """RULER NIAH: `n_keys` keys with `n_values` values each; the first `n_queries` keys are asked."""

    name = "niah_single"
    n_keys: int = 1
    n_values: int = 1
    n_queries: int = 1
    key_type: str = "words"
    value_type: str = "numbers"

    def __post_init__(self):
        if min(self.n_keys, self.n_values, self.n_queries) < 1 or self.n_queries > self.n_keys:
            raise InputError("niah needs n_keys, n_values, n_queries >= 1 and n_queries <= n_keys")

    @property
    def scope(self) -> str:  # type: ignore[override]
        return "low" if self.n_values * self.n_queries == 1 else "medium"

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        keys = words.distinct(self.key_type, rng, self.n_keys)
        values = words.distinct(self.value_type, rng, self.n_keys * self.n_values)
        noun = {"numbers": "numbers", "words": "words", "uuids": "uuids"}[self.value_type]
        one = noun[:-1]
        blocks, refs = [], []
        for k, key in enumerate(keys):
            for v in range(self.n_values):
                value = values[k * self.n_values + v]
                text = f" One of the special magic {noun} for {key} is: {value}."
                blocks.append(Block(text, target=(k, v) == (0, 0)))
                if k < self.n_queries:
                    refs.append(value)
        asked = keys[: self.n_queries]
        query = asked[0] if len(asked) == 1 else ", ".join(asked[:-1]) + " and " + asked[-1]
        if len(refs) == 1:
            question = f"What is the special magic {one} for {query} mentioned in the provided text?"
            answer = f"The special magic {one} for {query} mentioned in the provided text is"
        else:
            question = f"What are all the special magic {noun} for {query} mentioned in the provided text?"
            answer = f"The special magic {noun} for {query} mentioned in the provided text are"
        return Draft(
            prefix=f"Some special magic {noun} are hidden within the following text. Make sure to memorize it. "
            f"I will quiz you about the {noun} afterwards.\n",
            blocks=blocks,
            suffix=f"\n{question} {answer}",
            references=refs,
            answer_prefix=answer,
            meta={"needles": len(blocks), "keys": keys, "asked": asked},
        )
