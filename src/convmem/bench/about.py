"""`convmem bench about`: per-speaker views on LoCoMo. For every question that names one of the conversation's two
speakers, evidence recall at k with and without `about=<that speaker>` (`Memory.search(..., about=)`), and the
alternatives that were measured to choose the rule: keeping only the turns about the speaker (a filter), and
other boost factors. Gold and recall are the harness's (`datasets.parse_evidence`, `metrics.metrics_at`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convmem.bench.common import data_info, provenance, write_jsonl
from convmem.bench.datasets import LOCOMO_CATEGORIES
from convmem.bench.metrics import metrics_at
from convmem.retrieve.about import ABOUT_BOOST, about_mask, boost_about
from convmem.retrieve.abstain import named_speakers

BOOSTS = (0.25, 0.5, 1.0, 2.0)
METRICS = ("recall_all@5", "recall_all@10", "recall_any@10", "ndcg_any@10")


def run(*, data: str, out: Path, db: str, limit: int | None = None, log: Callable[[str], None] = print,
        command: str | None = None) -> dict[str, Any]:
    from convmem.api import Memory
    from convmem.bench.datasets import load_locomo
    from convmem.bench.locomo import TENANT, item_groups
    from convmem.bench.qa import locomo_items
    from convmem.bench.datasets import locomo_questions

    t0 = time.perf_counter()
    samples = load_locomo(data, limit)
    mem = Memory(db, tenant=TENANT)
    groups = dict(item_groups(samples, str(data)))
    evidence = {q.qid: q.evidence for s in samples for q in locomo_questions(s)}
    rows = []
    variants = ["without", "about", "filter"] + [f"boost {b}" for b in BOOSTS]
    for user, sessions in groups.items():
        mem.add_sessions(sessions)  # idempotent
    for item in locomo_items(samples):
        gold = set(evidence[item.qid])
        if not gold:
            continue
        index = mem.index(item.user)
        named = named_speakers(index, item.question)
        if len(named) != 1:
            continue
        name = index.speakers[named[0]]
        qvec = mem.embed_query(item.question)
        ranked = {
            "without": [h.turn_id for h in mem.search(item.question, user=item.user, k=len(index.rows),
                                                      query_vector=qvec, now=item.now)],
            "about": [h.turn_id for h in mem.search(item.question, user=item.user, k=len(index.rows),
                                                    query_vector=qvec, now=item.now, about=name)],
        }
        _, scores = mem.scores(item.question, user=item.user, query_vector=qvec, now=item.now)
        mask = about_mask(index, name)
        order = np.argsort(-np.where(mask, scores, -np.inf), kind="stable")[: int(mask.sum())]
        ranked["filter"] = [index.rows[i].turn_id for i in order]
        for b in BOOSTS:
            ranked[f"boost {b}"] = [index.rows[i].turn_id for i in np.argsort(-boost_about(scores, mask, b),
                                                                              kind="stable")]
        rows.append({"question_id": item.qid, "category": item.category, "about": name,
                     "turns_about": int(mask.sum()), "turns": len(index.rows),
                     "metrics": {v: {m: metrics_at(r, gold, (5, 10))[m] for m in METRICS}
                                 for v, r in ranked.items()}})
    log(f"about: {len(rows)} LoCoMo questions name exactly one speaker")

    def means(rs):
        return {v: {m: float(np.mean([r["metrics"][v][m] for r in rs])) for m in METRICS} for v in variants} \
            if rs else {}

    results = {"benchmark": "locomo", "command": command, "data": data_info(data, len(samples), limit), "db": db,
               "about_boost": ABOUT_BOOST, "n": len(rows), "overall": means(rows),
               "categories_1_4": {"n": len(rs := [r for r in rows if r["category"] != 5]), **means(rs)},
               "by_category": {name: {"n": len(rs), **means(rs)} for cat, name in LOCOMO_CATEGORIES.items()
                               if (rs := [r for r in rows if r["category"] == cat])},
               "mean_share_of_turns_about": float(np.mean([r["turns_about"] / r["turns"] for r in rows]))
               if rows else None,
               "seconds": time.perf_counter() - t0, "provenance": provenance()}
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "questions.jsonl", rows)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.md").write_text(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"# Per-speaker views: LoCoMo questions naming one speaker ({results['n']})", "",
             f"`{results.get('command') or ''}`", "",
             f"`about` = boost x{1 + results['about_boost']:g}; turns about the speaker: "
             f"{results['mean_share_of_turns_about'] or 0:.2f} of a conversation on average.", "",
             "| ranking | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for variant, m in results["overall"].items():
        lines.append(f"| {variant} | " + " | ".join(f"{m[k]:.4f}" for k in METRICS) + " |")
    c = results["categories_1_4"]
    lines += ["", f"Categories 1-4 only ({c['n']} questions: the named speaker is the right one; in category 5 the "
                  "question attributes the event to the wrong speaker):", "",
              "| ranking | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for variant in results["overall"]:
        lines.append(f"| {variant} | " + " | ".join(f"{c[variant][k]:.4f}" for k in METRICS) + " |")
    lines += ["", "recall_all@10 by category:", "", "| category | n | without | about | filter |", "|---|---|---|---|---|"]
    for name, c in results["by_category"].items():
        lines.append(f"| {name} | {c['n']} | {c['without']['recall_all@10']:.4f} | {c['about']['recall_all@10']:.4f} "
                     f"| {c['filter']['recall_all@10']:.4f} |")
    return "\n".join(lines) + "\n"
