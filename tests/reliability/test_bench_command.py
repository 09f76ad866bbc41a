"""`convmem bench reliability` (convmem.bench.reliability:reliability): documented options, and a report."""

from __future__ import annotations

from click.testing import CliRunner

from convmem.bench.reliability import _report_md, reliability


def test_command_has_help_for_every_option():
    assert reliability.help
    assert all(p.help for p in reliability.params), [p.name for p in reliability.params if not p.help]
    result = CliRunner().invoke(reliability, ["--help"])
    assert result.exit_code == 0 and "--kill-points" in result.output


def test_report_renders_every_section():
    trial = {"point": {"sessions": 3}, "killed": True, "ms": 1.0, "sessions_after_kill": 3,
             "partial_or_foreign_sessions": 0, "integrity": "ok", "converged": True}
    crash = {"kill_points": 1, "sessions_in_file": 10, "turns_in_file": 40, "uninterrupted_seconds": 0.1,
             "killed_mid_import": 1, "distinct_partial_states": 1, "failures": 0, "trials": [trial]}
    load = {k: 0 for k in ("clients", "seconds", "requests", "requests_per_second", "writes_acknowledged", "errors",
                           "lost_writes", "p50_ms", "p95_ms", "p99_ms", "write_p95_ms", "search_p95_ms")}
    writers = {"processes": 2, "sessions_each": 3, "seconds": 0.1, "failed_processes": 0, "lost_sessions": 0,
               "turns": 6, "expected_turns": 6}
    text = _report_md({"started": "now", "python": "3", "crash": {"sqlite": crash}, "load": load,
                       "two_writers": writers})
    assert "Crash safety: sqlite" in text and "Concurrency" in text and "Two processes" in text
