"""Variable tracking (RULER): chains `VAR B = VAR A` rooted in `VAR A = <number>`; list every variable that holds it.

Hsieh et al., "RULER" (2024), https://arxiv.org/abs/2404.06654. Scored by string_match_all.
The root assignment of the asked chain sits at the requested depth; every other assignment at a seeded random
place (assignments are declarations, so their order does not change the answer).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from convmem.errors import InputError
from convmem.longctx.tasks import words
from convmem.longctx.tasks.base import Block, Budget, Draft, Task


@dataclass
class VariableTracking(Task):
    name = "variable_tracking"
    diffusion = "medium"
    scope = "medium"
    n_chains: int = 1
    n_hops: int = 4

    def __post_init__(self):
        if self.n_chains < 1 or self.n_hops < 1:
            raise InputError("variable tracking needs n_chains >= 1 and n_hops >= 1")

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        names: list[str] = []
        while len(names) < self.n_chains * (self.n_hops + 1):
            v = "".join(rng.choice(string.ascii_uppercase) for _ in range(5))
            if v not in names:
                names.append(v)
        values = words.distinct("numbers", rng, self.n_chains)
        values = [v[:5] for v in values]
        blocks, chains = [], []
        for c in range(self.n_chains):
            chain = names[c * (self.n_hops + 1) : (c + 1) * (self.n_hops + 1)]
            chains.append(chain)
            blocks.append(Block(f" VAR {chain[0]} = {values[c]}.", target=c == 0))
            blocks += [Block(f" VAR {chain[i + 1]} = VAR {chain[i]}.") for i in range(self.n_hops)]
        n, value = self.n_hops + 1, values[0]
        answer = (f"Answer: According to the chain(s) of variable assignment in the text above, {n} variables are "
                  f"assigned the value {value}, they are:")
        return Draft(
            prefix="Memorize and track the chain(s) of variable assignment hidden in the following text.\n",
            blocks=blocks,
            suffix=f"\nQuestion: Find all variables that are assigned the value {value} in the text above. {answer}",
            references=list(chains[0]),
            answer_prefix=answer,
            meta={"chains": chains, "values": values},
        )
