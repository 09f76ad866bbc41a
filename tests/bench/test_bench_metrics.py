"""Official LongMemEval retrieval metrics on hand-computed cases."""

import math

import pytest

from convmem.bench.metrics import (
    aggregate,
    dcg,
    evaluate_rankings,
    grown_k,
    metrics_at,
    ndcg_any,
    question_metrics,
    recall_all,
    recall_any,
    session_metrics_from_turns,
    turn_to_session_ranking,
)


def test_dcg_positions_one_and_two_weigh_the_same():
    assert dcg([1, 1, 1]) == pytest.approx(1 + 1 + 1 / math.log2(3))
    assert dcg([0, 1]) == pytest.approx(1.0)
    assert dcg([0, 0, 0, 1]) == pytest.approx(0.5)
    assert dcg([]) == 0


def test_ndcg_hand_computed():
    ranked = ["a", "b", "c", "d"]
    assert ndcg_any(ranked, {"c"}, 3) == pytest.approx(1 / math.log2(3))
    assert ndcg_any(ranked, {"b", "d"}, 2) == pytest.approx(1 / 2)  # dcg [0,1] = 1, ideal [1,1] = 2
    assert ndcg_any(ranked, {"b", "d"}, 4) == pytest.approx(1.5 / 2)  # 1 + 1/log2(4), ideal 2
    assert ndcg_any(ranked, {"a"}, 1) == 1.0


def test_ndcg_is_zero_when_ideal_is_zero():
    assert ndcg_any(["a", "b"], set(), 2) == 0.0
    assert ndcg_any(["a", "b"], {"z"}, 2) == 0.0  # gold not in the corpus


def test_recall_any_and_all():
    ranked = ["a", "b", "c"]
    assert recall_any(ranked, {"b", "z"}, 2) == 1.0
    assert recall_all(ranked, {"b", "z"}, 3) == 0.0
    assert recall_all(ranked, {"a", "c"}, 2) == 0.0
    assert recall_all(ranked, {"a", "c"}, 3) == 1.0


def test_no_gold_recall_all_is_one_and_recall_any_zero():
    m = metrics_at(["a", "b"], set(), ks=(1,))
    assert m == {"recall_any@1": 0.0, "recall_all@1": 1.0, "ndcg_any@1": 0.0}


TURNS = ["s1_1", "s1_3", "s2_2", "s1_5", "s3_1", "s2_4"]


def test_turn_to_session_keeps_positions_and_duplicates():
    assert turn_to_session_ranking(TURNS) == ["s1", "s1", "s2", "s1", "s3", "s2"]
    assert turn_to_session_ranking(["x_1"], {"x_1": "X"}) == ["X"]
    assert turn_to_session_ranking(["answer_ab_c_12"]) == ["answer_ab_c"]


def test_grow_k_until_k_distinct_sessions():
    sessions = turn_to_session_ranking(TURNS)
    assert grown_k(sessions, 1) == 1
    assert grown_k(sessions, 2) == 3
    assert grown_k(sessions, 3) == 5
    assert grown_k(sessions, 4) == len(sessions) + 1  # runs out: the whole list


def test_session_metrics_from_turns_use_grown_k():
    m = session_metrics_from_turns(TURNS, {"s3_1"}, ks=(2, 3))
    assert m["recall_any@2"] == 0.0  # top 3 turns hold s1, s2
    assert m["recall_all@3"] == 1.0  # top 5 turns hold s1, s2, s3
    assert m["ndcg_any@3"] == pytest.approx(1 / math.log2(5))


def test_turn_to_session_ndcg_counts_every_turn_of_a_gold_session():
    # official quirk: relevances stay per turn, so s1's three turns make the ideal [1, 1, 1]
    m = session_metrics_from_turns(TURNS, {"s1_1"}, ks=(1, 2))
    assert m["ndcg_any@1"] == 1.0
    assert m["ndcg_any@2"] == pytest.approx(2 / (2 + 1 / math.log2(3)))


def test_question_metrics_levels():
    assert set(question_metrics(["a"], {"a"}, "session", ks=(1,))) == {"session"}
    m = question_metrics(["s1_1", "s2_1"], {"s2_1"}, "turn", ks=(1,))
    assert m["turn"]["recall_any@1"] == 0.0 and m["session"]["recall_any@1"] == 0.0
    with pytest.raises(ValueError):
        question_metrics([], set(), "doc")


def test_aggregate_excludes_abstention_and_groups_by_type():
    questions = [
        {"question_id": "q1", "question_type": "A", "granularity": "session", "ranked_ids": ["g", "x"], "gold": {"g"}},
        {"question_id": "q2", "question_type": "B", "granularity": "session", "ranked_ids": ["x", "g"], "gold": {"g"}},
        {"question_id": "q3_abs", "question_type": "A", "granularity": "session", "ranked_ids": ["x"], "gold": {"g"}},
    ]
    records = evaluate_rankings(questions, ks=(1,))
    assert [r["abstention"] for r in records] == [False, False, True]
    agg = aggregate(records)
    assert (agg["n_questions"], agg["n_scored"], agg["n_abstention"]) == (3, 2, 1)
    assert agg["overall"]["session"]["recall_any@1"] == 0.5
    assert agg["by_type"]["A"] == {"n": 1, "session": {"recall_any@1": 1.0, "recall_all@1": 1.0, "ndcg_any@1": 1.0}}
    assert agg["by_type"]["B"]["session"]["recall_all@1"] == 0.0
    assert "turn" not in agg["overall"]
