"""The acceptance rules of ``fdd.method.verify``, one rule at a time (fast; no teacher, no sandbox)."""

from __future__ import annotations

import pytest

from fdd.method.verify import Candidate, DedupIndex, NgramIndex, accept_by_agreement, ngrams, screen, verify_seed
from fdd.sandbox import ExecResult
from fdd.teachers.base import Reply
from fdd.types import Problem


def _cand(q: str, parent: str = "p", branch: str = "easy-harder") -> Candidate:
    return Candidate(q, parent, branch, "synthetic")


def _votes(*values):
    """Replies and extracted answers for one candidate: a value per rationale (None = no answer)."""
    reps = [Reply(f"answer = {v}") for v in values]
    ans = [ExecResult(v, None) if v is not None else ExecResult(None, "error", "boom") for v in values]
    return reps, ans


# ------------------------------------------------------------------ agreement
def test_exactly_min_agree_agreeing_rationales_are_enough():
    reps, ans = _votes(7.0, 7.0, 3.0)
    items, rejected = accept_by_agreement([_cand("q one")], [reps], [ans], min_agree=2, round_idx=3)
    assert rejected == [] and len(items) == 1
    assert items[0].answer == 7.0 and items[0].rationale == "answer = 7.0" and items[0].round == 3
    assert items[0].parent_id == "p" and items[0].branch == "easy-harder"


def test_one_vote_short_of_min_agree_is_rejected_as_no_agreement():
    reps, ans = _votes(7.0, 5.0, 3.0)
    items, rejected = accept_by_agreement([_cand("q one")], [reps], [ans], min_agree=2, round_idx=1)
    assert items == [] and [r.reason for r in rejected] == ["no_agreement"]
    assert "votes=[1, 1, 1]" in rejected[0].detail


def test_min_agree_one_accepts_a_single_rationale():
    reps, ans = _votes(4.0)
    items, _ = accept_by_agreement([_cand("q one")], [reps], [ans], min_agree=1, round_idx=1)
    assert [i.answer for i in items] == [4.0]


def test_the_majority_answer_wins_not_the_first():
    reps, ans = _votes(1.0, 9.0, 9.0)
    items, _ = accept_by_agreement([_cand("q one")], [reps], [ans], min_agree=2, round_idx=1)
    assert items[0].answer == 9.0 and items[0].rationale == "answer = 9.0"


def test_failed_rationales_do_not_vote_and_name_the_reason():
    reps, ans = _votes(None, None, 2.0)
    reps[0] = Reply(None, error="request_failed: 500")
    items, rejected = accept_by_agreement([_cand("q one")], [reps], [ans], min_agree=2, round_idx=1)
    assert items == [] and rejected[0].reason == "no_agreement"
    assert "request_failed: 500=1" in rejected[0].detail and "rationale_error=1" in rejected[0].detail
    items, rejected = accept_by_agreement([_cand("q one")], [reps[:2]], [ans[:2]], min_agree=1, round_idx=1)
    assert items == [] and rejected[0].reason in {"request_failed: 500", "rationale_error"}


# ------------------------------------------------------------------ seed verification
def test_seed_keeps_rationales_matching_gold_and_names_why_others_went():
    good = Problem("a", "Ann has 2 apples", 2.0, "s")
    bad = Problem("b", "Bob has 3 pears", 3.0, "s")
    reps_a, ans_a = _votes(2.0, 5.0)
    reps_b, ans_b = _votes(4.0, 4.0)
    items, rejected = verify_seed([good, bad], [reps_a, reps_b], [ans_a, ans_b], max_keep=1)
    assert [(i.id, i.answer, i.branch, i.round) for i in items] == [("a", 2.0, "seed", 0)]
    assert [(r.id, r.reason) for r in rejected] == [("b", "wrong_answer")]


def test_seed_max_keep_keeps_distinct_rationales_with_their_own_ids():
    p = Problem("a", "Ann has 2 apples", 2.0, "s")
    reps = [Reply("answer = 2"), Reply("answer = 1 + 1"), Reply("answer = 2")]
    ans = [ExecResult(2.0, None)] * 3
    items, _ = verify_seed([p], [reps], [ans], max_keep=2)
    assert [i.id for i in items] == ["a#0", "a#1"] and {i.problem_id for i in items} == {"a"}
    items, _ = verify_seed([p], [reps], [ans], max_keep=1)
    assert [i.id for i in items] == ["a"]


# ------------------------------------------------------------------ near-duplicates
def test_near_duplicate_is_caught_and_a_different_problem_with_the_same_numbers_is_not():
    idx = DedupIndex(threshold=0.8)
    idx.add("Ann buys 3 apples for 2 dollars each. How much does she pay?")
    assert idx.is_duplicate("Ann buys 3 apples for 2 dollars each. How much does she pay?")
    assert idx.is_duplicate("ann buys 3 apples for 2 dollars each  how much does she pay")
    # same numbers, other words: below the threshold
    assert not idx.is_duplicate("A train runs 3 hours at 2 miles per hour; what distance is covered?")
    # same words, other numbers: another block
    assert not idx.is_duplicate("Ann buys 4 apples for 2 dollars each. How much does she pay?")


