"""`convmem bench locomo`: LoCoMo evidence retrieval at turn level, per official category, plus context recall
and speed.

Each conversation is one memory user (`sample_id`); every turn is a participant turn, so the official corpus and
the all-turns corpus are the same. A question's gold is its valid evidence dia_ids (`datasets.parse_evidence`);
questions without any valid evidence id are counted and reported, never scored. Rankings cover every turn of the
conversation (ids are dia_ids). `flat-bm25` ranks the same turn texts (as imported: a shared photo's caption is
appended to its turn) with rank_bm25's BM25Okapi over whitespace-split text, the LongMemEval baseline's rule.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from convmem.bench import flat_bm25
from convmem.bench.common import (CONTEXT_BUDGETS, answer_span, context_cell, context_summary, data_info, dedupe,
                                  embedder_rate, import_items, latency_sample, loadavg, percentiles, provenance,
                                  reextract_users, search_latency, write_jsonl)
from convmem.bench.datasets import LOCOMO_CATEGORIES, LocomoQuestion, load_locomo, locomo_questions
from convmem.bench.metrics import KS, metrics_at
from convmem.bench.retrievers import BenchRetriever

TENANT = "bench-locomo"


def item_groups(samples: Sequence[dict], source: str):
    from convmem.ingest import parse_sessions

    groups = []
    for sample in samples:
        sessions, _ = dedupe(parse_sessions([sample], "locomo", source=source))
        groups.append((str(sample["sample_id"]), sessions))
    return groups


def _means(rows: Sequence[dict]) -> dict[str, float]:
    return {m: float(np.mean([r["metrics"][m] for r in rows])) for m in rows[0]["metrics"]} if rows else {}


def aggregate_locomo(rows: Sequence[dict], counts: dict[str, Counter]) -> dict[str, Any]:
    """Means overall, over categories 1-4, and per official category name; with the unscored counts."""
    by_cat = {}
    for cat, name in LOCOMO_CATEGORIES.items():
        rs = [r for r in rows if r["category"] == cat]
        by_cat[name] = {"n_questions": counts["questions"][name], "n_scored": len(rs),
                        "n_no_valid_evidence": counts["no_valid_evidence"][name],
                        "n_missing_question": counts["missing_question"][name], **_means(rs)}
    non_adv = [r for r in rows if r["category"] != 5]
    return {
        "n_questions": sum(counts["questions"].values()),
        "n_scored": len(rows),
        "n_no_valid_evidence": sum(counts["no_valid_evidence"].values()),
        "n_missing_question": sum(counts["missing_question"].values()),
        "overall": _means(rows),
        "overall_categories_1_4": {"n": len(non_adv), **_means(non_adv)},
        "by_category": by_cat,
    }


def run_locomo(*, data: str, out: Path, retriever: BenchRetriever, db: str, limit: int | None = None,
               budgets: Sequence[int] = CONTEXT_BUDGETS, ks: Sequence[int] = KS, embed_sample: int = 1000,
               latency_repeats: int = 3, latency_queries: int | None = 300, log: Callable[[str], None] = print,
               command: str | None = None, facts_extractor: str | None = None,
               chat_model: str | None = None) -> dict[str, Any]:
    from convmem.api import Memory
    from convmem.context.assemble import assemble
    from convmem.retrieve.config import RetrievalConfig

    prov = provenance()
    samples = load_locomo(data, limit)
    info = data_info(data, len(samples), limit)
    n_q = sum(len(s["qa"]) for s in samples)
    log(f"locomo: {len(samples)} conversations, {n_q} questions from {data} (sha256 {info['sha256'][:12]}...)")
    config = retriever.config if retriever.is_memory else RetrievalConfig(dense=False)
    mem = Memory(db, tenant=TENANT, retriever=config)
    groups = item_groups(samples, str(data))
    speed: dict[str, Any] = {"import": import_items(mem, groups, db_path=db, tenant=TENANT,
                                                    progress=lambda n, t, i: log(f"  import {n}/{t} ({i})"))}
    log(f"  import: {speed['import']['seconds']:.1f} s ({speed['import']['figures_from']})")
    extraction = reextract_users(mem, [item for item, _ in groups], facts_extractor=facts_extractor,
                                 chat_model=chat_model, log=log) if facts_extractor else None
    all_texts = [t.text for _, ss in groups for s in ss for t in s.turns]
    speed["embedder_rate"] = embedder_rate(mem, all_texts, embed_sample)
    if speed["embedder_rate"]:
        rate = speed["embedder_rate"]["texts_per_second"]
        speed["ingest_vs_embedder"] = (speed["import"]["texts_embedded_per_second_overall"] or 0) / rate

    counts = {"questions": Counter(), "no_valid_evidence": Counter(), "missing_question": Counter()}
    quirks: Counter = Counter()
    invalid_parts: list[dict] = []
    rankings, rows, ctx_rows, per_q, lat_pool = [], [], [], [], []
    ranking_seconds = []
    t_questions = time.perf_counter()
    for sample in samples:
        user = str(sample["sample_id"])
        index = mem.index(user)
        session_of = {r.turn_id: r.session_id for r in index.rows}
        # LoCoMo gives no question date: the questions are asked after the last session
        now = max((r.session_start for r in index.rows), default=None)
        for qa_raw, q in zip(sample["qa"], locomo_questions(sample)):
            q: LocomoQuestion
            counts["questions"][q.category_name] += 1
            quirks["integer_answers"] += isinstance(qa_raw.get("answer"), int)
            quirks["without_answer_field"] += "answer" not in qa_raw
            if q.invalid_evidence:
                quirks["with_invalid_evidence_parts"] += 1
                invalid_parts.append({"question_id": q.qid, "raw": q.raw_evidence, "dropped": q.invalid_evidence})
            if not q.raw_evidence:
                quirks["empty_evidence"] += 1
            if not q.question.strip():
                quirks["missing_question"] += 1
                counts["missing_question"][q.category_name] += 1
                per_q.append({"question_id": q.qid, "category": q.category, "skipped": "no question text"})
                continue
            t0 = time.perf_counter()
            qvec = mem.embed_query(q.question) if retriever.is_memory else None
            if retriever.is_memory:
                hits = mem.search(q.question, user=user, k=max(1, len(index.rows)), granularity="turn",
                                  query_vector=qvec, now=now)
                ranked = [h.turn_id for h in hits]
                order = None
            else:
                order = flat_bm25.rank_docs(q.question, [r.text for r in index.rows], retriever.name)
                ranked = [index.rows[i].turn_id for i in order]
            ranking_seconds.append(time.perf_counter() - t0)
            lat_pool.append((user, q.question))
            rankings.append({"question_id": q.qid, "granularity": "turn", "ranked_ids": ranked})
            row: dict[str, Any] = {"question_id": q.qid, "category": q.category, "evidence": q.evidence}
            if not q.has_valid_evidence:
                counts["no_valid_evidence"][q.category_name] += 1
                row["scored"] = False
                per_q.append(row)
                continue
            evidence = set(q.evidence)
            metrics = metrics_at(ranked, evidence, ks)
            rows.append({"question_id": q.qid, "category": q.category, "metrics": metrics})
            ev_sessions = {session_of[e] for e in evidence if e in session_of}
            cells = {}
            by_id = {r.turn_id: r.text for r in index.rows}
            answer = answer_span(q.answer, [by_id[e] for e in evidence if e in by_id])
            for b in budgets:
                if retriever.is_memory:
                    ctx = mem.context(q.question, user=user, budget_tokens=b, query_vector=qvec, now=now)
                else:
                    ctx = assemble(index, order, query=q.question, budget_tokens=b, counter=mem.token_counter)
                cells[b] = context_cell(ctx.citations, ctx.tokens, evidence, ev_sessions, ctx.text, answer)
            ctx_rows.append({"question_id": q.qid, "category": q.category, "budget": cells})
            row.update({"scored": True, "metrics": metrics, "context": {str(b): c for b, c in cells.items()}})
            per_q.append(row)
        log(f"  ranked {user}")
    question_seconds = time.perf_counter() - t_questions

    ctx = context_summary(ctx_rows, budgets)
    ctx["by_category"] = {name: context_summary([r for r in ctx_rows if r["category"] == cat], budgets)
                          for cat, name in LOCOMO_CATEGORIES.items()}
    ctx["tokenizer"] = mem.token_counter.name
    ctx["assembler"] = "Memory.context" if retriever.is_memory else \
        "convmem.context.assemble over the flat-bm25 ranking"
    if retriever.is_memory:
        speed["search"] = search_latency(mem, latency_sample(lat_pool, latency_queries), repeats=latency_repeats)
    else:
        speed["search"] = {"what": "flat_bm25.rank_docs: builds BM25Okapi over the conversation for every query",
                           "per_question": percentiles(ranking_seconds)}
    speed["ranking_per_question"] = percentiles(ranking_seconds)
    speed["questions_seconds"] = question_seconds
    prov["loadavg_end"] = loadavg()

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "rankings.jsonl", rankings)
    write_jsonl(out / "questions.jsonl", per_q)
    official = aggregate_locomo(rows, counts)
    extra = {"fact_extraction": extraction} if extraction else {}
    return {
        "benchmark": "locomo",
        "command": command,
        "config": {"retriever": retriever.to_dict(), "granularities": ["turn"], "ks": list(ks),
                   "budgets": list(budgets), "limit": limit, "db": db, "tenant": TENANT,
                   "embedder": speed["import"]["embedder"], "embed_sample": embed_sample,
                   "latency_repeats": latency_repeats, "latency_queries": latency_queries,
                   "corpus": "every turn of the conversation (LoCoMo has no user/assistant split)"},
        "data": {**info, "n_questions": n_q, "quirks": {**dict(quirks), "invalid_evidence": invalid_parts}},
        "provenance": prov,
        "official": {"turn": official},
        "extensions": {
            "all_turns": {"note": "identical to the official figures: every LoCoMo turn is already in the corpus"},
            "context": ctx,
        },
        "speed": speed,
        **extra,
    }
