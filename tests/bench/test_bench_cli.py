"""End-to-end `convmem bench ...` runs on the tiny fixtures (real MiniLM embedder), and what they write."""

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("rank_bm25")
pytest.importorskip("nltk")

from convmem.bench import flat_bm25  # noqa: E402
from convmem.bench.common import read_jsonl  # noqa: E402
from convmem.bench.datasets import load_locomo, load_longmemeval, lme_gold, locomo_questions  # noqa: E402
from convmem.bench.metrics import KS, aggregate, evaluate_rankings, metrics_at  # noqa: E402
from convmem.cli import main  # noqa: E402

FAST = ["--embed-sample", "4", "--latency-repeats", "1"]


pytestmark = pytest.mark.usefixtures("shared_embedder")  # tests/bench/conftest.py


def invoke(*args):
    result = CliRunner().invoke(main, ["bench", *map(str, args)], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def lme_run(tmp_path_factory):
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "lme_tiny.json"
    out = tmp_path_factory.mktemp("lme") / "out"
    result = invoke("longmemeval", "--data", fixture, "--retriever", "convmem", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return fixture, out, result


@pytest.fixture(scope="module")
def locomo_run(tmp_path_factory):
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "locomo_tiny.json"
    out = tmp_path_factory.mktemp("locomo") / "out"
    result = invoke("locomo", "--data", fixture, "--retriever", "convmem", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return fixture, out, result


def test_longmemeval_writes_every_file(lme_run):
    _, out, result = lme_run
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "report.md", "rankings.jsonl", "rankings_all_turns.jsonl", "questions.jsonl",
            "recall_vs_budget.png", "by_type.png", "memory.db"} <= names
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["retriever"]["name"] == "convmem"
    assert len(res["data"]["sha256"]) == 64
    assert res["provenance"]["packages"]["convmem"]
    assert "commit" in res["provenance"]["git"]
    assert set(res["extensions"]["context"]["budgets"]) == {"500", "1000", "2000", "4000"}
    assert res["extensions"]["updates"] == {"n": 0, "latest_first": {"session": None, "turn": None},
                                            "latest_cited": {"500": None, "1000": None, "2000": None, "4000": None}}
    s = res["speed"]
    assert s["import"]["turns_written"] > 0 and s["embedder_rate"]["texts_per_second"] > 0
    assert s["search"]["with_query_embedding"]["p95_ms"] >= 0 and s["search"]["without_query_embedding"]["n"] == 2
    assert "recall_all@5" in result.output
    assert "Official retrieval metrics" in (out / "report.md").read_text()


def test_rankings_rescored_equal_results(lme_run):
    fixture, out, _ = lme_run
    items = {it["question_id"]: it for it in load_longmemeval(fixture)}
    res = json.loads((out / "results.json").read_text())
    rows = read_jsonl(out / "rankings.jsonl")
    assert {(r["question_id"], r["granularity"]) for r in rows} == {(q, g) for q in items for g in ("session", "turn")}
    for g in ("session", "turn"):
        records = evaluate_rankings([{"question_id": r["question_id"], "granularity": g,
                                      "question_type": items[r["question_id"]]["question_type"],
                                      "ranked_ids": r["ranked_ids"], "gold": lme_gold(items[r["question_id"]], g)}
                                     for r in rows if r["granularity"] == g])
        assert aggregate(records) == res["official"][g]
        for r in rows:  # every official corpus id is ranked exactly once
            if r["granularity"] == g:
                from convmem.bench.datasets import lme_corpus

                assert sorted(r["ranked_ids"]) == sorted(d for d, _ in lme_corpus(items[r["question_id"]], g))


def test_flat_bm25_run_equals_the_baseline(lme_run, tmp_path):
    fixture, _, _ = lme_run
    result = invoke("longmemeval", "--data", fixture, "--retriever", "flat-bm25", "--out", tmp_path / "o", *FAST,
                    "--no-plots")
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["official"] == flat_bm25.flat_bm25_longmemeval(fixture)
    rows = read_jsonl(tmp_path / "o" / "rankings.jsonl")
    q1 = load_longmemeval(fixture)[0]
    assert rows[0] == {"question_id": "q1", "granularity": "session", "ranked_ids": flat_bm25.rank(q1, "session")}
    assert res["extensions"]["context"]["assembler"].startswith("convmem.context.assemble")
    assert "per_question_all_rankings" in res["speed"]["search"]


def test_granularity_option_and_db_reuse(lme_run, tmp_path):
    fixture, out, _ = lme_run
    db = out / "memory.db"
    result = invoke("longmemeval", "--data", fixture, "--granularity", "turn", "--out", tmp_path / "o", "--db", db,
                    *FAST, "--no-plots")
    assert not list((tmp_path / "o").glob("*.png"))
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert list(res["official"]) == ["turn"]
    imp = res["speed"]["import"]
    assert imp["this_run"]["turns_written"] == 0 and imp["this_run"]["sessions_unchanged"] > 0
    assert imp["figures_from"] == "recorded first import" and imp["turns_written"] > 0
    assert {r["granularity"] for r in read_jsonl(tmp_path / "o" / "rankings.jsonl")} == {"turn"}


def test_locomo_run(locomo_run):
    fixture, out, result = locomo_run
    res = json.loads((out / "results.json").read_text())
    agg = res["official"]["turn"]
    # fixture: 5 questions; open-domain has empty evidence, adversarial has only invalid ids -> not scored
    assert (agg["n_questions"], agg["n_scored"], agg["n_no_valid_evidence"]) == (5, 3, 2)
    assert agg["by_category"]["adversarial"]["n_no_valid_evidence"] == 1
    assert agg["by_category"]["open-domain"]["n_scored"] == 0
    assert res["data"]["quirks"]["with_invalid_evidence_parts"] == 2
    assert res["data"]["quirks"]["integer_answers"] == 1
    (sample,) = load_locomo(fixture)
    qs = {q.qid: q for q in locomo_questions(sample)}
    rows = read_jsonl(out / "rankings.jsonl")
    assert len(rows) == 5 and all(sorted(r["ranked_ids"]) == ["D1:1", "D1:2", "D1:3", "D2:1", "D2:2"] for r in rows)
    scored = [metrics_at(r["ranked_ids"], qs[r["question_id"]].evidence, KS) for r in rows
              if qs[r["question_id"]].evidence]
    for key in ("recall_any@1", "recall_all@3", "ndcg_any@5"):
        assert agg["overall"][key] == pytest.approx(sum(m[key] for m in scored) / len(scored))
    assert (out / "by_category.png").is_file() and (out / "recall_vs_budget.png").is_file()
    assert "turn: recall_any@10" in result.output


def test_report_rerenders(lme_run, locomo_run):
    for _, out, _ in (lme_run, locomo_run):
        (out / "report.md").unlink()
        (out / "recall_vs_budget.png").unlink()
        result = invoke("report", out)
        assert result.exit_code == 0, result.output
        assert (out / "report.md").read_text().startswith("# ")
        assert (out / "recall_vs_budget.png").stat().st_size > 1000


def test_compare_table(lme_run, locomo_run):
    result = invoke("compare", lme_run[1], locomo_run[1])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 4 and "| longmemeval | convmem |" in lines[2] and "| locomo | convmem |" in lines[3]


def test_errors_are_clean(tmp_path, monkeypatch, lme_path):
    r = CliRunner().invoke(main, ["bench", "longmemeval", "--data", str(lme_path), "--retriever", "nope",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "flat-bm25" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["bench", "report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "results.json" in r.output

    import urllib.error

    from convmem.bench import datasets

    def offline(*a, **k):
        raise urllib.error.URLError("no route")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, ["bench", "locomo", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "pass --data" in r.output


def test_retrievers_listed():
    r = invoke("retrievers")
    names = [line.split("\t")[0] for line in r.output.strip().splitlines()]
    assert names[0] == "flat-bm25" and {"convmem", "dense"} <= set(names)
