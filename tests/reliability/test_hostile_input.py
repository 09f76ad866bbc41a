"""Hostile input: every importer and every `Memory` input either succeeds or raises a `ConvmemError`, never
anything else, and a failed write leaves the store as it was. Search text is only ever text.
"""

from __future__ import annotations

import json
import math
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convmem import Memory
from convmem.errors import ConvmemError
from convmem.ingest import FORMATS, parse_sessions, read_data
from convmem.models import Session

from reliability_helpers import HashEmbedder

# CONVMEM_FUZZ_EXAMPLES=2000 for a long, randomised hunt; the default run is short and the same every time
FUZZ = int(os.environ.get("CONVMEM_FUZZ_EXAMPLES", "0"))
SETTINGS = settings(max_examples=FUZZ or 60, deadline=None, derandomize=not FUZZ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

NASTY = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e evil", "💥🐕", "A" * 100_000, "\r\n\t", "\x1b[31m",
    "'; DROP TABLE turns; --", '"', "NEAR(", "*", "-", "((", "ÄÖÜ ß 東京", "\ufeff", "\U0010ffff",
    "1:56 pm on 8 May, 2023", "2023/05/20 (Sat) 02:21", "2024-05-08T10:00:00Z", "2024-05-08T10:00:00",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2024-02-30T00:00:00Z", "2024-13-01", "now",
]
TEXT = st.one_of(st.text(max_size=30), st.sampled_from(NASTY))
NUMBER = st.one_of(st.integers(), st.sampled_from([0, -1, 2**63, -(2**63), 10**30]),
                   st.floats(allow_nan=True, allow_infinity=True))
LEAF = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
ANY = st.recursive(LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(TEXT, inner, max_size=4)), max_leaves=15)
TIME = st.one_of(TEXT, NUMBER)
ID = st.one_of(st.sampled_from(["ana", "s1", "x"]), TEXT, st.integers())


