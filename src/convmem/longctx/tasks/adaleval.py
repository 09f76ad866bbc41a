"""Ada-LEval, length-adaptable: TSort (restore the order of shuffled segments) and BestAnswer (find the
accepted answer among distractors).

Wang et al., "Ada-LEval: Evaluating long-context LLMs with length-adaptable benchmarks" (2024),
https://arxiv.org/abs/2404.06480. Both are built from the user's corpus or from text we generate:
TSort cuts consecutive text (a corpus, or a generated dated chronicle) into equal-token segments and shuffles
them; scored by exact order. BestAnswer takes question threads `{"question", "answers", "accepted"}` (or generated
product-support threads), puts the accepted answer among answers to other questions, labelled A1..An in order;
the accepted answer sits at the answer slot nearest the requested depth (depth is exact only to an answer).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from convmem.errors import InputError
from convmem.longctx.tasks.base import Block, Budget, Draft, Task
from convmem.longctx.tasks.filler import Filler, generated_text, make_stream

MONTHS = "January February March April May June July August September October November December".split()


def chronicle(rng: random.Random, n_chars: int) -> str:
    """A dated diary: the dates make the right order recoverable from the text alone."""
    parts, day, year, size = [], rng.randrange(28), 1800 + rng.randrange(150), 0
    while size < n_chars:
        day += rng.randint(1, 9)
        month, d = divmod(day, 28)
        if month >= 12:
            year, day, month = year + 1, d, 0
        body = generated_text(rng, rng.randint(2, 4))
        entry = f"On {MONTHS[month]} {d + 1}, {year}, {body[0].lower()}{body[1:]}"
        parts.append(entry)
        size += len(entry) + 1
    return " ".join(parts)


@dataclass
class TSort(Task):
    name = "tsort"
    scorer = "tsort_exact"
    diffusion = "high"
    scope = "high"
    uses_depth = False
    filler: str | Sequence[str] = "generated"
    n_segments: int = 4

    def __post_init__(self):
        if self.n_segments < 2:
            raise InputError("tsort needs n_segments >= 2")

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        n = self.n_segments
        prefix = (f"Below are {n} segments of one text, shuffled. Put them back in the order of the original text.\n")
        example = ", ".join(str(i) for i in range(n, 0, -1))
        answer = "Answer:"
        suffix = (f"\nGive the segment numbers in the original order, in this format: Answer: [{example}]\n{answer}")
        headers = [f"\nSegment {i + 1}:\n" for i in range(n)]
        room = budget.n_tokens - budget.count(prefix) - budget.count(suffix) - sum(budget.count(h) for h in headers)
        if room < 4 * n:
            raise InputError(f"{budget.n_tokens} tokens is too short for tsort with {n} segments")
        if self.filler in ("generated", "noise"):
            stream = make_stream(budget.tok, chronicle(rng, 6 * room + 512))
        else:
            stream = Filler(self.filler).stream(budget.tok, room + 512, rng)
        start = rng.choice([i for i in range(max(1, len(stream) - room)) if stream.boundary[i]] or [0])
        perm = list(range(n))
        rng.shuffle(perm)  # perm[j] = displayed slot of original part j
        cuts = [start + round(room * j / n) for j in range(n + 1)]
        want = budget.n_tokens - budget.count(prefix) - budget.count(suffix)
        for _ in range(8):  # move the end of the last part until the segments fill the context exactly
            pieces = [""] * n
            for j in range(n):
                pieces[perm[j]] = stream.piece(cuts[j], cuts[j + 1])[0].strip()
            blocks = [Block(headers[i] + pieces[i]) for i in range(n)]
            diff = want - sum(budget.count(b.text) for b in blocks)
            if diff == 0 or cuts[n] + diff >= len(stream):
                break
            cuts[n] += diff
        order = [perm[j] + 1 for j in range(n)]
        return Draft(prefix=prefix, blocks=blocks, suffix=suffix, references=[str(order)], answer_prefix=answer,
                     ordered=True, meta={"segments": n})


PRODUCTS = ("Zentro router|Pelican editor|Quokka camera|Marlin thermostat|Osprey laptop|Lynx printer|"
            "Heron speaker|Badger drive|Condor watch|Falcon tablet|Otter keyboard|Bison projector").split("|")
PROBLEMS = ("drops the connection every hour|crashes on startup|drains the battery overnight|shows a blank screen|"
            "will not pair with my phone|makes a clicking noise|forgets its settings after a reboot|"
            "runs very hot|refuses to update|prints the date wrong").split("|")
FIXES = ("hold the reset button for ten seconds|reinstall the firmware from the support page|clear the cache folder|"
         "turn off the power saving mode|replace the cable that came with it|disable automatic updates for a day|"
         "set the region in the settings menu again|remove the old profile and create a new one|"
         "update the driver on your computer first|move it away from the window").split("|")


def generated_threads(rng: random.Random, n: int) -> list[dict]:
    combos = [(p, q) for p in PRODUCTS for q in PROBLEMS]
    rng.shuffle(combos)
    threads = []
    for p, q in (combos * (n // len(combos) + 1))[:n]:
        fix = rng.choice(FIXES)
        threads.append({"question": f"My {p} {q}. How can I fix it?",
                        "answers": [f"When the {p} {q}, {fix}. That solved it for me."], "accepted": 0})
    return threads


@dataclass
class BestAnswer(Task):
    name = "bestanswer"
    scorer = "label_match"
    diffusion = "medium"
    scope = "high"
    threads: Sequence[Mapping] = field(default_factory=tuple)

    def draft(self, rng: random.Random, budget: Budget) -> Draft:
        threads = list(self.threads) or generated_threads(rng, 2000)
        for i, t in enumerate(threads):
            if not {"question", "answers", "accepted"} <= set(t) or not t["answers"]:
                raise InputError(f"bestanswer thread {i} needs 'question', 'answers' and 'accepted'")
        order = list(range(len(threads)))
        rng.shuffle(order)
        main = threads[order[0]]
        accepted = main["answers"][int(main["accepted"])]
        others = [a for i in order[1:] for a in threads[i]["answers"]]
        others += [a for j, a in enumerate(main["answers"]) if j != int(main["accepted"])]
        rng.shuffle(others)
        prefix = f"Here is a question and a list of candidate answers.\nQuestion: {main['question']}\n"
        answer = "Answer:"
        suffix = ("\nWhich answer is the accepted (best) answer to the question? Reply with its label, "
                  f"for example: Answer: A1\n{answer}")
        room = budget.n_tokens - budget.count(prefix + suffix) - 8
        texts: list[str] = []
        for a in [accepted] + others:
            cost = budget.count(f"\nA{len(texts) + 1}: {a}")
            if cost > room:
                break
            texts.append(a)
            room -= cost
        if not texts or texts[0] != accepted or len(texts) < 2:
            raise InputError(f"{budget.n_tokens} tokens is too short for bestanswer")
        depth = 0.5 if budget.depth is None else budget.depth
        slot = round(depth * (len(texts) - 1))
        texts.insert(slot, texts.pop(0))
        blocks = [Block(f"\nA{i + 1}: {a}", target=i == slot) for i, a in enumerate(texts)]
        limit = budget.n_tokens - budget.count(prefix + suffix)
        while sum(budget.count(b.text) for b in blocks) > limit and len(blocks) > slot + 1:
            blocks.pop()  # relabelling can cost a token or two
        return Draft(prefix=prefix, blocks=blocks, suffix=suffix, references=[f"A{slot + 1}"], answer_prefix=answer,
                     ordered=True, meta={"candidates": len(blocks)})
