"""Importers: every format parses to the data model; malformed files name the file, the item and the problem."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import timezone
from pathlib import Path

import pytest

from convmem.errors import FormatError, InputError
from convmem.ingest import read_data, read_sessions

FIX = Path(__file__).parent / "fixtures"


def test_convmem_jsonl_with_optional_fields():
    sessions = read_sessions(FIX / "sessions.jsonl", "convmem")
    assert [(s.user, s.session_id) for s in sessions] == [("ana", "s1"), ("ana", "s2"), ("ben", "s1")]
    s2 = sessions[1]
    assert s2.participants == ["Ana", "Rui", "assistant"]
    assert [t.turn_id for t in s2.turns] == ["dog-1", "s2_2", "s2_3"]
    assert s2.turns[0].metadata == {"mood": "happy"}
    assert s2.turns[1].role == "reviewer" and s2.turns[1].timestamp.minute == 35
    # naive timestamps are declared UTC; explicit offsets are kept
    assert sessions[2].started_at.tzinfo == timezone.utc
    assert sessions[0].started_at.utcoffset().total_seconds() == 3600
    # participants default to the speakers in order of appearance
    assert sessions[0].participants == ["Ana", "assistant"]


def test_convmem_single_object_and_list(tmp_path):
    one = {"user": "u", "session_id": "x", "started_at": "2024-01-01T00:00:00Z",
           "turns": [{"speaker": "U", "role": "user", "text": "hi"}]}
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "many.json").write_text(json.dumps([one, {**one, "session_id": "y"}]))
    assert len(read_sessions(tmp_path / "one.json", "convmem")) == 1
    assert len(read_sessions(tmp_path / "many.json", "convmem")) == 2


def test_user_option_overrides_file():
    sessions = read_sessions(FIX / "sessions.jsonl", "convmem", user="zoe")
    assert {s.user for s in sessions} == {"zoe"}


def test_openai_messages_skip_system_and_keep_text_parts():
    (session,) = read_sessions(FIX / "openai_chat.json", "openai", user="ana")
    assert session.session_id == "chat-1"
    assert [t.role for t in session.turns] == ["user", "assistant", "user"]
    assert session.turns[2].text == "Where should I look for a flat?"


def test_openai_bare_list_needs_user_and_gets_stable_id(tmp_path):
    path = tmp_path / "bare.json"
    path.write_text(json.dumps([{"role": "user", "content": "hello"}]))
    with pytest.raises(FormatError, match="pass --user"):
        read_sessions(path, "openai")
    a = read_sessions(path, "openai", user="u")[0]
    b = read_sessions(path, "openai", user="u")[0]
    assert a.session_id == b.session_id and a.started_at == b.started_at


def test_locomo_ids_dates_and_captions():
    sessions = read_sessions(FIX / "locomo_tiny.json", "locomo")
    assert [s.session_id for s in sessions] == ["session_1", "session_2"]
    s1 = sessions[0]
    assert s1.user == "conv-t"
    assert s1.started_at.isoformat() == "2023-05-08T13:56:00+00:00"
    assert [t.turn_id for t in s1.turns] == ["D1:1", "D1:2", "D1:3"]
    assert s1.turns[2].text.endswith("[shares a photo: a mountain trail]")
    assert s1.turns[2].metadata["blip_caption"] == "a mountain trail"
    assert s1.participants == ["Ana", "Ben"]


def test_longmemeval_gzip_ids_and_has_answer(tmp_path):
    gz = tmp_path / "lme.json.gz"
    with open(FIX / "lme_tiny.json", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    data = json.loads((FIX / "lme_tiny.json").read_text())
    sessions = read_sessions(gz, "longmemeval")
    q = data[0]
    mine = [s for s in sessions if s.user == q["question_id"]]
    assert [s.session_id for s in mine] == q["haystack_session_ids"]
    first = mine[0]
    assert [t.turn_id for t in first.turns] == [f"{first.session_id}_{i + 1}" for i in range(len(first.turns))]
    assert [t.metadata.get("has_answer") for t in first.turns] == [
        bool(t.get("has_answer", False)) if "has_answer" in t else None for t in q["haystack_sessions"][0]
    ]


@pytest.mark.parametrize(
    "payload, fmt, message",
    [
        ({"user": "u", "session_id": "s", "turns": []}, "convmem", "missing field 'started_at'"),
        ({"user": "u", "session_id": "s", "started_at": "yesterday", "turns": [{"text": "x"}]}, "convmem",
         "not an ISO-8601"),
        ({"user": "u", "session_id": "s", "started_at": "2024-01-01", "turns": [{"text": 5}]}, "convmem",
         "field 'text' must be str"),
        ({"user": "u", "session_id": "s", "started_at": "2024-01-01", "turns": []}, "convmem", "has no turns"),
        ([{"sample_id": "c", "conversation": {"session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "x"}],
                                               "session_1_date_time": "May 8"}}], "locomo", "is not like"),
        ([{"question_id": "q", "haystack_session_ids": ["a"], "haystack_dates": [],
           "haystack_sessions": [[]]}], "longmemeval", "differ in length"),
    ],
)
def test_malformed_input_names_file_item_and_problem(tmp_path, payload, fmt, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(FormatError) as info:
        read_sessions(path, fmt)
    assert str(path) in str(info.value) and message in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_data(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_data(bad)
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"a": 1}\n{broken\n')
    with pytest.raises(FormatError, match="line 2"):
        read_data(jsonl)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError):
        read_data(binary)
    with pytest.raises(InputError, match="unknown format"):
        read_sessions(FIX / "sessions.jsonl", "csv")