def maybe(strategy):
    """Mostly the right shape, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, ANY)


TURN = st.fixed_dictionaries({"text": maybe(TEXT)}, optional={
    "speaker": maybe(TEXT), "role": maybe(st.sampled_from(["user", "assistant", "system"])), "turn_id": maybe(ID),
    "timestamp": maybe(TIME), "metadata": maybe(st.dictionaries(TEXT, ANY, max_size=3))})
CONVMEM = st.fixed_dictionaries(
    {"user": maybe(ID), "session_id": maybe(ID), "started_at": maybe(TIME), "turns": maybe(st.lists(TURN, max_size=4))},
    optional={"metadata": maybe(st.dictionaries(TEXT, ANY, max_size=3)), "participants": maybe(st.lists(TEXT))})
PART = st.fixed_dictionaries({"type": maybe(st.just("text")), "text": maybe(TEXT)})
MESSAGE = st.fixed_dictionaries({"role": maybe(st.sampled_from(["user", "assistant", "system", "tool"])),
                                 "content": maybe(st.one_of(TEXT, st.lists(PART, max_size=3)))},
                                optional={"name": maybe(TEXT)})
OPENAI = st.one_of(st.lists(MESSAGE, max_size=4), st.fixed_dictionaries(
    {"messages": maybe(st.lists(MESSAGE, max_size=4))},
    optional={"user": maybe(ID), "session_id": maybe(ID), "id": maybe(ID), "started_at": maybe(TIME),
              "created": maybe(TIME)}))
LOCOMO_TURN = st.fixed_dictionaries({"speaker": maybe(TEXT), "dia_id": maybe(ID), "text": maybe(TEXT)},
                                    optional={"blip_caption": maybe(TEXT), "img_url": ANY})
LOCOMO = st.fixed_dictionaries({"sample_id": maybe(ID), "conversation": maybe(st.fixed_dictionaries(
    {"speaker_a": maybe(TEXT), "session_1": maybe(st.lists(LOCOMO_TURN, max_size=3)),
     "session_1_date_time": maybe(st.one_of(st.just("1:56 pm on 8 May, 2023"), TEXT))},
    optional={"session_2": maybe(st.lists(LOCOMO_TURN, max_size=3)), "session_2_date_time": maybe(TEXT)}))})
LME_TURN = st.fixed_dictionaries({"role": maybe(TEXT), "content": maybe(TEXT)}, optional={"has_answer": ANY})
LONGMEMEVAL = st.fixed_dictionaries({
    "question_id": maybe(ID), "haystack_session_ids": maybe(st.lists(ID, max_size=2)),
    "haystack_dates": maybe(st.lists(st.one_of(st.just("2023/05/20 (Sat) 02:21"), TEXT), max_size=2)),
    "haystack_sessions": maybe(st.lists(st.lists(LME_TURN, max_size=3), max_size=2))})
SHAPED = {"convmem": CONVMEM, "openai": OPENAI, "locomo": LOCOMO, "longmemeval": LONGMEMEVAL}


def deep(n: int):
    value: object = "bottom"
    for _ in range(n):
        value = {"x": [value]}
    return value


@pytest.fixture(scope="module")
def mem(tmp_path_factory):
    """One store for the module (hypothesis reuses it); dense + lexical retrieval with a cheap embedder."""
    memory = Memory(tmp_path_factory.mktemp("hostile") / "h.db", embedder=HashEmbedder())
    yield memory
    memory.close()


def _counts(mem: Memory) -> tuple:
    s = mem.stats()
    return s["users"], s["sessions"], s["turns"], s["embeddings"]


def _store_each(mem: Memory, sessions: list[Session]) -> None:
    """Each session is stored whole or, on a ConvmemError, not at all."""
    for session in sessions:
        before = _counts(mem)
        try:
            mem.add_sessions([session])
        except ConvmemError:
            assert _counts(mem) == before
            continue
        mem.search(session.turns[0].text, user=session.user, k=3)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_importer_fails_cleanly_or_stores(fmt, mem):
    @SETTINGS
    @given(data=st.one_of(ANY, SHAPED[fmt], st.lists(SHAPED[fmt], max_size=3)))
    def check(data):
        try:
            sessions = parse_sessions(data, fmt, source="<hypothesis>")
        except ConvmemError:
            return
        assert all(isinstance(s, Session) for s in sessions)
        _store_each(mem, sessions)

    check()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_deep_nesting_is_a_clean_error_or_stored(fmt, mem, tmp_path):
    for data in (deep(50), deep(5000), [{"user": "d", "session_id": "deep", "started_at": 0,
                                         "turns": [{"text": "t", "metadata": deep(3000)}]}]):
        try:
            _store_each(mem, parse_sessions(data, fmt, source="<deep>"))
        except ConvmemError:
            pass
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConvmemError):
        read_data(path)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=300), st.builds(
    lambda head, junk, tail: head + junk + tail,
    st.sampled_from([b'{"user": "ana", "session_id": "s", "started_at": 0, "turns": [{"text": "',
                     b'[{"role": "user", "content": "']),
    st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3\x28", b"\xed\xa0\x80", b"\\ud800", b"\x1b", b"\xe2\x82"]),
    st.sampled_from([b'"}]}', b'"}]', b"", b'"}]}\n{"bad": ']))))
def test_files_with_any_bytes_fail_cleanly(raw, tmp_path_factory, mem):
    path = tmp_path_factory.mktemp("bytes") / f"{uuid.uuid4().hex}.json"
    path.write_bytes(raw)
    for fmt in sorted(FORMATS):
        try:
            sessions = parse_sessions(read_data(path), fmt, source=str(path))
        except ConvmemError:
            continue
        _store_each(mem, sessions)


@pytest.fixture(scope="module")
def filled(mem):
    mem.add_session({"user": "ana", "session_id": "base", "started_at": "2024-05-08T10:00:00Z",
                     "turns": [{"speaker": "Ana", "text": "My sister marries in Sintra in June."},
                               {"speaker": "Bot", "role": "assistant",
                                "text": 'alpha NEAR(beta) "gamma" OR -delta*'}]})
    return mem


ARG = st.one_of(ANY, TEXT)


@SETTINGS
@given(query=st.one_of(TEXT, ARG), user=st.one_of(st.just("ana"), ID, ARG), k=st.one_of(st.integers(-3, 50), ARG),
       granularity=st.one_of(st.sampled_from(["turn", "session"]), ARG), since=st.one_of(st.none(), TIME),
       until=st.one_of(st.none(), TIME), speakers=st.one_of(st.none(), st.lists(TEXT, max_size=2), ARG),
       roles=st.one_of(st.none(), st.lists(TEXT, max_size=2), ARG), neighbours=st.one_of(st.integers(-2, 5), ARG),
       now=st.one_of(st.none(), TIME))
def test_search_arguments_fail_cleanly(filled, query, user, k, granularity, since, until, speakers, roles,
                                       neighbours, now):
    before = _counts(filled)
    try:
        hits = filled.search(query, user=user, k=k, granularity=granularity, since=since, until=until,
                             speakers=speakers, roles=roles, neighbours=neighbours, now=now)
        assert isinstance(hits, list)
    except ConvmemError:
        pass
    assert _counts(filled) == before


@SETTINGS
@given(query=st.one_of(TEXT, ARG), user=st.one_of(st.just("ana"), ID, ARG),
       budget=st.one_of(st.integers(-3, 3000), ARG), since=st.one_of(st.none(), TIME),
       speakers=st.one_of(st.none(), st.lists(TEXT, max_size=2), ARG))
def test_context_arguments_fail_cleanly(filled, query, user, budget, since, speakers):
    try:
        ctx = filled.context(query, user=user, budget_tokens=budget, since=since, speakers=speakers)
        assert ctx.tokens <= budget
    except ConvmemError:
        pass


@SETTINGS
@given(turns=st.one_of(st.lists(st.one_of(TURN, ANY), max_size=3), ARG), user=ID, session=ID,
       started_at=st.one_of(st.none(), TIME))
def test_add_turns_fails_cleanly_and_atomically(mem, turns, user, session, started_at):
    before = _counts(mem)
    try:
        mem.add_turns(turns, user=user, session=session, started_at=started_at)
    except ConvmemError:
        assert _counts(mem) == before
        return
    mem.search("x", user=str(user))


@SETTINGS
@given(session=st.one_of(CONVMEM, ANY))
def test_add_session_fails_cleanly_and_atomically(mem, session):
    before = _counts(mem)
    try:
        mem.add_session(session)
    except ConvmemError:
        assert _counts(mem) == before


FTS = st.lists(st.sampled_from(['"', "'", "AND", "OR", "NOT", "NEAR(", "NEAR/3", ")", "(", "*", "-", "+", "^", ":",
                                "{", "}", "[", "]", "\\", "%", "_", "ünï", "東京", "💥", "sister", "\x00",
                                "\ud800"]),
               max_size=8).map(" ".join)


@SETTINGS
@given(query=st.one_of(FTS, st.text(max_size=40)))
def test_search_syntax_never_errors(filled, query):
    assert isinstance(filled.search(query, user="ana", k=3), list)
    assert filled.context(query, user="ana", budget_tokens=200).tokens <= 200


def test_search_syntax_is_matched_as_text(filled):
    hits = filled.search('alpha NEAR(beta) "gamma" OR -delta*', user="ana", k=1)
    assert hits and hits[0].text == 'alpha NEAR(beta) "gamma" OR -delta*'


@pytest.mark.parametrize("bad", ["\ud800 lone", "ok"])
def test_lone_surrogates_are_an_input_error_not_a_crash(mem, bad):
    session = {"user": "surrogate", "session_id": "s", "started_at": "2024-01-01T00:00:00Z",
               "turns": [{"speaker": "U", "text": bad}]}
    if "\ud800" in bad:
        with pytest.raises(ConvmemError, match="Unicode"):
            mem.add_session(session)
        with pytest.raises(ConvmemError, match="Unicode"):
            mem.add_turns([{"speaker": "U", "text": bad}], user="surrogate", session="t")
    else:
        assert mem.add_session(session) in ("added", "unchanged")


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", 1e20, math.inf,
                                  math.nan, "2024-02-30T00:00:00Z"])
def test_impossible_timestamps_are_input_errors(mem, when):
    with pytest.raises(ConvmemError):
        mem.add_session({"user": "t", "session_id": "s", "started_at": when, "turns": [{"speaker": "U", "text": "x"}]})
    assert mem.search("x", user="t") == []


def test_json_lines_with_nul_and_control_characters_round_trip(mem, tmp_path):
    text = "nul\x00 bell\x07 esc\x1b[0m rtl\u202e end"
    path = tmp_path / "ctl.jsonl"
    path.write_text("\n".join(json.dumps({"user": "ctl", "session_id": f"s{i}", "started_at": 0,
                                          "turns": [{"speaker": "U", "text": text}]}) for i in range(2)))
    mem.import_file(path)
    assert [h.text for h in mem.search("nul bell", user="ctl", k=2)] == [text, text]
