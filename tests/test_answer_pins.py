"""Answer-normaliser rules the mutation check found unpinned: the last ``\\boxed{}`` is the
answer, and a boolean is never a number."""

from __future__ import annotations

from fdd.reasoning.answer import answers_match, last_number, parse_number, to_float


def test_the_last_boxed_answer_wins():
    assert parse_number(r"\boxed{1} so \boxed{2}") == 2.0
    assert last_number(r"first \boxed{3}, finally \boxed{4}.") == 4.0


def test_booleans_are_not_numbers():
    assert to_float(True) is None and to_float(False) is None
    assert to_float(1) == 1.0 and to_float(0) == 0.0
    assert not answers_match(True, 1.0)
