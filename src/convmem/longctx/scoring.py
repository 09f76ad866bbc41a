"""Scorers, as the anchors score. Each takes (prediction, references) and returns a float in [0, 1].

- string_match_all: fraction of references found in the prediction (case-insensitive), RULER's metric for
  NIAH, variable tracking and multi-value tasks (https://github.com/NVIDIA/RULER, `string_match_all`).
- string_match_part: 1 when any reference is found (RULER's `string_match_part`, used for QA).
- boxed_match: exact match of the last `\\boxed{...}` in the prediction with the reference (NeedleBench ATC);
  case and surrounding whitespace and quotes are ignored.
- tsort_exact: 1 when the predicted order equals the reference order exactly (Ada-LEval TSort); the order is the
  last bracketed list of integers, else the integers after the last "Answer:".
- label_match: 1 when the first answer label (A<number>) equals the reference label (Ada-LEval BestAnswer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from convmem.errors import NotFound


def string_match_all(prediction: str, references: Sequence[str]) -> float:
    if not references:
        return 0.0
    p = prediction.lower()
    return sum(r.lower() in p for r in references) / len(references)


def string_match_part(prediction: str, references: Sequence[str]) -> float:
    p = prediction.lower()
    return float(any(r.lower() in p for r in references))


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, braces balanced; None when there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth, out = start + len("\\boxed{"), 1, []
    while i < len(text):
        ch = text[i]
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return "".join(out)
        out.append(ch)
        i += 1
    return None


def _norm(s: str) -> str:
    return " ".join(s.strip().strip("'\"`.").split()).lower()


def boxed_match(prediction: str, references: Sequence[str]) -> float:
    got = last_boxed(prediction)
    return float(got is not None and any(_norm(got) == _norm(r) for r in references))


def parse_order(text: str) -> list[int] | None:
    lists = re.findall(r"\[([\d\s,]+)\]", text)
    if lists:
        return [int(x) for x in re.findall(r"\d+", lists[-1])]
    tail = text.rsplit("Answer:", 1)[-1]
    nums = re.findall(r"\d+", tail)
    return [int(x) for x in nums] or None


def tsort_exact(prediction: str, references: Sequence[str]) -> float:
    got = parse_order(prediction)
    return float(got is not None and any(got == parse_order(r) for r in references))


def label_match(prediction: str, references: Sequence[str]) -> float:
    m = re.search(r"\bA\s*(\d+)\b", prediction)
    return float(m is not None and any(f"A{m.group(1)}" == r.replace(" ", "") for r in references))


SCORERS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "string_match_all": string_match_all,
    "string_match_part": string_match_part,
    "boxed_match": boxed_match,
    "tsort_exact": tsort_exact,
    "label_match": label_match,
}


def score(name: str, prediction: str, references: Sequence[str]) -> float:
    """Apply the scorer registered as `name`."""
    if name not in SCORERS:
        raise NotFound(f"unknown scorer {name!r}; known: {', '.join(SCORERS)}")
    return SCORERS[name](prediction, references)
