"""`convmem bench longmemeval`: LongMemEval retrieval scored with the official protocol, our extensions, speed.

How a `Memory` retriever is evaluated in the official scheme
-------------------------------------------------------------
The official protocol's corpus holds USER turns only. Each question is therefore imported twice into the
memory: user `<question_id>` with every turn (what convmem really keeps: used for the all-turns extension, the
context-budget figures and latency) and user `<question_id>#user-turns` with the user turns only (the protocol's
corpus). Official rankings come from `Memory.search` over the user-turns user:
- session level: `granularity="session"` (a session's score is the retriever's aggregate of its turns' scores),
  each session id mapped to the official id (`answer` -> `noans` when no user turn has has_answer, as
  `datasets.lme_corpus` renames it);
- turn level: `granularity="turn"`, turn ids `<session_id>_<i+1>` (i over all the session's turns) renamed as
  the protocol does.
Rankings cover the whole haystack: a session id that occurs twice in a haystack (same content, different dates:
5 questions of LongMemEval_S dev) is stored once, and its second copy is ranked right after the first (a
retriever scoring both copies gives them equal scores); corpus ids the memory holds nothing for (sessions without
user turns) are appended at the end in haystack order. Both cases are counted in results.json.

`flat-bm25` is the paper's baseline (`flat_bm25.rank`), computed from the data file as the authors do.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from convmem.bench import flat_bm25
from convmem.bench.common import (CONTEXT_BUDGETS, answer_span, context_cell, context_summary, data_info, dedupe,
                                  embedder_rate, import_items, latency_sample, loadavg, percentiles, provenance,
                                  reextract_users, search_latency, user_only_copy, write_jsonl)
from convmem.bench.datasets import (lme_all_turn_evidence, lme_corpus, lme_gold, lme_is_abstention,
                                    lme_question_time, lme_session_of, lme_update_sessions, load_longmemeval)
from convmem.bench.metrics import KS, aggregate, evaluate_rankings, metrics_at
from convmem.bench.retrievers import BenchRetriever
from convmem.models import Session

TENANT = "bench-longmemeval"
USER_TURNS_SUFFIX = "#user-turns"


def protocol_user(question_id: str) -> str:
    return f"{question_id}{USER_TURNS_SUFFIX}"


def item_groups(items: Sequence[Mapping], source: str) -> tuple[list[tuple[str, list[Session]]], dict[str, int]]:
    """Per question: its sessions (all turns, user = question_id) then their user-turns-only copies."""
    from convmem.ingest import parse_sessions

    groups = []
    dropped = 0
    for item in items:
        qid = str(item["question_id"])
        sessions, n_dup = dedupe(parse_sessions([item], "longmemeval", source=source))
        dropped += n_dup
        copies = [c for s in sessions if (c := user_only_copy(s, protocol_user(qid))) is not None]
        groups.append((qid, sessions + copies))
    return groups, {"duplicate_sessions_stored_once": dropped}


# --------------------------------------------------------------------------------------------- official ids


def raw_ids(item: Mapping, granularity: str) -> list[str]:
    """The ids convmem stores for the official corpus entries, in `lme_corpus` order (session ids, or
    `<session_id>_<i+1>` for user turns)."""
    out = []
    for sid, session in zip(item["haystack_session_ids"], item["haystack_sessions"]):
        if granularity == "session":
            out.append(str(sid))
        else:
            out.extend(f"{sid}_{i + 1}" for i, t in enumerate(session) if t.get("role") == "user")
    return out


def official_ranking(ranked_raw: Sequence[str], item: Mapping, granularity: str) -> tuple[list[str], dict[str, int]]:
    """Map a memory ranking (raw ids, best first) to the official ids, over the whole official corpus."""
    corpus_ids = [doc_id for doc_id, _ in lme_corpus(item, granularity)]
    raws = raw_ids(item, granularity)
    assert len(raws) == len(corpus_ids)
    to_official = dict(zip(raws, corpus_ids))
    counts = Counter(corpus_ids)
    placed: Counter = Counter()
    out: list[str] = []
    stats = {"duplicates_placed": 0, "appended": 0, "ignored": 0}
    for raw in ranked_raw:
        doc = to_official.get(raw)
        if doc is None or placed[doc] >= counts[doc]:
            stats["ignored"] += 1
            continue
        extra = counts[doc] - 1
        out.extend([doc] * counts[doc])
        placed[doc] = counts[doc]
        stats["duplicates_placed"] += extra
    for doc in corpus_ids:
        if placed[doc] < counts[doc]:
            out.append(doc)
            placed[doc] += 1
            stats["appended"] += 1
    return out, stats


# --------------------------------------------------------------------------------------------- the run


def _quirks(items: Sequence[Mapping]) -> dict[str, Any]:
    dup = no_user = empty = int_answers = 0
    for it in items:
        ids = [str(s) for s in it["haystack_session_ids"]]
        dup += len(ids) - len(set(ids))
        for session in it["haystack_sessions"]:
            no_user += not any(t.get("role") == "user" for t in session)
            empty += sum(1 for t in session if not str(t.get("content", "")).strip())
        int_answers += isinstance(it.get("answer"), int)
    scored = [it for it in items if not lme_is_abstention(it)]
    return {
        "abstention_questions": len(items) - len(scored),
        "duplicate_session_ids_in_haystacks": dup,
        "sessions_without_user_turns": no_user,
        "empty_turns": empty,
        "integer_answers": int_answers,
        "scored_without_official_session_gold": sum(1 for it in scored if not lme_gold(it, "session")),
        "scored_without_official_turn_gold": sum(1 for it in scored if not lme_gold(it, "turn")),
        "scored_without_any_has_answer_turn": sum(1 for it in scored if not lme_all_turn_evidence(it)),
    }


def _aggregate_plain(rows: Sequence[dict], key: str = "question_type") -> dict[str, Any]:
    """Means of per-question metric dicts, overall and per `key`."""
    def mean(rs):
        return {m: float(np.mean([r["metrics"][m] for r in rs])) for m in rs[0]["metrics"]} if rs else {}
    by = {}
    for value in sorted({r[key] for r in rows}):
        rs = [r for r in rows if r[key] == value]
        by[value] = {"n": len(rs), **mean(rs)}
    return {"n": len(rows), "overall": mean(rows), "by_type": by}


def latest_first(ranked_sessions: Sequence[str], updates: Sequence[str]) -> bool:
    """Whether the first of the `updates` sessions (oldest -> latest) to appear in the ranking is the latest."""
    wanted = set(updates)
    return next((s for s in ranked_sessions if s in wanted), None) == updates[-1]


def update_summary(rows: Sequence[dict], granularities: Sequence[str], budgets: Sequence[int]) -> dict[str, Any]:
    """Knowledge updates (extension): of the knowledge-update questions with gold sessions on two or more dates,
    the share whose latest evidence session comes before the older ones in each ranking, and the share whose
    context cites the latest one at each budget."""
    def share(values: list[bool]) -> float | None:
        return sum(values) / len(values) if values else None
    return {"n": len(rows),
            "latest_first": {g: share([r[g] for r in rows]) for g in granularities},
            "latest_cited": {str(b): share([r["latest_cited"][str(b)] for r in rows if str(b) in r["latest_cited"]])
                             for b in budgets}}


def run_longmemeval(*, data: str, out: Path, retriever: BenchRetriever, db: str, limit: int | None = None,
                    granularities: Sequence[str] = ("session", "turn"), budgets: Sequence[int] = CONTEXT_BUDGETS,
                     ks: Sequence[int] = KS, embed_sample: int = 1000, latency_repeats: int = 3,
                    latency_queries: int | None = 300, log: Callable[[str], None] = print,
                    command: str | None = None, facts_extractor: str | None = None,
                    chat_model: str | None = None) -> dict[str, Any]:
    """Run the benchmark; write rankings.jsonl, rankings_all_turns.jsonl, questions.jsonl and return results."""
    from convmem.api import Memory
    from convmem.context.assemble import assemble
    from convmem.retrieve.config import RetrievalConfig

    prov = provenance()
    items = load_longmemeval(data, limit)
    info = data_info(data, len(items), limit)
    log(f"longmemeval: {len(items)} questions from {data} (sha256 {info['sha256'][:12]}...)")
    config = retriever.config if retriever.is_memory else RetrievalConfig(dense=False)
    mem = Memory(db, tenant=TENANT, retriever=config)
    groups, import_quirks = item_groups(items, str(data))

    def progress(n: int, total: int, item_id: str) -> None:
        if n == total or n % max(1, total // 20) == 0:
            log(f"  import {n}/{total} questions")

    speed: dict[str, Any] = {"import": import_items(mem, groups, db_path=db, tenant=TENANT, progress=progress)}
    log(f"  import: {speed['import']['seconds']:.1f} s ({speed['import']['figures_from']})")
    users = list(dict.fromkeys(s.user for _, ss in groups for s in ss))  # both users of each question
    extraction = reextract_users(mem, users, facts_extractor=facts_extractor, chat_model=chat_model,
                                 log=log) if facts_extractor else None
    all_texts = [t.text for _, ss in groups for s in ss if not s.user.endswith(USER_TURNS_SUFFIX) for t in s.turns]
    speed["embedder_rate"] = embedder_rate(mem, all_texts, embed_sample)
    if speed["embedder_rate"]:
        imp = speed["import"]
        rate = speed["embedder_rate"]["texts_per_second"]
        speed["ingest_vs_embedder"] = (imp["texts_embedded_per_second_overall"] or 0) / rate if rate else None

    rankings: list[dict] = []
    all_turn_rankings: list[dict] = []
    records_in: dict[str, list[dict]] = {g: [] for g in granularities}
    ext_rows: list[dict] = []
    ctx_rows: list[dict] = []
    per_q: list[dict] = []
    fixups: Counter = Counter()
    ranking_seconds: list[float] = []
    no_evidence = 0
    update_rows: list[dict[str, Any]] = []
    t_questions = time.perf_counter()
    for n, item in enumerate(items, 1):
        qid, question, qtype = str(item["question_id"]), str(item["question"]), str(item["question_type"])
        abstention = lme_is_abstention(item)
        t0 = time.perf_counter()
        qvec = mem.embed_query(question) if retriever.is_memory else None
        now = lme_question_time(item)
        ranked: dict[str, list[str]] = {}
        for g in granularities:
            if retriever.is_memory:
                user = protocol_user(qid)
                size = max(1, len(mem.index(user).rows))
                hits = mem.search(question, user=user, k=size, granularity=g, query_vector=qvec, now=now)
                ids = [h.session_id if g == "session" else h.turn_id for h in hits]
                ranked[g], stats = official_ranking(ids, item, g)
                fixups.update({f"{g}_{k}": v for k, v in stats.items()})
            else:
                ranked[g] = flat_bm25.rank(item, g, retriever.name)
        # all turns (extension): the memory's ranking of every turn of the question's history
        index = mem.index(qid)
        if retriever.is_memory:
            hits = mem.search(question, user=qid, k=max(1, len(index.rows)), granularity="turn", query_vector=qvec,
                              now=now)
            all_ranked = [h.turn_id for h in hits]
            order = None
        else:
            order = flat_bm25.rank_docs(question, [r.text for r in index.rows], retriever.name)
            all_ranked = [index.rows[i].turn_id for i in order]
        ranking_seconds.append(time.perf_counter() - t0)
        for g in granularities:
            rankings.append({"question_id": qid, "granularity": g, "ranked_ids": ranked[g]})
            records_in[g].append({"question_id": qid, "question_type": qtype, "granularity": g,
                                  "ranked_ids": ranked[g], "gold": lme_gold(item, g)})
        all_turn_rankings.append({"question_id": qid, "granularity": "turn", "ranked_ids": all_ranked})
        updates = lme_update_sessions(item)
        if updates:
            update_rows.append({"question_id": qid, **{g: latest_first(
                ranked[g] if g == "session" else [lme_session_of(t) for t in ranked[g]], updates)
                for g in granularities}, "latest_cited": {}})
        evidence = lme_all_turn_evidence(item)
        row: dict[str, Any] = {"question_id": qid, "question_type": qtype, "abstention": abstention,
                               "evidence_turns": sorted(evidence)}
        if not abstention and evidence:
            ext_rows.append({"question_id": qid, "question_type": qtype,
                             "metrics": metrics_at(all_ranked, evidence, ks)})
            ev_sessions = {index.rows[i].session_id for i in range(len(index.rows))
                           if index.rows[i].turn_id in evidence}
            answer = answer_span(item.get("answer"), [r.text for r in index.rows if r.turn_id in evidence])
            cells = {}
            for b in budgets:
                if retriever.is_memory:
                    ctx = mem.context(question, user=qid, budget_tokens=b, query_vector=qvec, now=now)
                else:
                    ctx = assemble(index, order, query=question, budget_tokens=b, counter=mem.token_counter)
                cells[b] = context_cell(ctx.citations, ctx.tokens, evidence, ev_sessions, ctx.text, answer)
                if updates:
                    update_rows[-1]["latest_cited"][str(b)] = updates[-1] in {c.session_id for c in ctx.citations}
            ctx_rows.append({"question_id": qid, "question_type": qtype, "budget": cells})
            row["context"] = {str(b): c for b, c in cells.items()}
        elif not abstention:
            no_evidence += 1
        per_q.append(row)
        if n % max(1, len(items) // 10) == 0 or n == len(items):
            log(f"  ranked {n}/{len(items)} questions")
    question_seconds = time.perf_counter() - t_questions

    official = {g: aggregate(evaluate_rankings(records_in[g], ks)) for g in granularities}
    per_question_official = {g: {r["question_id"]: r["metrics"] for r in evaluate_rankings(records_in[g], ks)}
                             for g in granularities}
    for row in per_q:
        row["official"] = {g: per_question_official[g][row["question_id"]] for g in granularities}
    ctx = context_summary(ctx_rows, budgets)
    ctx["by_type"] = {t: context_summary([r for r in ctx_rows if r["question_type"] == t], budgets)
                      for t in sorted({r["question_type"] for r in ctx_rows})}
    ctx["tokenizer"] = mem.token_counter.name
    ctx["assembler"] = "Memory.context" if retriever.is_memory else \
        "convmem.context.assemble over the flat-bm25 ranking of all turns"

    if retriever.is_memory:
        pool = [(str(it["question_id"]), str(it["question"])) for it in items]
        speed["search"] = search_latency(mem, latency_sample(pool, latency_queries), repeats=latency_repeats)
    else:
        speed["search"] = {"what": "flat_bm25.rank: builds BM25Okapi over the question's corpus for every query",
                           "per_question_all_rankings": percentiles(ranking_seconds)}
    speed["ranking_all_granularities_per_question"] = percentiles(ranking_seconds)
    speed["questions_seconds"] = question_seconds
    prov["loadavg_end"] = loadavg()

    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "rankings.jsonl", rankings)
    write_jsonl(out / "rankings_all_turns.jsonl", all_turn_rankings)
    write_jsonl(out / "questions.jsonl", per_q)
    extra = {"fact_extraction": extraction} if extraction else {}
    return {
        "benchmark": "longmemeval",
        "command": command,
        "config": {"retriever": retriever.to_dict(), "granularities": list(granularities), "ks": list(ks),
                   "budgets": list(budgets), "limit": limit, "db": db, "tenant": TENANT,
                   "embedder": speed["import"]["embedder"], "embed_sample": embed_sample,
                   "latency_repeats": latency_repeats, "latency_queries": latency_queries,
                   "corpus": "official: user turns only (user '<question_id>#user-turns'); extensions: all turns"},
        "data": {**info, "quirks": {**_quirks(items), **import_quirks}},
        "provenance": prov,
        "official": official,
        "ranking_fixups": dict(fixups),
        "extensions": {
            "all_turns": {"evidence": "turns with has_answer, user and assistant", "n_scored": len(ext_rows),
                          "n_scored_questions_without_evidence": no_evidence,
                          **_aggregate_plain(ext_rows)},
            "context": ctx,
            "updates": update_summary(update_rows, granularities, budgets),
        },
        "speed": speed,
        **extra,
    }
