"""The load of `convmem bench scale` and its timings: the stand-in embedder, the ingest writers, the real model's
rates on samples, and the search workloads (cold, warm, realistic mixes, N client processes). Each function takes
a store location and its parameters and returns plain measurements; `convmem.bench.scale` runs them and writes
the report.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
import zlib
from typing import Any, Sequence

import click
import numpy as np

from convmem.bench.synth import SynthGenerator, turns_for_user
from convmem.providers.embedders import Embedder


# --------------------------------------------------------------------------------------------------------------
# the stand-in embedder
# --------------------------------------------------------------------------------------------------------------
class HashEmbedder(Embedder):
    """Deterministic, model-free vectors: the normalised sum of one pseudo-random vector per lower-cased token.
    Texts sharing words get similar vectors, so dense scores are not pure noise; costs microseconds a text."""

    def __init__(self, dim: int = 384):
        self.dim = dim
        self.name = f"synthetic-hash-{dim}"
        self._tokens: dict[str, np.ndarray] = {}

    def _token(self, token: str) -> np.ndarray:
        vec = self._tokens.get(token)
        if vec is None:
            vec = np.random.default_rng(zlib.crc32(token.encode())).standard_normal(self.dim).astype(np.float32)
            self._tokens[token] = vec
        return vec

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in text.lower().split():
                out[i] += self._token(tok.strip(".,!?;:'\""))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
def _log(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if len(values) else None


def _summary(latencies_s: Sequence[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies_s]
    return {"n": len(ms), "p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95), "p99_ms": _pct(ms, 99),
            "mean_ms": statistics.fmean(ms) if ms else None, "max_ms": max(ms) if ms else None}


def _open_memory(db: str, *, dense: bool, capacity: int):
    from convmem.api import Memory
    from convmem.retrieve.config import get_retriever

    mem = Memory(db, embedder=HashEmbedder(), retriever=get_retriever("convmem", dense=dense))
    mem.indexes.capacity = capacity
    return mem


def index_bytes(index) -> int:
    """Approximate memory held by one cached user index."""
    import sys

    m = index.lexical.matrix
    total = index.vectors.nbytes + m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    total += index.session_index.nbytes + index.timestamps.nbytes + index.speaker_index.nbytes
    total += sys.getsizeof(index.lexical.vocab) + sum(sys.getsizeof(k) for k in index.lexical.vocab)
    total += sys.getsizeof(index.rows)
    seen: set[int] = set()
    for r in index.rows:
        total += sys.getsizeof(r)
        for value in (r.session_id, r.turn_id, r.speaker, r.role, r.text, r.text_hash, r.timestamp,
                      r.session_start, r.metadata):
            if id(value) not in seen:
                seen.add(id(value))
                total += sys.getsizeof(value)
    return total


# --------------------------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------------------------
def _ingest_users(db: str, seed: int, users: Sequence[int], n_users: int, n_turns: int, embed: bool,
                  batch_users: int = 20) -> dict[str, Any]:
    """Write the given users' sessions without embedding; then (embed) their stand-in vectors. Times only the
    store calls, not the generation."""
    from convmem.index.user_index import embed_missing
    from convmem.store.base import text_hash

    gen = SynthGenerator(seed)
    mem = _open_memory(db, dense=False, capacity=1)
    out = {"turns": 0, "sessions": 0, "texts": 0, "unique_texts": 0, "generate_s": 0.0, "write_s": 0.0,
           "vectors_s": 0.0, "vectors_written": 0}
    embedder = HashEmbedder()
    for start in range(0, len(users), batch_users):
        t0 = time.perf_counter()
        sessions = [s for u in users[start:start + batch_users]
                    for s in gen.user_sessions(u, turns_for_user(u, n_users, n_turns))]
        t1 = time.perf_counter()
        report = mem.add_sessions(sessions)
        t2 = time.perf_counter()
        out["generate_s"] += t1 - t0
        out["write_s"] += t2 - t1
        out["turns"] += report.turns_written
        out["sessions"] += report.sessions_added + report.sessions_replaced
        if embed:  # the vector half of ingest, through the same path as Memory.add_sessions
            texts = {text_hash(t.text): t.text for s in sessions for t in s.turns}
            t3 = time.perf_counter()
            have = mem.store.get_embeddings(mem.tenant, embedder.name, texts.keys())
            # in hash order: concurrent writers of overlapping texts then lock the same keys in the same order
            # (PostgresStore.put_embeddings inserts in the order given; unordered, parallel writers can deadlock)
            missing = {h: texts[h] for h in sorted(texts) if h not in have}
            embed_missing(mem.store, mem.tenant, embedder, missing)
            out["vectors_s"] += time.perf_counter() - t3
            out["vectors_written"] += len(missing)
        out["texts"] += sum(len(s.turns) for s in sessions)
    mem.close()
    return out


def _ingest_worker(args) -> dict[str, Any]:
    return _ingest_users(*args)


def ingest(db: str, seed: int, n_users: int, n_turns: int, embed: bool, workers: int) -> dict[str, Any]:
    users = list(range(n_users))
    t0 = time.perf_counter()
    if workers <= 1:
        parts = [_ingest_users(db, seed, users, n_users, n_turns, embed)]
    else:
        chunks = [users[i::workers] for i in range(workers)]
        with _mp().Pool(workers) as pool:
            parts = pool.map(_ingest_worker, [(db, seed, c, n_users, n_turns, embed) for c in chunks])
    wall = time.perf_counter() - t0
    total = {k: sum(p[k] for p in parts) for k in parts[0]}
    turns = total["turns"]
    res = {
        "workers": workers, "turns": turns, "sessions": total["sessions"], "wall_s": wall,
        "generate_s": total["generate_s"], "write_s": total["write_s"], "vectors_s": total["vectors_s"],
        "vectors_written": total["vectors_written"],
        # rate of the store writes alone (no embedding), per worker-second summed; and as seen on the wall clock
        "turns_per_s_no_embed": turns / (total["write_s"] / workers) if total["write_s"] else None,
    }
    if embed:
        res["turns_per_s_with_standin_vectors"] = turns / ((total["write_s"] + total["vectors_s"]) / workers)
    return res


def real_model_rates(backend: str, db_factory, seed: int, sample_turns: int, sample_texts: int,
                     n_users: int, n_turns: int) -> dict[str, Any]:
    """The default model (MiniLM): texts/s, one-query latency, and end-to-end ingest into a scratch store."""
    from convmem.api import Memory
    from convmem.providers.embedders import load_embedder

    try:
        model = load_embedder(None)
    except Exception as exc:  # noqa: BLE001 - reported, the rest of the benchmark does not need it
        return {"available": False, "error": str(exc)}
    gen = SynthGenerator(seed + 1)
    texts = list(dict.fromkeys(t.text for s in gen.user_sessions(0, 3 * sample_texts) for t in s.turns))
    texts = texts[:sample_texts]
    model.embed_batch(texts[:32])  # warm-up
    t0 = time.perf_counter()
    model.embed_batch(texts)
    texts_per_s = len(texts) / (time.perf_counter() - t0)
    q = []
    for question in ["Where does Ana live?", "What car does Ben drive?", "What is Carla's favourite food?",
                     "Which company does Dev work for?", "On which day does Elif go to the gym?"] * 6:
        t = time.perf_counter()
        model.embed(question)
        q.append(time.perf_counter() - t)
    out = {"available": True, "model": model.name, "texts_per_s": texts_per_s, "sample_texts": len(texts),
           "query_embed": _summary(q)}
    # end-to-end: Memory.add_sessions with the real model into an empty scratch store (nothing cached)
    db, cleanup = db_factory()
    try:
        mem = Memory(db, embedder=model)
        sessions, n = [], 0
        u = 0
        while n < sample_turns:
            for s in gen.user_sessions(u, turns_for_user(u, n_users, n_turns)):
                sessions.append(s)
                n += len(s.turns)
                if n >= sample_turns:
                    break
            u += 1
        report = mem.add_sessions(sessions)
        out["ingest_sample"] = {"turns": report.turns_written, "texts_embedded": report.texts_embedded,
                                "seconds": report.seconds, "embed_seconds": report.embed_seconds,
                                "turns_per_s": report.turns_written / report.seconds}
        mem.close()
    finally:
        cleanup()
    return out


# --------------------------------------------------------------------------------------------------------------
# search
# --------------------------------------------------------------------------------------------------------------
def make_queries(seed: int, n_users: int, n_turns: int, users: Sequence[int], per_user: int) -> list[dict]:
    gen = SynthGenerator(seed)
    emb = HashEmbedder()
    out = []
    for u in users:
        for q in gen.user_questions(u, turns_for_user(u, n_users, n_turns), per_user):
            out.append({"user": q.user, "query": q.query, "answer": q.answer})
    vecs = emb.embed_batch([q["query"] for q in out]) if out else []
    for q, v in zip(out, vecs):
        q["vector"] = v
    return out


def _timed_search(mem, q: dict, dense: bool) -> tuple[float, bool]:
    t = time.perf_counter()
    hits = mem.search(q["query"], user=q["user"], k=10, query_vector=q["vector"] if dense else None)
    dt = time.perf_counter() - t
    return dt, any(q["answer"] in h.text for h in hits)


def _client(db: str, dense: bool, capacity: int, warm: list[dict], queries: list[dict], duration: float,
            start_event, ready, results) -> None:
    """One client process: open the store, warm its cache on `warm` queries, wait for the start, then run its
    queries (cycling) for `duration` seconds and send back the latencies."""
    mem = _open_memory(db, dense=dense, capacity=capacity)
    for q in warm:
        mem.search(q["query"], user=q["user"], k=10, query_vector=q["vector"] if dense else None)
    ready.put(os.getpid())
    start_event.wait()
    lat, i, t_end = [], 0, time.perf_counter() + duration
    while time.perf_counter() < t_end:
        dt, _ = _timed_search(mem, queries[i % len(queries)], dense)
        lat.append(dt)
        i += 1
    mem.close()
    results.put(lat)


def _mp():
    # fork: the clients start in milliseconds (the parent holds no open store at that point); spawn elsewhere
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def run_clients(db: str, dense: bool, capacity: int, clients: int, warm: list[dict], per_client: list[list[dict]],
                duration: float) -> dict[str, Any]:
    """`clients` processes searching at once for `duration` seconds, after each warmed its own index cache."""
    ctx = _mp()
    start, ready, results = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(db, dense, capacity, warm, per_client[i % len(per_client)],
                                               duration, start, ready, results), daemon=True)
             for i in range(clients)]
    for p in procs:
        p.start()
    for _ in range(clients):
        ready.get(timeout=1800)
    t0 = time.perf_counter()
    start.set()
    lat_lists = [results.get(timeout=duration + 600) for _ in range(clients)]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=60)
    lat = [x for part in lat_lists for x in part]
    return {"clients": clients, "duration_s": wall, "queries": len(lat), "qps": len(lat) / wall, **_summary(lat)}


def search_bench(db: str, backend: str, seed: int, n_users: int, n_turns: int, dense: bool, n_queries: int,
                 clients: int, duration: float, capacity: int) -> dict[str, Any]:
    from convmem.index.user_index import build_user_index

    rng = np.random.default_rng(seed)
    res: dict[str, Any] = {"cache_capacity_users": capacity}
    mem = _open_memory(db, dense=dense, capacity=max(capacity, 1))

    # cold: the first query of users never queried in this process (index build included)
    cold_users = rng.choice(n_users, size=min(n_queries, n_users), replace=False).tolist()
    cold_q = make_queries(seed, n_users, n_turns, cold_users, 1)
    lat, hits = [], 0
    for q in cold_q:
        dt, ok = _timed_search(mem, q, dense)
        lat.append(dt)
        hits += ok
    res["cold"] = {**_summary(lat), "answer_in_top10": hits / max(len(cold_q), 1)}
    # where a cold query's time goes: store reads vs building the index in Python
    parts = {"user_turns_ms": [], "embeddings_ms": [], "build_total_ms": []}
    emb = HashEmbedder() if dense else None
    for u in cold_users[: min(30, len(cold_users))]:
        user = SynthGenerator.user_id(u)
        t0 = time.perf_counter()
        rows = mem.store.user_turns(mem.tenant, user)
        t1 = time.perf_counter()
        if dense:
            mem.store.get_embeddings(mem.tenant, emb.name, [r.text_hash for r in rows])
        t2 = time.perf_counter()
        build_user_index(mem.store, mem.tenant, user, emb, mem.retriever.date_keys, keys=mem.retriever.key_kinds())
        t3 = time.perf_counter()
        parts["user_turns_ms"].append((t1 - t0) * 1000)
        parts["embeddings_ms"].append((t2 - t1) * 1000)
        parts["build_total_ms"].append((t3 - t2) * 1000)
    res["cold_breakdown_p50"] = {k: _pct(v, 50) for k, v in parts.items()}

    # RAM of cached indexes: the size of the objects an index holds (numpy buffers, rows and their strings)
    warm_users = cold_users[: min(32, len(cold_users))]
    sizes, turns_cached = 0, 0
    for u in warm_users:
        index = mem.index(SynthGenerator.user_id(u))
        sizes += index_bytes(index)
        turns_cached += len(index.rows)
    res["index_ram"] = {"users": len(warm_users), "turns": turns_cached, "bytes": sizes,
                        "bytes_per_turn": sizes / max(turns_cached, 1),
                        "bytes_per_million_turns": sizes / max(turns_cached, 1) * 1e6,
                        "how": "sum of sys.getsizeof over the index's rows, strings, datetimes and dicts, plus numpy"
                               " and sparse buffers"}

    # warm: users whose index is cached
    warm_q = make_queries(seed, n_users, n_turns, warm_users, 5)
    lat, hits = [], 0
    for _ in range(max(1, n_queries // max(len(warm_q), 1))):
        for q in warm_q:
            dt, ok = _timed_search(mem, q, dense)
            lat.append(dt)
            hits += ok
    res["warm"] = {**_summary(lat), "answer_in_top10": hits / max(len(lat), 1)}

    # realistic mixes: each query's user drawn uniformly, or Zipf-skewed (a few users ask most), cache as given
    mem.indexes.drop(mem.tenant)
    mem.indexes.capacity = capacity
    for name, draw in (("uniform", lambda n: rng.integers(0, n_users, n)),
                       ("zipf", lambda n: (rng.zipf(1.2, n) - 1) % n_users)):
        users = draw(2 * n_queries).tolist()
        qs = make_queries(seed, n_users, n_turns, sorted(set(users)), 2)
        by_user: dict[str, list[dict]] = {}
        for q in qs:
            by_user.setdefault(q["user"], []).append(q)
        seq = [by_user[SynthGenerator.user_id(u)][i % 2] if len(by_user.get(SynthGenerator.user_id(u), [])) > 1
               else by_user[SynthGenerator.user_id(u)][0] for i, u in enumerate(users)
               if by_user.get(SynthGenerator.user_id(u))]
        half = len(seq) // 2
        for q in seq[:half]:  # steady state: the cache is filled by the first half
            _timed_search(mem, q, dense)
        lat = [_timed_search(mem, q, dense)[0] for q in seq[half:]]
        res[f"mixed_{name}"] = {**_summary(lat), "distinct_users": len(set(u for u in users))}
    mem.close()

    if clients < 1:
        return res
    # concurrency: 1 client vs N client processes, warm (cached users) and uniform mix (cache as given)
    conc: dict[str, Any] = {}
    per_client = [warm_q[i::4] or warm_q for i in range(4)]
    for n in (1, clients):
        conc[f"warm_{n}"] = run_clients(db, dense, max(capacity, len(warm_users)), n, warm_q, per_client, duration)
        _log(f"  warm, {n} client(s): {conc[f'warm_{n}']['qps']:.0f} q/s, p95 {conc[f'warm_{n}']['p95_ms']:.1f} ms")
    mix_users = rng.integers(0, n_users, 400).tolist()
    mix_q = make_queries(seed, n_users, n_turns, mix_users, 1)
    mix_parts = [mix_q[i::clients] for i in range(clients)]
    for n in (1, clients):
        conc[f"uniform_{n}"] = run_clients(db, dense, capacity, n, [], mix_parts if n > 1 else [mix_q], duration)
        _log(f"  uniform, {n} client(s): {conc[f'uniform_{n}']['qps']:.0f} q/s, "
             f"p95 {conc[f'uniform_{n}']['p95_ms']:.1f} ms")
    conc["speedup_warm"] = conc[f"warm_{clients}"]["qps"] / conc["warm_1"]["qps"]
    conc["speedup_uniform"] = conc[f"uniform_{clients}"]["qps"] / conc["uniform_1"]["qps"]
    res["concurrency"] = conc
    return res

