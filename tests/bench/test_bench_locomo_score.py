"""Official LoCoMo QA F1: normalisation and the category rules."""

import pytest

pytest.importorskip("nltk")

from convmem.bench.locomo_score import (  # noqa: E402
    aggregate_qa,
    f1_score,
    multi_hop_f1,
    normalize_answer,
    qa_score,
    stem_tokens,
)
from convmem.errors import InputError  # noqa: E402


def test_normalize_answer():
    assert normalize_answer("The Cat, and a DOG's toy!") == "cat dogs toy"
    assert normalize_answer("banana  Andes theory") == "banana andes theory"  # whole words only
    assert normalize_answer("1,000 km") == "1000 km"


def test_porter_stemming():
    assert stem_tokens("Running in the parks") == ["run", "in", "park"]


def test_f1_score():
    assert f1_score("She was running", "running") == pytest.approx(0.5)  # ['she', 'wa', 'run'] vs ['run']
    assert f1_score("the", "a") == 0.0  # nothing left after normalisation
    assert f1_score("blue blue", "blue") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_multi_hop_category_1():
    assert multi_hop_f1("Paris, Rome", "Paris, London") == pytest.approx(0.5)
    assert qa_score("London Paris", "Paris, London", 1) == pytest.approx(2 / 3)  # each gold part: p=1/2, r=1


def test_plain_f1_categories_2_and_4_do_not_split():
    assert qa_score("London Paris", "Paris, London", 4) == 1.0
    assert qa_score("It was 2022", 2022, 2) == pytest.approx(0.5)  # integer gold answer


def test_open_domain_category_3_cuts_gold_at_first_semicolon():
    assert qa_score("hiking", "hiking; camping", 3) == 1.0
    assert qa_score("camping", "hiking; camping", 3) == 0.0


def test_adversarial_category_5():
    assert qa_score("Not mentioned in the conversation", "blue", 5) == 1.0
    assert qa_score("No information available.", "", 5) == 1.0
    assert qa_score("blue", "blue", 5) == 0.0


def test_bad_category():
    with pytest.raises(InputError):
        qa_score("x", "y", 6)


def test_aggregate_qa_by_official_names():
    agg = aggregate_qa([(1, 1.0), (1, 0.0), (5, 1.0)])
    assert agg["n"] == 3 and agg["overall"] == pytest.approx(2 / 3)
    assert agg["by_category"] == {"multi-hop": {"n": 2, "mean": 0.5}, "adversarial": {"n": 1, "mean": 1.0}}
