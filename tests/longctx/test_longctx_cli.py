from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from convmem.longctx.cli import longctx


def test_help_and_list():
    assert longctx.help
    result = CliRunner().invoke(longctx, ["--list"])
    assert result.exit_code == 0 and "niah_multikey" in result.output and "lm-infinite" in result.output


def test_memory_method_needs_the_local_model():
    result = CliRunner().invoke(longctx, ["--task", "passkey", "--method", "memory", "--out", "x",
                                          "--endpoint", "http://x", "--endpoint-model", "m"])
    assert result.exit_code == 2 and "method memory reads with the local model" in result.output


def test_unknown_task_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(longctx, ["--task", "nope", "--out", str(tmp_path), "--endpoint", "http://x",
                                          "--endpoint-model", "m"])
    assert result.exit_code == 2 and "unknown task" in result.output


def test_grid_writes_report_and_resumes(tmp_path, monkeypatch, tiny_model, tiny_hf_tokenizer):
    pytest.importorskip("matplotlib")
    import convmem.longctx.runners as runners

    monkeypatch.setattr(runners, "load_local", lambda *a, **k: (tiny_model, tiny_hf_tokenizer))
    args = ["--task", "passkey", "--lengths", "200", "--depths", "0,1", "--method", "full,streaming",
            "--policy-arg", "streaming.window=50", "--max-new-tokens", "3", "--chunk-size", "64",
            "--out", str(tmp_path), "--no-progress"]
    result = CliRunner().invoke(longctx, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["records"]) == 2 * 2
    assert data["meta"]["grid"]["policy_args"] == {"streaming": {"window": 50}}
    report = (tmp_path / "report.md").read_text()
    assert "| passkey | streaming | 200 |" in report
    assert (tmp_path / "heatmap-passkey-full.png").stat().st_size > 0
    assert (tmp_path / "heatmap-passkey-streaming.png").exists()
    rec = next(r for r in data["records"] if r["method"] == "streaming")
    assert rec["cache_max"] <= 54
    # a second run finds every cell done
    result = CliRunner().invoke(longctx, args)
    assert result.exit_code == 0
    assert len(json.loads((tmp_path / "results.json").read_text())["records"]) == 4
