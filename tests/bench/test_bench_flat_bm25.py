"""The paper's flat-bm25 baseline on the hand-written fixture."""

import os

import pytest

pytest.importorskip("rank_bm25")

from convmem.bench import flat_bm25  # noqa: E402
from convmem.bench.datasets import load_longmemeval  # noqa: E402


def test_tokenize_splits_on_single_spaces_only():
    assert flat_bm25.tokenize("Hi  there, You") == ["Hi", "", "there,", "You"]


def test_rank_docs_is_case_and_punctuation_sensitive_with_fixed_ties():
    docs = ["a Bike,", "the bike", "x"]
    # only doc 1 holds the token 'bike'; the tied zero scores come later-in-corpus first
    assert flat_bm25.rank_docs("bike", docs) == [1, 2, 0]
    assert flat_bm25.rank_docs("bike", []) == []


def test_words_baseline_ignores_case_and_punctuation():
    assert flat_bm25.tokenize_words("Hi  there, You") == ["hi", "there", "you"]
    # 'a Bike,' matches too now
    assert set(flat_bm25.rank_docs("bike", ["a Bike,", "the bike", "x"], "flat-bm25-words")[:2]) == {0, 1}


def test_rank_on_fixture(lme_path):
    q1 = load_longmemeval(lme_path)[0]
    assert flat_bm25.rank(q1, "session")[0] == "answer_x_1"
    ranked = flat_bm25.rank(q1, "turn")
    assert ranked[0] == "answer_x_1_2"
    assert sorted(ranked) == ["answer_x_1_2", "noans_x_1_4", "noans_x_2_1", "s_a_1"]


def test_flat_bm25_longmemeval_on_fixture(lme_path):
    res = flat_bm25.flat_bm25_longmemeval(lme_path, ks=(1, 3))
    assert (res["session"]["n_scored"], res["session"]["n_abstention"]) == (1, 1)
    assert set(res["turn"]["overall"]) == {"turn", "session"}
    assert res["session"]["overall"]["session"]["recall_all@1"] == 1.0
    assert res["turn"]["overall"]["turn"]["ndcg_any@3"] == 1.0
    assert list(res["turn"]["by_type"]) == ["single-session-user"]


REFERENCE = os.environ.get("CONVMEM_LME_S_DEV")  # path to longmemeval_s_dev.json.gz; opt-in, slow (~15 s)


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE, reason="set CONVMEM_LME_S_DEV to the LongMemEval_S dev file")
def test_reproduces_reference_figures():
    res = flat_bm25.flat_bm25_longmemeval(REFERENCE)
    s, t = res["session"]["overall"]["session"], res["turn"]["overall"]["turn"]
    assert res["session"]["n_scored"] == 250
    assert [round(s[k], 4) for k in ("recall_all@5", "ndcg_any@5", "recall_all@10")] == [0.7640, 0.6883, 0.8440]
    assert [round(t[k], 4) for k in ("recall_all@10", "ndcg_any@10")] == [0.6440, 0.5116]
