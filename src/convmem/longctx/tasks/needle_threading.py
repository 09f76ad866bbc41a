"""Needle Threading: follow threads of keys through a haystack of UUID key-value pairs.

Roberts et al., "Needle Threading: Can LLMs Follow Threads through Near-Million-Scale Haystacks?" (2024),
https://arxiv.org/abs/2411.05000. The haystack is a JSON object of UUID pairs; a thread is k1 -> k2 -> ... -> v
(each value is the next key); the model returns the value at the end of each thread (multi-threading: several
threads at once). Scored by string_match_all. The first link of the first thread sits at the requested depth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from convmem.errors import InputError
from convmem.longctx.tasks import words
from convmem.longctx.tasks.base import Block, Budget, Draft, Task
from convmem.longctx.tasks.filler import Filler


def pair(key: str, value: str) -> str:
    return f'\n"{key}":"{value}",'


class PairFiller(Filler):
    """Distractor key-value lines (fresh UUIDs, seeded)."""

    def __init__(self):
        super().__init__("generated")

    def _text(self, rng: random.Random, n_chars: int) -> str:
        return "".join(pair(words.uuid(rng), words.uuid(rng)) for _ in range(n_chars // 78 + 1))


@dataclass
class NeedleThreading(Task):
    name = "needle_threading"
    diffusion = "high"
    scope = "medium"
    n_links: int = 4
    n_threads: int = 1

    def __post_init__(self):
        if self.n_links < 1 or self.n_threads < 1:
            raise InputError("needle threading needs n_links >= 1 and n_threads >= 1")

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        blocks, starts, ends = [], [], []
        for t in range(self.n_threads):
            keys = words.distinct("uuids", rng, self.n_links + 1)
            starts.append(keys[0])
            ends.append(keys[-1])
            blocks += [Block(pair(keys[i], keys[i + 1]), target=(t, i) == (0, 0)) for i in range(self.n_links)]
        if self.n_threads == 1:
            ask = (f'Starting at key "{starts[0]}", follow the thread: look up its value, and while that value is '
                   "also a key, look up the value of that key. What is the value at the end of the thread?")
            answer = "The value at the end of the thread is"
        else:
            listed = ", ".join(f'"{s}"' for s in starts)
            ask = (f"For each of the keys {listed}, follow its thread: look up its value, and while that value is "
                   "also a key, look up the value of that key. What are the values at the ends of the threads?")
            answer = "The values at the ends of the threads are"
        return Draft(
            prefix="Below is a JSON object of key-value pairs. Some values are themselves keys of the object.\n{",
            blocks=blocks,
            suffix=f"\n}}\n{ask} {answer}",
            references=ends,
            answer_prefix=answer,
            filler=PairFiller(),
            meta={"threads": self.n_threads, "links": self.n_links, "starts": starts},
        )
