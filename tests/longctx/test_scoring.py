from __future__ import annotations

import pytest

from convmem.errors import NotFound
from convmem.longctx.scoring import SCORERS, last_boxed, parse_order, score


def test_string_match_all_and_part():
    assert score("string_match_all", "found 123 and 456", ["123", "456", "789"]) == pytest.approx(2 / 3)
    assert score("string_match_all", "nothing", ["123"]) == 0.0
    assert score("string_match_all", "ABC", ["abc"]) == 1.0
    assert score("string_match_part", "only 456", ["123", "456"]) == 1.0
    assert score("string_match_part", "none", ["123", "456"]) == 0.0


def test_boxed():
    assert last_boxed(r"first \boxed{A} then \boxed{B {x}}") == "B {x}"
    assert last_boxed("no box") is None
    assert score("boxed_match", r"The answer is \boxed{ Mary Smith }.", ["Mary Smith"]) == 1.0
    assert score("boxed_match", r"\boxed{'mary smith'}", ["Mary Smith"]) == 1.0
    assert score("boxed_match", "Mary Smith", ["Mary Smith"]) == 0.0
    assert score("boxed_match", r"\boxed{Mary}", ["Mary Smith"]) == 0.0


def test_tsort():
    assert parse_order("Answer: [2, 1, 4, 3]") == [2, 1, 4, 3]
    assert parse_order("Answer: 2 1 4 3") == [2, 1, 4, 3]
    assert score("tsort_exact", "I think Answer: [2, 1, 4, 3]", ["[2, 1, 4, 3]"]) == 1.0
    assert score("tsort_exact", "Answer: [1, 2, 4, 3]", ["[2, 1, 4, 3]"]) == 0.0
    assert score("tsort_exact", "no idea", ["[2, 1, 4, 3]"]) == 0.0


def test_label():
    assert score("label_match", "Answer: A12", ["A12"]) == 1.0
    assert score("label_match", "A1", ["A12"]) == 0.0


def test_unknown():
    assert set(SCORERS) >= {"string_match_all", "string_match_part", "boxed_match", "tsort_exact"}
    with pytest.raises(NotFound):
        score("nope", "", [])
