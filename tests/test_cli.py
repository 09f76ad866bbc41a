"""The CLI mirrors the library: same names, JSON output, clean errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from convmem.cli import main

FIX = Path(__file__).parent / "fixtures"
DOCS = Path(__file__).parent.parent / "README.md"


def all_commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        yield prefix + name, cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + name + " ")


@pytest.mark.parametrize("name, command", list(all_commands(main)))
def test_every_command_has_help_and_is_documented(name, command):
    assert command.help, f"convmem {name} is missing its help"
    assert f"convmem {name}" in DOCS.read_text() or name.startswith("bench "), f"README does not show convmem {name}"


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "cli.db")
    result = CliRunner().invoke(main, ["import", str(FIX / "sessions.jsonl"), "--db", path, "--quiet"])
    assert result.exit_code == 0, result.output
    return path


def test_import_search_context_sessions_stats_forget(db):
    run = CliRunner().invoke
    hits = json.loads(run(main, ["search", "dog name", "--user", "ana", "--db", db, "--json", "-k", "2"]).stdout)
    assert len(hits) == 2 and hits[0]["turn_id"] == "dog-1"
    assert set(hits[0]) >= {"turn_id", "session_id", "speaker", "role", "timestamp", "text", "score"}
    ctx = json.loads(run(main, ["context", "wedding", "--user", "ana", "--db", db, "--budget", "300",
                                "--json"]).stdout)
    assert ctx["tokens"] <= 300 and ctx["citations"]
    listing = run(main, ["sessions", "--user", "ana", "--db", db]).stdout
    assert listing.splitlines()[0].startswith("s1\t")
    stats = json.loads(run(main, ["stats", "--db", db, "--json"]).stdout)
    assert stats["turns"] == 6
    assert "removed 2 turns" in run(main, ["forget", "--user", "ana", "--session", "s1", "--db", db]).stdout
    again = run(main, ["import", str(FIX / "sessions.jsonl"), "--db", db, "--json"])
    assert json.loads(again.stdout)["sessions_added"] == 1


def test_users_pages_like_the_library(db):
    run = CliRunner().invoke
    assert run(main, ["users", "--db", db]).stdout.splitlines() == ["ana", "ben"]
    assert json.loads(run(main, ["users", "--db", db, "--json", "--limit", "1", "--offset", "1"]).stdout) == ["ben"]
    assert json.loads(run(main, ["users", "--db", db, "--json", "--tenant", "other"]).stdout) == []
    bad = run(main, ["users", "--db", db, "--limit", "0"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["import", "/no/such/file.json"], "no such file"),
        (["import", str(FIX / "openai_chat.json"), "--format", "locomo"], "missing field 'sample_id'"),
        (["search", "x", "--user", "ana", "--since", "soon"], "not an ISO-8601"),
        (["search", "x", "--user", ""], "user must be"),
    ],
)
def test_user_mistakes_get_one_clean_line(db, args, message):
    result = CliRunner().invoke(main, args + ["--db", db])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_deferred_embedding_is_filled_on_first_search(tmp_path):
    db = str(tmp_path / "lazy.db")
    out = CliRunner().invoke(main, ["import", str(FIX / "sessions.jsonl"), "--db", db, "--defer-embedding", "--json"])
    assert json.loads(out.stdout)["texts_embedded"] == 0
    assert json.loads(CliRunner().invoke(main, ["stats", "--db", db, "--json"]).stdout)["embeddings"] == 0
    hits = json.loads(CliRunner().invoke(main, ["search", "dog", "--user", "ana", "--db", db, "--json"]).stdout)
    assert hits[0]["turn_id"] == "dog-1"
    assert json.loads(CliRunner().invoke(main, ["stats", "--db", db, "--json"]).stdout)["embeddings"] == 5


def test_python_dash_m_and_default_db_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVMEM_DB", str(tmp_path / "env.db"))
    out = subprocess.run([sys.executable, "-m", "convmem", "stats", "--json"], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout)["location"] == str(tmp_path / "env.db")
