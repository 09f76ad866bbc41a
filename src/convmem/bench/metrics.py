"""Official LongMemEval retrieval metrics, on ranked id lists.

Implements `src/retrieval/eval_utils.py` of xiaowu0162/LongMemEval (dcg, ndcg, evaluate_retrieval,
evaluate_retrieval_turn2session) and the averaging of `run_retrieval.py` (abstention questions left out).
A ranking is the list of ALL corpus ids of one question, best first (as `np.argsort(scores)[::-1]` gives):
the ideal DCG is computed from every relevant entry of that list. Results are plain dicts of floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from convmem.bench.datasets import lme_session_of
from convmem.errors import InputError

KS = (1, 3, 5, 10, 30, 50)
METRICS = ("recall_any", "recall_all", "ndcg_any")


def recall_any(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when any gold id is in the top k (official `recall_any`; 0.0 when there is no gold)."""
    top = set(ranked[:k])
    return float(any(g in top for g in gold))


def recall_all(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when every gold id is in the top k (official `recall_all`; 1.0 when there is no gold)."""
    top = set(ranked[:k])
    return float(all(g in top for g in gold))


def dcg(relevances: Sequence[float]) -> float:
    """Official DCG: rel_1 + sum over positions i >= 2 of rel_i / log2(i) (positions 1 and 2 weigh the same)."""
    return sum(rel if pos == 1 else rel / math.log2(pos) for pos, rel in enumerate(relevances, start=1))


def ndcg_any(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Official ndcg: DCG of the binary relevances of the top k, divided by the DCG of the ideal ordering of the
    relevances of the whole ranking (cut at k); 0.0 when that ideal is 0. Duplicated ids each count, as in the
    official turn->session evaluation where every turn of a gold session is relevant."""
    gold = set(gold)
    rels = [1 if d in gold else 0 for d in ranked]
    ideal = dcg(sorted(rels, reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(rels[:k]) / ideal


def turn_to_session_ranking(
    ranked_turn_ids: Sequence[str], session_of: Callable[[str], str] | Mapping[str, str] = lme_session_of
) -> list[str]:
    """Map each ranked turn id to its session id, keeping positions and duplicates (official turn2session).

    `session_of` is a function or a mapping; the default is the official `strip_turn_id`.
    """
    get = session_of.__getitem__ if isinstance(session_of, Mapping) else session_of
    return [get(t) for t in ranked_turn_ids]


def grown_k(session_ranking: Sequence[str], k: int) -> int:
    """Official turn2session rule: grow k until the top k holds k distinct sessions (or the list runs out)."""
    eff = k
    seen = set(session_ranking[:eff])
    while eff <= len(session_ranking) and len(seen) < k:
        eff += 1
        seen = set(session_ranking[:eff])
    return eff


def metrics_at(ranked: Sequence[str], gold: Iterable[str], ks: Iterable[int] = KS) -> dict[str, float]:
    """{'recall_any@k', 'recall_all@k', 'ndcg_any@k'} for every k (official `evaluate_retrieval`)."""
    gold = set(gold)
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall_any@{k}"] = recall_any(ranked, gold, k)
        out[f"recall_all@{k}"] = recall_all(ranked, gold, k)
        out[f"ndcg_any@{k}"] = ndcg_any(ranked, gold, k)
    return out


def session_metrics_from_turns(
    ranked_turn_ids: Sequence[str],
    gold_turns: Iterable[str],
    ks: Iterable[int] = KS,
    session_of: Callable[[str], str] | Mapping[str, str] = lme_session_of,
) -> dict[str, float]:
    """Official `evaluate_retrieval_turn2session`: session metrics of a turn ranking, each k grown by `grown_k`
    (the metric keeps the name of the asked k)."""
    sessions = turn_to_session_ranking(ranked_turn_ids, session_of)
    get = session_of.__getitem__ if isinstance(session_of, Mapping) else session_of
    gold = {get(g) for g in gold_turns}
    out: dict[str, float] = {}
    for k in ks:
        eff = grown_k(sessions, k)
        out[f"recall_any@{k}"] = recall_any(sessions, gold, eff)
        out[f"recall_all@{k}"] = recall_all(sessions, gold, eff)
        out[f"ndcg_any@{k}"] = ndcg_any(sessions, gold, eff)
    return out


def question_metrics(
    ranked_ids: Sequence[str],
    gold: Iterable[str],
    granularity: str,
    ks: Iterable[int] = KS,
    session_of: Callable[[str], str] | Mapping[str, str] = lme_session_of,
) -> dict[str, dict[str, float]]:
    """Per-question metrics: {'session': {...}} for a session ranking; {'turn': {...}, 'session': {...}} for a
    turn ranking (session figures through the official turn->session evaluation)."""
    ks = tuple(ks)
    gold = set(gold)
    if granularity == "session":
        return {"session": metrics_at(ranked_ids, gold, ks)}
    if granularity == "turn":
        return {"turn": metrics_at(ranked_ids, gold, ks),
                "session": session_metrics_from_turns(ranked_ids, gold, ks, session_of)}
    raise InputError(f"granularity must be 'session' or 'turn', not {granularity!r}")


def evaluate_rankings(questions: Iterable[Mapping], ks: Iterable[int] = KS) -> list[dict]:
    """Score many questions. Each mapping has question_id, question_type, granularity, ranked_ids and gold.

    Returns one record per question: {question_id, question_type, granularity, abstention, metrics}, where
    abstention is the official `'_abs' in question_id` test.
    """
    ks = tuple(ks)
    return [
        {
            "question_id": q["question_id"],
            "question_type": q.get("question_type", ""),
            "granularity": q["granularity"],
            "abstention": "_abs" in str(q["question_id"]),
            "metrics": question_metrics(q["ranked_ids"], q["gold"], q["granularity"], ks),
        }
        for q in questions
    ]


def _means(records: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for level in ("session", "turn"):
        rows = [r["metrics"][level] for r in records if level in r["metrics"]]
        if rows:
            out[level] = {name: sum(row[name] for row in rows) / len(rows) for name in rows[0]}
    return out


def aggregate(records: Iterable[dict]) -> dict:
    """Means over the non-abstention questions (official averaging), overall and per question_type.

    {'n_questions', 'n_scored', 'n_abstention', 'overall': {level: {metric: mean}},
     'by_type': {type: {'n': count, level: {metric: mean}}}}
    """
    records = list(records)
    scored = [r for r in records if not r["abstention"]]
    by_type: dict[str, dict] = {}
    for qtype in sorted({r["question_type"] for r in scored}):
        rows = [r for r in scored if r["question_type"] == qtype]
        by_type[qtype] = {"n": len(rows), **_means(rows)}
    return {
        "n_questions": len(records),
        "n_scored": len(scored),
        "n_abstention": len(records) - len(scored),
        "overall": _means(scored),
        "by_type": by_type,
    }
