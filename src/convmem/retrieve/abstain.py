"""Abstention: a calibrated "no evidence in memory" signal from retrieval alone, without an LLM.

Features of a query against one user's memory (cheap: the user's index is built and cached for the search):

- `term_coverage`: the share of the query's content terms (`convmem.index.text.analyze`) that occur anywhere in
  the memory. A question about something never discussed has words memory never saw (LongMemEval `_abs`).
- `best_turn_coverage`: the largest share of those terms found together in one turn.
- `max_cosine`: the best MiniLM cosine of the query to any turn (0 without vectors).
- `names_speaker`: 1 when the query names a speaker of the memory (full or first name), else 0.
- `named_log_ratio`: when it does, log of the best BM25 score (the query without the name) among that speaker's
  turns over the best among the other speakers' turns, clipped to [-3, 3]; 0 when it names none. LoCoMo's
  adversarial questions attribute something to the wrong speaker: the matching turns are then the other
  speaker's. (The share of the 5 best-ranked turns spoken by the named speaker separated them less: AUC 0.65 vs
  0.71 on the LoCoMo dev questions naming one speaker.)

A logistic model over these gives P(no evidence). Its coefficients were fitted on the development part only
(LongMemEval_S dev `_abs` questions and LoCoMo dev category 5 against the rest) by

    convmem bench abstention --benchmark longmemeval --data longmemeval_s_dev.json.gz --out A --db LME.db
    convmem bench abstention --benchmark locomo --data locomo_dev.json --out B --db LOCOMO.db
    convmem bench abstention-fit A B            # prints the constants below, writes A/fit.json

(docs/memory.md has the figures, and how weak the signal is.)
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from convmem.index.text import analyze
from convmem.index.user_index import UserIndex

FEATURES = ("term_coverage", "best_turn_coverage", "max_cosine", "names_speaker", "named_log_ratio")

# fitted by `convmem bench abstention-fit` (see the module docstring) on 1,635 dev questions (323 without
# evidence); P(no evidence) = sigmoid(INTERCEPT + sum of WEIGHTS x features)
INTERCEPT = 0.4470
WEIGHTS = {"term_coverage": -1.4294, "best_turn_coverage": -1.4458, "max_cosine": -2.0347, "names_speaker": 1.7985,
           "named_log_ratio": -1.3353}
THRESHOLD = 0.5  # found = P(no evidence) < THRESHOLD: "no evidence" only when it is the likelier case

NO_EVIDENCE = ("No evidence in memory for this question: the stored conversations do not appear to mention it "
               "(convmem's retrieval signal, P(no evidence) = {p:.2f}). Unless an excerpt above clearly answers "
               "it, say that it is not mentioned rather than guess.")
_NAME = re.compile(r"[^\W\d_][\w'-]*")


@dataclass(slots=True)
class Evidence:
    """Whether memory holds evidence for a query: `confidence` = P(evidence) = 1 - P(no evidence)."""

    confidence: float
    found: bool
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def named_speakers(index: UserIndex, query: str) -> list[int]:
    """Positions (in index.speakers) of the speakers the query names by full or first name ("Ben's" names Ben)."""
    words = {w.casefold().replace("’", "'").removesuffix("'s") for w in _NAME.findall(query)}
    return [k for k, s in enumerate(index.speakers) if s.casefold() in words or s.split()[0].casefold() in words]


def features(index: UserIndex, query: str, qvec: np.ndarray | None) -> dict[str, float]:
    terms = list(dict.fromkeys(analyze(query)))
    vocab = index.lexical.vocab
    cols = [vocab[t] for t in terms if t in vocab]
    coverage = len(cols) / len(terms) if terms else 1.0
    if cols and index.lexical.n:
        together = np.asarray((index.lexical.matrix[:, cols] > 0).sum(axis=1)).ravel()
        best = float(together.max()) / len(terms)
    else:
        best = 0.0 if terms else 1.0
    cosine = float((index.vectors @ qvec).max()) if qvec is not None and len(index.rows) and \
        index.vectors.shape[1] else 0.0
    named = named_speakers(index, query)
    ratio = 0.0
    mine = np.isin(index.speaker_index, named)
    if named and mine.any() and not mine.all():
        forms = {f.casefold() for k in named for f in (index.speakers[k], index.speakers[k].split()[0])}
        names = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        rest = re.sub(rf"(?<![\w])(?:{names})(?:'s)?(?![\w])", " ", query, flags=re.IGNORECASE)
        lexical = index.lexical.score(rest)
        ratio = float(np.clip(np.log((lexical[mine].max() + 1e-3) / (lexical[~mine].max() + 1e-3)), -3.0, 3.0))
    return {"term_coverage": coverage, "best_turn_coverage": best, "max_cosine": cosine,
            "names_speaker": float(bool(named)), "named_log_ratio": ratio}


def p_no_evidence(feats: dict[str, float], intercept: float = INTERCEPT,
                  weights: dict[str, float] | None = None) -> float:
    w = WEIGHTS if weights is None else weights
    z = intercept + sum(w[name] * feats[name] for name in FEATURES)
    return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


def evidence(index: UserIndex, query: str, qvec: np.ndarray | None) -> Evidence:
    """The signal for one query; an empty memory has no evidence for anything."""
    if not index.rows:
        return Evidence(confidence=0.0, found=False, features={})
    feats = features(index, query, qvec)
    p = p_no_evidence(feats)
    return Evidence(confidence=round(1.0 - p, 4), found=p < THRESHOLD,
                    features={k: round(v, 4) for k, v in feats.items()})
