"""`convmem bench abstention`, `abstention-fit` and `about` end to end on the tiny fixtures (real MiniLM)."""

import json

import pytest
from click.testing import CliRunner

from convmem.bench.common import read_jsonl
from convmem.cli import main
from convmem.retrieve import abstain


pytestmark = pytest.mark.usefixtures("shared_embedder")  # tests/bench/conftest.py


def invoke(*args):
    return CliRunner().invoke(main, ["bench", *map(str, args)], catch_exceptions=False)


def test_abstention_runs_and_fit(tmp_path, lme_path, locomo_path):
    lme, locomo = tmp_path / "lme", tmp_path / "locomo"
    result = invoke("abstention", "--benchmark", "longmemeval", "--data", lme_path, "--out", lme)
    assert result.exit_code == 0, result.output
    assert "2 questions, 1 without evidence" in result.output
    rows = {r["question_id"]: r for r in read_jsonl(lme / "features.jsonl")}
    assert rows["q2_abs"]["no_evidence"] and not rows["q1"]["no_evidence"]
    assert set(rows["q1"]["features"]) == set(abstain.FEATURES)
    results = json.loads((lme / "results.json").read_text())
    assert results["signal"]["n"] == 2 and results["model"]["features"] == list(abstain.FEATURES)
    assert "| precision | recall |" in (lme / "report.md").read_text()

    result = invoke("abstention", "--benchmark", "locomo", "--data", locomo_path, "--out", locomo)
    assert result.exit_code == 0, result.output
    rows = {r["question_id"]: r for r in read_jsonl(locomo / "features.jsonl")}
    assert [q for q, r in rows.items() if r["no_evidence"]] == ["conv-t:3"]
    assert rows["conv-t:3"]["features"]["names_speaker"] == 1.0

    result = invoke("abstention-fit", lme, locomo)
    assert result.exit_code == 0, result.output
    assert "INTERCEPT = " in result.output and "WEIGHTS = " in result.output
    fit = json.loads((lme / "fit.json").read_text())
    assert fit["n"] == len(read_jsonl(lme / "features.jsonl")) + len(read_jsonl(locomo / "features.jsonl"))


def test_abstention_refuses_an_unknown_benchmark(tmp_path, locomo_path):
    result = invoke("abstention", "--benchmark", "mystery", "--data", locomo_path, "--out", tmp_path)
    assert result.exit_code == 2 and "mystery" in result.output


def test_about_run(tmp_path, locomo_path):
    out = tmp_path / "about"
    result = invoke("about", "--data", locomo_path, "--out", out)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    rows = read_jsonl(out / "questions.jsonl")
    # questions naming exactly one speaker and with valid evidence
    assert sorted((r["question_id"], r["about"]) for r in rows) == [
        ("conv-t:0", "Ana"), ("conv-t:1", "Ben"), ("conv-t:4", "Ana")]
    assert results["n"] == 3 and set(results["overall"]) >= {"without", "about", "filter"}
    assert "recall_all@10" in (out / "report.md").read_text()
