"""SIGKILL during imports: the store stays intact, sessions are whole or missing, a re-run converges.

`convmem bench reliability` runs 20 kill points per backend; these tests run a few.
"""

from __future__ import annotations

import pytest

from convmem.bench.reliability import (
    check_partial,
    crash_probe,
    file_digests,
    fresh_pg_database,
    kill_import,
    make_sessions,
    run_import,
    snapshot,
    write_jsonl,
)


def _assert_safe(result, min_killed):
    failed = [t for t in result["trials"] if not t["ok"]]
    assert not failed, failed
    assert result["killed_mid_import"] >= min_killed, result["trials"]


def test_sigkill_during_library_import_sqlite(tmp_path):
    result = crash_probe(str(tmp_path), backend_location=lambda name: str(tmp_path / f"{name}.db"), sessions=150,
                         points=4, timed=1)
    _assert_safe(result, 4)
    assert result["distinct_partial_states"] >= 3


def test_sigkill_during_cli_import_sqlite_converges_with_embeddings(tmp_path, embedder):
    """`convmem import` itself (MiniLM): killed once sessions are written (while it embeds), the re-run completes
    the vectors, so the store equals one imported in one go."""
    from convmem import Memory

    file = write_jsonl(make_sessions(24, seed=1, max_turns=3), tmp_path / "in.jsonl")
    with Memory(tmp_path / "ref.db", embedder=embedder) as ref:
        ref.import_file(file)
    reference = snapshot(str(tmp_path / "ref.db"))
    db = str(tmp_path / "killed.db")
    assert kill_import("cli", file, db, at_sessions=12)["killed"]
    after = check_partial(db, file_digests(file))
    assert after["integrity"] == "ok" and after["partial_or_foreign_sessions"] == 0
    run_import("cli", file, db)
    final = snapshot(db)
    assert {k: final[k] for k in reference} == reference
    assert final["embeddings"] == reference["embeddings"] > 0


@pytest.mark.postgres
def test_sigkill_during_library_import_postgres(tmp_path, pg_server_url):
    pytest.importorskip("psycopg")
    result = crash_probe(str(tmp_path), backend_location=lambda name: fresh_pg_database(pg_server_url),
                         sessions=100, points=2, timed=0)
    _assert_safe(result, 2)
