"""Loaders, download errors, and the official LongMemEval / LoCoMo id and gold rules."""

import gzip
import json
import urllib.error

import pytest

from convmem.bench import datasets as ds
from convmem.errors import FormatError, InputError


def test_load_json_and_gzip(lme_path, tmp_path):
    data = ds.load_json(lme_path)
    gz = tmp_path / "lme.json.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        json.dump(data, fh)
    assert ds.load_json(gz) == data
    assert [it["question_id"] for it in ds.load_longmemeval(gz, limit=1)] == ["q1"]


def test_missing_file_says_pass_data(tmp_path):
    with pytest.raises(InputError, match=r"nope\.json.*--data PATH"):
        ds.load_json(tmp_path / "nope.json")


def test_bad_json_and_bad_gzip(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(FormatError, match="bad.json"):
        ds.load_json(bad)
    badgz = tmp_path / "bad.json.gz"
    badgz.write_bytes(b"not gzip")
    with pytest.raises(FormatError, match="bad.json.gz"):
        ds.load_json(badgz)


def test_wrong_shape(tmp_path, locomo_path):
    p = tmp_path / "d.json"
    p.write_text('{"a": 1}')
    with pytest.raises(FormatError, match="list"):
        ds.load_locomo(p)
    with pytest.raises(FormatError, match="item 0"):
        ds.load_longmemeval(locomo_path)


def test_download_from_file_url(tmp_path, lme_path):
    out = ds.download_official("longmemeval_s", tmp_path, url=lme_path.as_uri())
    assert out == tmp_path / "lme_tiny.json"
    assert ds.load_json(out) == ds.load_json(lme_path)
    assert list(tmp_path.iterdir()) == [out]  # no leftover .part file


def test_download_offline_says_pass_data(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route")

    monkeypatch.setattr(ds.urllib.request, "urlopen", offline)
    with pytest.raises(InputError, match=r"offline\? pass --data PATH"):
        ds.download_official("locomo", tmp_path / "locomo10.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="unknown"):
        ds.download_official("nope", tmp_path)
    assert ds.OFFICIAL_URLS["locomo"].endswith("snap-research/LoCoMo/main/data/locomo10.json")


@pytest.fixture
def q1(lme_path):
    return ds.load_longmemeval(lme_path)[0]


def test_lme_session_corpus_and_gold(q1):
    corpus = ds.lme_corpus(q1, "session")
    # user turns joined by one space; answer_x_2 has evidence only in an assistant turn -> renamed noans
    assert corpus == [("s_a", "I like pizza"), ("answer_x_1", "I bought my bike in Paris thanks"),
                      ("noans_x_2", "nothing here")]
    assert ds.lme_gold(q1, "session") == {"answer_x_1"}


def test_lme_turn_corpus_and_gold(q1):
    # index i counts all turns (assistant included); answer-session user turns without has_answer renamed
    assert [d for d, _ in ds.lme_corpus(q1, "turn")] == ["s_a_1", "answer_x_1_2", "noans_x_1_4", "noans_x_2_1"]
    assert ds.lme_gold(q1, "turn") == {"answer_x_1_2"}
    assert ds.lme_session_of("noans_x_1_4") == "noans_x_1"
    with pytest.raises(InputError):
        ds.lme_corpus(q1, "paragraph")


def test_lme_all_turn_evidence_and_abstention(lme_path):
    q1, q2 = ds.load_longmemeval(lme_path)
    assert ds.lme_all_turn_evidence(q1) == {"answer_x_1_2", "answer_x_1_3", "answer_x_2_2"}
    assert (ds.lme_is_abstention(q1), ds.lme_is_abstention(q2)) == (False, True)


def test_lme_mismatched_haystack(q1):
    q1 = dict(q1, haystack_session_ids=["s_a"])
    with pytest.raises(FormatError, match="q1"):
        ds.lme_corpus(q1, "session")


def test_locomo_questions(locomo_path):
    (sample,) = ds.load_locomo(locomo_path)
    qs = list(ds.locomo_questions(sample))
    assert [q.qid for q in qs] == [f"conv-t:{i}" for i in range(5)]
    assert [q.category_name for q in qs] == ["temporal", "multi-hop", "open-domain", "adversarial", "single-hop"]
    assert qs[0].answer == "2022"  # int converted
    assert qs[1].evidence == ["D1:2", "D2:1"] and qs[1].invalid_evidence == []  # 'D1:2; D2:1' split
    assert qs[2].evidence == [] and not qs[2].has_valid_evidence  # empty list
    assert qs[3].answer == "blue"  # adversarial_answer
    assert qs[3].invalid_evidence == ["D:2:2", "D9:1"] and not qs[3].has_valid_evidence
    assert qs[4].evidence == ["D2:2"] and qs[4].invalid_evidence == ["D2:05"]  # no repair of leading zeros
    assert ds.locomo_dia_ids(sample) == {"D1:1", "D1:2", "D1:3", "D2:1", "D2:2"}
    assert [(n, d[:7]) for n, d, _ in ds.locomo_sessions(sample)] == [(1, "1:56 pm"), (2, "2:00 pm")]


def test_locomo_bad_category(locomo_path):
    (sample,) = ds.load_locomo(locomo_path)
    sample["qa"][0]["category"] = 9
    with pytest.raises(FormatError, match="conv-t:0"):
        list(ds.locomo_questions(sample))