def test_dedup_threshold_is_inclusive_and_a_bound():
    a = "1 one two three four five"
    b = "1 one two three"  # its two 3-grams are 2 of a's 4: Jaccard = 0.5
    idx = DedupIndex(threshold=0.5)
    idx.add(a)
    assert idx.is_duplicate(b)
    strict = DedupIndex(threshold=0.51)
    strict.add(a)
    assert not strict.is_duplicate(b)


# ------------------------------------------------------------------ decontamination
def test_ngrams_cover_the_whole_text():
    assert list(ngrams(["a", "b", "c"], 3)) == [("a", "b", "c")]
    assert list(ngrams(["a", "b", "c", "d"], 3)) == [("a", "b", "c"), ("b", "c", "d")]
    assert list(ngrams(["a", "b"], 3)) == []


def test_contamination_fires_on_exactly_n_shared_words_and_not_fewer():
    held_out = ["the red fox jumps over the lazy dog today"]
    idx = NgramIndex(held_out, n=4)
    assert idx.overlaps("the red fox jumps")  # a text of exactly n words
    assert idx.overlaps("Tom saw that the lazy dog today was asleep")  # shares "the lazy dog today"
    assert not idx.overlaps("Tom saw the lazy dog yesterday")  # shares only 3 words
    assert NgramIndex(held_out, n=13).overlaps(held_out[0]) is False  # shorter than n: nothing to share


def test_screen_rejects_contaminated_and_duplicate_candidates_with_reasons():
    dedup = DedupIndex(0.8)
    dedup.add("Ann buys 3 apples for 2 dollars each. How much does she pay?")
    contamination = NgramIndex(["Sam reads 12 pages a day for 5 days in a row"], n=5)
    cands = [
        _cand("Ann buys 3 apples for 2 dollars each. How much does she pay?"),
        _cand("If Sam reads 12 pages a day for a week, how many?"),
        _cand("Kira bakes 6 cakes and sells 4 of them at a fair."),
    ]
    kept, rejected = screen(cands, dedup, contamination)
    assert [c.question for c in kept] == [cands[2].question]
    assert [r.reason for r in rejected] == ["duplicate", "contaminated"]
    assert all(r.parent_id == "p" and r.question for r in rejected)


def test_screen_adds_survivors_to_the_dedup_index():
    dedup = DedupIndex(0.8)
    q = "Kira bakes 6 cakes and sells 4 of them at a fair."
    kept, rejected = screen([_cand(q, "p1"), _cand(q, "p2")], dedup, None)
    assert [c.parent_id for c in kept] == ["p1"] and [r.reason for r in rejected] == ["duplicate"]
    assert dedup.is_duplicate(q)


# ------------------------------------------------------------------ new problems worth a rationale (issue 22)
PARENT = (
    "Megan bought a shirt that originally cost $22. She paid $16 after a discount. "
    "How much was the discount, in dollars?"
)


def _new(q: str, branch: str) -> Candidate:
    return Candidate(q, "p", branch, "gsm8k", parent_question=PARENT)


def test_a_reworded_copy_of_the_parent_is_refused():
    from fdd.method.verify import problem_defect

    copy = "Megan purchased a shirt whose original price was $22 and paid only $16. What was the discount?"
    reason, detail = problem_defect(_new(copy, "hard-similar"))
    assert reason == "reworded_copy" and "100% of its numbers from the parent" in detail
    # one number changed, same story: still a restatement
    near = "Megan bought a shirt that originally cost $25. She paid $16 after a discount. How much was the discount?"
    assert problem_defect(_new(near, "hard-similar"))[0] == "reworded_copy"
    # harder: the parent's numbers and nothing new
    assert problem_defect(_new(copy, "easy-harder"))[0] == "reworded_copy"


def test_new_scenarios_and_harder_versions_pass():
    from fdd.method.verify import problem_defect

    fresh = "A baker sells 48 muffins in the morning and 35 in the afternoon. How many muffins did he sell in all?"
    assert problem_defect(_new(fresh, "hard-similar")) is None
    harder = PARENT[:-1] + " She then buys 3 socks at $2 each. How much did she spend in all?"
    assert problem_defect(_new(harder, "easy-harder")) is None  # new numbers: a new step
    # the simulator's similar problems: the template's words, fresh numbers
    assert problem_defect(_new(PARENT.replace("22", "41").replace("16", "30"), "hard-similar")) is None


@pytest.mark.parametrize(
    "q, why",
    [
        ("Megan buys some shirts and socks. How much does she spend on them altogether?", "no number"),
        ("Megan buys 3 shirts at $12 each and 2 pairs of socks at $4 each.", "no question"),
        ("What is 3 + 4?", "only 4 words"),
    ],
)
def test_ill_posed_problems_are_refused(q, why):
    from fdd.method.verify import problem_defect

    reason, detail = problem_defect(_new(q, "hard-similar"))
    assert reason == "ill_posed" and why in detail


def test_screen_checks_problems_only_when_asked():
    bad = _new("Megan buys 3 shirts at $12 each and 2 pairs of socks at $4 each.", "hard-similar")
    kept, rejected = screen([bad], DedupIndex(0.9), None)
    assert kept == [bad]
    kept, rejected = screen([bad], DedupIndex(0.9), None, max_parent_overlap=0.5, check_problems=True)
    assert kept == [] and rejected[0].reason == "ill_posed" and rejected[0].detail == "no question in the problem"
