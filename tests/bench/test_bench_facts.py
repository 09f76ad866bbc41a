"""`convmem bench locomo|longmemeval --facts-extractor ...`: fact extraction after the import, recorded in
results.json["fact_extraction"] and report.md; off by default (no key, no line)."""

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("rank_bm25")
pytest.importorskip("nltk")

from convmem.cli import main  # noqa: E402
from convmem.providers.chat import ChatModel, Completion  # noqa: E402

FAST = ["--embed-sample", "0", "--latency-repeats", "1", "--latency-queries", "1", "--no-plots"]

pytestmark = pytest.mark.usefixtures("shared_embedder")  # tests/bench/conftest.py


class Fake(ChatModel):
    """Finds "hiking" in turn 3 of every session it reads (LoCoMo tiny's session 1 has it; session 2 has two turns)."""

    name = "fake"

    def generate(self, messages, **kw) -> Completion:
        return Completion('[{"turn": 3, "attribute": "hobby", "value": "hiking"}]')


def run(*args):
    return CliRunner().invoke(main, ["bench", *map(str, args)])


def test_locomo_with_the_llm_extractor_records_its_cost(tmp_path, locomo_path, monkeypatch):
    import convmem.providers.chat

    monkeypatch.setattr(convmem.providers.chat, "load_chat_model", lambda spec, **kw: Fake())
    out = tmp_path / "o"
    result = run("locomo", "--data", locomo_path, "--retriever", "convmem-facts", "--out", out, *FAST,
                 "--facts-extractor", "llm", "--chat-model", "fake")
    assert result.exit_code == 0, result.output
    fx = json.loads((out / "results.json").read_text())["fact_extraction"]
    # 2 sessions of conv-t; the rules find "lives in Paris" and "bike blue"; the model "hiking" in session 1 (in
    # session 2, which has no turn 3, validation drops it)
    assert {k: fx[k] for k in ("extractor", "chat_model", "users", "sessions", "facts_rules", "facts_llm",
                               "items_written_by_model", "items_dropped_by_validation", "sessions_llm_read")} == {
        "extractor": "llm", "chat_model": "fake", "users": 1, "sessions": 2, "facts_rules": 2, "facts_llm": 1,
        "items_written_by_model": 2, "items_dropped_by_validation": 1, "sessions_llm_read": 2}
    assert fx["seconds_per_session"] is not None
    report = (out / "report.md").read_text()
    assert "- fact extraction after the import (`Memory.reextract`, llm, chat model `fake`): 2 sessions" in report
    assert "--facts-extractor llm --chat-model fake" in report  # the command line


def test_longmemeval_rules_extraction_and_off_by_default(tmp_path, lme_path):
    out = tmp_path / "o"
    result = run("longmemeval", "--data", lme_path, "--out", out, *FAST, "--facts-extractor", "rules")
    assert result.exit_code == 0, result.output
    fx = json.loads((out / "results.json").read_text())["fact_extraction"]
    questions = len(json.loads(lme_path.read_text()))
    assert fx["extractor"] == "rules" and fx["users"] == 2 * questions  # all turns, and the protocol's user turns
    assert fx["sessions_changed"] == 0  # a fresh import already holds its rule facts
    plain = tmp_path / "p"
    assert run("longmemeval", "--data", lme_path, "--out", plain, *FAST).exit_code == 0
    assert "fact_extraction" not in json.loads((plain / "results.json").read_text())
    assert "fact extraction" not in (plain / "report.md").read_text()


def test_llm_extractor_without_a_chat_model_is_a_clean_error(tmp_path, locomo_path):
    result = run("locomo", "--data", locomo_path, "--out", tmp_path / "o", "--facts-extractor", "llm")
    assert result.exit_code == 2 and "needs --chat-model" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # refused before anything ran
