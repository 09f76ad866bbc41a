"""NeedleBench: multi-needle reasoning and the Ancestral Trace Challenge (ATC), both on kinship chains.

Li et al., "NeedleBench: Can LLMs Do Retrieval and Reasoning in 1 Million Context Window?" (2024),
https://arxiv.org/abs/2407.11963. A chain A1 -> A2 -> ... (A1 a parent of A2, ...) is written as shuffled
parent statements. ATC asks, with the answer in \\boxed{}: the eldest ancestor of the last person, the k-th
ancestor, the k-th descendant, or how many generations apart two people are; its context is kinship statements
only (the target chain among distractor families), as NeedleBench's ATC. Multi-needle reasoning hides a short
chain in a filler haystack and asks for the eldest ancestor (scored by string match).
The statement that holds the answer person is placed at the requested depth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from convmem.errors import InputError
from convmem.longctx.tasks import words
from convmem.longctx.tasks.base import Block, Budget, Draft, Task

QUESTIONS = ("eldest", "nth_ancestor", "nth_descendant", "distance")


def statement(parent: tuple[str, str], child: tuple[str, str], rng: random.Random) -> str:
    role = "father" if parent[1] == "m" else "mother"
    p, c = parent[0], child[0]
    form = rng.randrange(4)
    if form == 0:
        return f" {p} is the {role} of {c}."
    if form == 1:
        return f" {c}'s {role} is {p}."
    if form == 2:
        return f" {p}, as the {role} of {c}, has a great influence on {c}'s upbringing."
    return f" {c} was raised by {p}, who is {c}'s {role}."


def ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


@dataclass
class AncestralTrace(Task):
    """ATC: `n_needles` parent statements in one chain, among distractor families; answer in \\boxed{}."""

    name = "atc_eldest"
    scorer = "boxed_match"
    diffusion = "high"
    scope = "high"
    n_needles: int = 8
    question: str = "eldest"
    distractors: bool = True

    def __post_init__(self):
        if self.question not in QUESTIONS:
            raise InputError(f"unknown ATC question {self.question!r}: use one of {', '.join(QUESTIONS)}")
        if self.n_needles < 2:
            raise InputError("the ancestral trace needs n_needles >= 2")

    def _ask(self, chain, rng):
        """(question text, answer, index of the chain person the answer hinges on)."""
        n = len(chain) - 1
        last, first = chain[-1][0], chain[0][0]
        box = "Put the final answer in \\boxed{}, for example: \\boxed{Name Surname}."
        if self.question == "eldest":
            return (f"Given the scrambled family relationships described above, who is the eldest ancestor that "
                    f"'{last}' can trace back to in the context? {box}", first, 0)
        k = rng.randint(2, n)
        if self.question == "nth_ancestor":
            return (f"Given the family relationships described above, who is the {ordinal(k)} ancestor of "
                    f"'{last}' (the parent is the 1st ancestor)? {box}", chain[n - k][0], n - k)
        if self.question == "nth_descendant":
            return (f"Given the family relationships described above, who is the {ordinal(k)} descendant of "
                    f"'{first}' (a child is the 1st descendant)? {box}", chain[k][0], k - 1)
        i = rng.randint(0, n - k)
        return (f"Given the family relationships described above, how many generations apart are "
                f"'{chain[i][0]}' and '{chain[i + k][0]}'? Put the final answer in \\boxed{{}}, for example: "
                f"\\boxed{{3}}.", str(k), i)

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        pool = words.people(rng)
        chain = [pool.pop() for _ in range(self.n_needles + 1)]
        links = [statement(chain[i], chain[i + 1], rng) for i in range(self.n_needles)]
        question, answer, hinge = self._ask(chain, rng)
        blocks = [Block(s, target=(i == min(hinge, self.n_needles - 1))) for i, s in enumerate(links)]
        prefix = ("Here is a list of family relationships, in no particular order.\n" if self.distractors else
                  "Some family relationships are hidden in the following text.\n")
        suffix = f"\n{question}\nAnswer:"
        if self.distractors:
            longest = max(budget.count(b.text) for b in blocks)
            # leave two statements of slack: blocks are packed on both sides of the target
            room = budget.n_tokens - budget.count(prefix + suffix) - sum(budget.count(b.text) for b in blocks)
            room -= 3 * longest + 8
            while room > 0 and len(pool) > 8:
                size = rng.randint(2, max(2, self.n_needles))
                fam = [pool.pop() for _ in range(size + 1)]
                for i in range(size):
                    s = statement(fam[i], fam[i + 1], rng)
                    cost = budget.count(s)
                    if cost > room:
                        room = 0
                        break
                    blocks.append(Block(s))
                    room -= cost
        return Draft(prefix=prefix, blocks=blocks, suffix=suffix, references=[answer], answer_prefix="Answer:",
                     meta={"chain": [p for p, _ in chain], "question": self.question, "needles": self.n_needles})


@dataclass
class MultiNeedleReasoning(AncestralTrace):
    """NeedleBench multi-needle reasoning: a short kinship chain hidden in filler; who is the eldest ancestor?"""

    name = "needlebench_reasoning"
    scorer = "string_match_all"
    diffusion = "medium"
    scope = "medium"
    n_needles: int = 3
    distractors: bool = False
