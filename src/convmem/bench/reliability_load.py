"""The load probes of `convmem bench reliability`: `convmem serve` started on a free local port, clients reading
and writing against it, and writer processes sharing one SQLite file. Each probe returns a dict of figures;
`convmem.bench.reliability` runs them with the crash probes and writes the report.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

#: words of the generated turns (the crash probes' sessions use them too): accents, CJK and an emoji included
WORDS = ("wedding Sintra beagle Biscuit viola cello Lisbon marathon peanuts allergy garden tomatoes piano "
         "Kyoto ramen sister brother promotion deadline café naïve 東京 🐕 Zürich São").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(db: str, *, extra: list[str] | None = None, startup_timeout: float = 120) -> Iterator[str]:
    """A real `convmem serve` process on 127.0.0.1 and a free port; yields its base URL."""
    import httpx

    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "convmem", "serve", "--db", db, "--port", str(port),
                             "--log-level", "warning", *(extra or [])], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + startup_timeout
        while True:
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"convmem serve did not start: {log.read().decode(errors='replace')[-3000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SEARCHES = ["wedding", "when is the wedding?", '"unbalanced', "AND OR NOT", "NEAR(a b)", "dog*", "-cat", "((()",
            "东京 café", "beagle OR viola", "*", ""]


def load_probe(url: str, *, clients: int = 16, seconds: float = 5.0, users: int = 4, write_share: float = 0.5,
               seed: int = 0) -> dict[str, Any]:
    """`clients` threads mixing POST /v1/sessions and /v1/search for `seconds`; then every acknowledged write is
    looked up. Errors are any non-2xx answer or transport failure."""
    import httpx

    lock = threading.Lock()
    latencies: dict[str, list[float]] = {"write": [], "search": []}
    acked: dict[tuple[str, str], int] = {}
    errors: list[str] = []
    stop = time.perf_counter() + seconds

    def client(c: int) -> None:
        rng = random.Random(seed * 1000 + c)
        with httpx.Client(base_url=url, timeout=60) as http:
            n = 0
            while time.perf_counter() < stop:
                user = f"load{rng.randrange(users)}"
                write = rng.random() < write_share
                if write:
                    sid = f"c{c}-{n}"
                    turns = [{"speaker": "Ana", "role": "user",
                              "text": f"token{c}x{n} " + " ".join(rng.choices(WORDS, k=8))}
                             for _ in range(rng.randint(1, 3))]
                    body = {"user": user, "session_id": sid, "started_at": "2024-05-08T10:00:00Z", "turns": turns}
                    path = "/v1/sessions"
                else:
                    body = {"user": user, "query": rng.choice(SEARCHES), "k": 5}
                    path = "/v1/search"
                t0 = time.perf_counter()
                try:
                    r = http.post(path, json=body)
                    status, text = r.status_code, r.text[:200]
                except httpx.HTTPError as exc:
                    status, text = 0, repr(exc)
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies["write" if write else "search"].append(elapsed)
                    if not 200 <= status < 300:
                        errors.append(f"{path} {status} {text}")
                    elif write:
                        acked[(user, sid)] = len(turns)
                n += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stored: dict[tuple[str, str], int] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for u in range(users):
            offset: int | None = 0
            while offset is not None:
                page = http.get(f"/v1/users/load{u}/sessions", params={"limit": 1000, "offset": offset}).json()
                stored.update({(f"load{u}", s["session_id"]): s["turns"] for s in page["sessions"]})
                offset = page["next_offset"]
    lost = [k for k, n in acked.items() if stored.get(k) != n]
    everything = latencies["write"] + latencies["search"]
    ms = lambda xs, q: round(_percentile(xs, q), 1)  # noqa: E731
    return {"clients": clients, "seconds": round(wall, 2), "requests": len(everything),
            "requests_per_second": round(len(everything) / wall, 1), "writes_acknowledged": len(acked),
            "searches": len(latencies["search"]), "errors": len(errors), "error_examples": errors[:5],
            "lost_writes": len(lost), "lost_examples": [list(k) for k in lost[:5]],
            "p50_ms": ms(everything, 0.5), "p95_ms": ms(everything, 0.95), "p99_ms": ms(everything, 0.99),
            "write_p95_ms": ms(latencies["write"], 0.95), "search_p95_ms": ms(latencies["search"], 0.95),
            "max_ms": ms(everything, 1.0)}


WRITER_SCRIPT = """
import json, sys
from convmem import Memory
db, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = Memory(db, retriever="lexical")
done = []
for i in range(n):
    m.add_session({"user": f"w{i % 3}", "session_id": f"{name}-{i}", "started_at": "2024-01-01T00:00:00Z",
                   "turns": [{"speaker": "A", "role": "user", "text": f"{name} writes {i}"}]})
    done.append(f"{name}-{i}")
    if i % 5 == 0:
        m.search("writes", user=f"w{i % 3}", k=3)
        m.add_turns([{"speaker": "A", "text": f"{name} appends {i}", "turn_id": f"a{i}"}], user=f"w{i % 3}",
                    session=f"{name}-{i}")
print(json.dumps(done))
"""


def two_writers_probe(db: str, *, each: int = 100, processes: int = 2) -> dict[str, Any]:
    """`processes` processes writing (and searching) the same SQLite file at once: no errors, no lost sessions."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, db, f"p{p}", str(each)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for p in range(processes)]
    outs = [p.communicate(timeout=600) for p in procs]
    failures = [err[-1500:] for p, (_, err) in zip(procs, outs) if p.returncode != 0]
    written = {sid for p, (out, _) in zip(procs, outs) if p.returncode == 0 for sid in json.loads(out)}
    from convmem import Memory

    with Memory(db, retriever="lexical") as mem:
        stored = {s["session_id"] for u in mem.users() for s in mem.sessions(user=u)}
        turns = mem.stats()["turns"]
    expected_turns = processes * (each + len(range(0, each, 5)))
    return {"processes": processes, "sessions_each": each, "seconds": round(time.perf_counter() - t0, 2),
            "failed_processes": len(failures), "failure_examples": failures[:2],
            "lost_sessions": len(written - stored), "turns": turns, "expected_turns": expected_turns}


# -- the command ----------------------------------------------------------------------------------------------
