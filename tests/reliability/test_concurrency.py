"""Many clients against a real `convmem serve`, and two processes writing one SQLite file.

Short runs here; `convmem bench reliability` runs 16 clients for 60 s.
"""

from __future__ import annotations

import pytest

from convmem.bench.reliability import load_probe, serve, two_writers_probe

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")


def test_sixteen_clients_against_convmem_serve(tmp_path):
    with serve(str(tmp_path / "serve.db")) as url:
        result = load_probe(url, clients=16, seconds=3, seed=7)
    print(result)  # the figures, with -s
    assert result["errors"] == 0, result["error_examples"]
    assert result["lost_writes"] == 0, result["lost_examples"]
    assert result["writes_acknowledged"] > 0 and result["searches"] > 0
    assert result["p95_ms"] > 0


def test_two_processes_write_one_sqlite_file(tmp_path):
    result = two_writers_probe(str(tmp_path / "shared.db"), each=40)
    assert result["failed_processes"] == 0, result["failure_examples"]
    assert result["lost_sessions"] == 0
    assert result["turns"] == result["expected_turns"]


def test_a_file_locked_past_busy_timeout_is_a_store_error(tmp_path):
    import sqlite3

    from convmem import Memory
    from convmem.errors import StoreError

    db = tmp_path / "locked.db"
    mem = Memory(db, retriever="lexical")
    mem.store._db.execute("PRAGMA busy_timeout = 50")  # the real wait is 30 s
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked"):
            mem.add_session({"user": "u", "session_id": "s", "started_at": 0, "turns": [{"speaker": "U", "text": "x"}]})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert mem.add_session({"user": "u", "session_id": "s", "started_at": 0,
                            "turns": [{"speaker": "U", "text": "x"}]}) == "added"
    mem.close()


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path):
    """The first open migrates: a process that waited for the lock must not run the migration a second time."""
    import subprocess
    import sys
    import time

    script = ("import sys, time\nfrom convmem import Memory\ntime.sleep(max(0, float(sys.argv[3]) - time.time()))\n"
              "m = Memory(sys.argv[1], retriever='lexical')\n"
              "m.add_session({'user': 'u', 'session_id': sys.argv[2], 'started_at': 0, "
              "'turns': [{'speaker': 'U', 'text': 'hi'}]})\n")
    for round_ in range(3):
        db = str(tmp_path / f"new{round_}.db")
        start = str(time.time() + 2)  # all open the file at the same moment, not as their interpreters come up
        procs = [subprocess.Popen([sys.executable, "-c", script, db, f"s{p}", start], stderr=subprocess.PIPE,
                                  text=True) for p in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, errors
        from convmem import Memory

        with Memory(db, retriever="lexical") as mem:
            assert mem.stats()["sessions"] == 4


def test_threads_creating_one_file_at_once_all_open_it(tmp_path):
    """Switching a new file to WAL skips SQLite's busy handler: each opener must wait its turn, not fail at once.

    Before the retry about one round in twenty-five had an opener fail with "database is locked".
    """
    import threading

    from convmem.store.sqlite import SQLiteStore

    for round_ in range(60):
        path = str(tmp_path / f"new{round_}.db")
        barrier = threading.Barrier(8)
        errors: list[str] = []

        def open_it() -> None:
            barrier.wait()
            try:
                SQLiteStore(path).close()
            except Exception as exc:  # noqa: BLE001 - the test reports whatever an opener raised
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}: {errors}"
