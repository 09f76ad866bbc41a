"""The synthetic generator and a tiny `bench scale` run (SQLite, no real model, no client processes beyond 2)."""

import json

import numpy as np
from click.testing import CliRunner

from convmem.bench.scale import HashEmbedder, render_report, run_scale, scale
from convmem.bench.synth import SynthGenerator, turns_for_user


def test_generator_is_deterministic_and_exact():
    a = SynthGenerator(seed=3).user_sessions(2, 137)
    b = SynthGenerator(seed=3).user_sessions(2, 137)
    assert sum(len(s.turns) for s in a) == 137
    assert [(t.speaker, t.text, t.timestamp) for s in a for t in s.turns] == \
        [(t.speaker, t.text, t.timestamp) for s in b for t in s.turns]
    other = SynthGenerator(seed=4).user_sessions(2, 137)
    assert [t.text for s in a for t in s.turns] != [t.text for s in other for t in s.turns]
    starts = [s.started_at for s in a]
    assert starts == sorted(starts)
    assert all(s.user == "u00002" for s in a)
    assert sum(turns_for_user(i, 7, 100) for i in range(7)) == 100


def test_questions_ask_about_the_last_stated_fact():
    gen = SynthGenerator(seed=1)
    sessions = gen.user_sessions(0, 400)
    texts = [t.text for s in sessions for t in s.turns if t.role == "user" and t.speaker != "Assistant"]
    questions = gen.user_questions(0, 400, n=4)
    assert len(questions) == 4
    for q in questions:
        assert q.user == "u00000" and q.query.endswith("?")
        assert any(q.answer in t for t in texts)


def test_hash_embedder_unit_and_deterministic():
    e = HashEmbedder(16)
    v = e.embed_batch(["I live in Porto", "I live in Porto", "chess on Sunday"])
    assert v.shape == (3, 16)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v[0], v[1])
    assert np.array_equal(HashEmbedder(16).embed("chess on Sunday"), v[2])


def test_tiny_scale_run(tmp_path):
    out = tmp_path / "out"
    r = run_scale("sqlite", 600, 6, str(out), queries=6, clients=2, duration=0.3, capacity=4, real_model=False)
    saved = json.loads((out / "results.json").read_text())
    assert saved["ingest"]["turns"] == 600 == saved["store"]["stats"]["turns"]
    assert saved["store"]["stats"]["embeddings"] > 0
    s = saved["search"]
    for key in ("warm", "cold", "mixed_uniform", "mixed_zipf"):
        assert s[key]["n"] > 0 and s[key]["p95_ms"] > 0
    assert s["concurrency"]["warm_2"]["queries"] > 0
    assert "per million turns" in (out / "report.md").read_text()
    assert render_report(r) == (out / "report.md").read_text()


def test_cli_no_embed(tmp_path):
    db = tmp_path / "x.db"
    result = CliRunner().invoke(scale, ["--backend", "sqlite", "--turns", "200", "--users", "2", "--out",
                                        str(tmp_path / "o"), "--db", str(db), "--no-embed", "--queries", "3",
                                        "--clients", "0"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["embed"] is False and saved["store"]["stats"]["embeddings"] == 0
    assert db.exists()  # a --db given is the caller's: kept
