"""Adaptive agreement sampling: fewer rationale requests, the same acceptance decisions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fdd.method.agreement import collect_rationales
from fdd.method.verify import Candidate, accept_by_agreement
from fdd.sandbox import ExecResult
from fdd.teachers.base import Reply
from fdd.types import Problem


class ScriptedTeacher:
    """Sample ``j`` of problem ``p`` answers ``script[p.id][j]`` (None = a failed request)."""

    def __init__(self, script):
        self.script, self.asked = script, []

    def write_rationales(self, problems, k, fmt, first=0):
        out = []
        for p in problems:
            self.asked += [(p.id, j) for j in range(first, first + k)]
            out.append(
                [
                    Reply(None, error="request_failed: 500")
                    if self.script[p.id][j] is None
                    else Reply(f"answer = {self.script[p.id][j]}  # sample {j}")
                    for j in range(first, first + k)
                ]
            )
        return out


def extract(replies):
    return [
        [ExecResult(float(r.text.split("=")[1].split("#")[0]), None) if r.ok else None for r in reps]
        for reps in replies
    ]


def problems(n):
    return [Problem(f"p{i}", f"question {i}", None, "test") for i in range(n)]


def run(script, samples, min_agree, adaptive):
    ps = problems(len(script))
    t = ScriptedTeacher({p.id: s for p, s in zip(ps, script)})
    replies, answers = collect_rationales(t.write_rationales, ps, samples, min_agree, "pot", extract, adaptive=adaptive)
    cands = [Candidate(p.question, "parent", "hard-similar", "test") for p in ps]
    items, rejected = accept_by_agreement(cands, replies, answers, min_agree, 1)
    return t.asked, [(i.question, i.answer, i.rationale) for i in items], sorted(r.question for r in rejected)


def test_agreeing_pair_stops_after_min_agree():
    asked, items, _ = run([[5, 5, 7]], samples=3, min_agree=2, adaptive=True)
    assert asked == [("p0", 0), ("p0", 1)]
    assert items == [("question 0", 5.0, "answer = 5  # sample 0")]


def test_disagreeing_pair_asks_the_third_sample_only():
    asked, items, _ = run([[5, 7, 7]], samples=3, min_agree=2, adaptive=True)
    assert asked == [("p0", 0), ("p0", 1), ("p0", 2)]
    assert items == [("question 0", 7.0, "answer = 7  # sample 1")]


def test_unreachable_agreement_asks_no_more():
    # samples=4, min_agree=3: after 1, 2, 3 nothing can reach 3 votes with one sample left.
    asked, items, rejected = run([[1, 2, 3, 3]], samples=4, min_agree=3, adaptive=True)
    assert asked == [("p0", 0), ("p0", 1), ("p0", 2)]
    assert items == [] and rejected == ["question 0"]


def test_asks_only_what_the_leader_still_needs():
    # samples=5, min_agree=3: 4, 4, 6 -> the leader needs one more vote, so one sample is asked.
    asked, items, _ = run([[4, 4, 6, 4, 9]], samples=5, min_agree=3, adaptive=True)
    assert asked == [("p0", j) for j in range(4)]
    assert [i[1] for i in items] == [4.0]


def test_fixed_sampling_asks_everything():
    asked, _, _ = run([[5, 5, 7], [1, 2, 3]], samples=3, min_agree=2, adaptive=False)
    assert len(asked) == 6


answer = st.one_of(st.none(), st.integers(0, 3))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda samples: st.tuples(
            st.just(samples),
            st.integers(1, samples),
            st.lists(st.lists(answer, min_size=samples, max_size=samples), min_size=1, max_size=5),
        )
    )
)
def test_same_decisions_as_fixed_sampling(case):
    samples, min_agree, script = case
    asked_a, items_a, rejected_a = run(script, samples, min_agree, adaptive=True)
    asked_f, items_f, rejected_f = run(script, samples, min_agree, adaptive=False)
    assert len(set(asked_a)) == len(asked_a) <= len(asked_f)  # no sample asked twice, never more
    assert rejected_a == rejected_f
    if samples < 2 * min_agree:  # only one answer can reach min_agree: identical items
        assert items_a == items_f
    else:  # the first answer to reach min_agree wins; it did reach it under fixed sampling too
        assert [i[0] for i in items_a] == [i[0] for i in items_f]


@pytest.mark.parametrize("error_rate,saving", [(0.1, 0.25), (0.3, 0.15)])
def test_oracle_world_saves_requests(error_rate, saving):
    """On the synthetic world, adaptive sampling buys fewer rationales per accepted item than
    fixed samples=3 (>= 25% at the simulator's 10% error rate; the saving shrinks as more first
    pairs disagree) and accepts the same items."""
    from fdd.reasoning.formats import get_format
    from fdd.sandbox import Sandbox
    from fdd.sim import world as synthetic
    from fdd.sim.oracle import OracleTeacher

    ps = synthetic.generate(120, seed=3, split="train")
    cands = [Candidate(p.question, p.id, "hard-similar", p.source, dict(p.meta)) for p in ps]
    fmt = get_format("pot")
    with Sandbox(workers=1, timeout_s=2.0, memory_mb=256) as sandbox:

        def ext(replies):
            return fmt.extract_replies(replies, sandbox)

        out = {}
        for adaptive in (False, True):
            teacher = OracleTeacher(SimpleNamespace(error_rate=error_rate), seed=0)
            replies, answers = collect_rationales(
                teacher.write_rationales, [c.problem() for c in cands], 3, 2, "pot", ext, adaptive
            )
            items, _ = accept_by_agreement(cands, replies, answers, 2, 1)
            out[adaptive] = (teacher.usage.total("requests"), [(i.question, i.answer, i.rationale) for i in items])
    (fixed_req, fixed_items), (adapt_req, adapt_items) = out[False], out[True]
    assert adapt_items == fixed_items and len(fixed_items) >= 0.9 * len(ps) * (1 - error_rate) ** 2
    assert adapt_req / len(adapt_items) <= (1 - saving) * fixed_req / len(fixed_items)


# ---- seed retries and distinct votes (issue 22) ---------------------------------------------------


def test_seed_retries_ask_again_only_for_problems_not_yet_solved():
    from fdd.method.agreement import collect_seed_rationales

    ps = [Problem(f"p{i}", f"question {i}", 5.0, "test") for i in range(3)]
    # p0 right at once, p1 on its third sample, p2 never (and one request of it fails)
    t = ScriptedTeacher({"p0": [5, 9, 9, 9], "p1": [4, None, 5, 9], "p2": [1, 2, None, 3]})
    replies, answers = collect_seed_rationales(t.write_rationales, ps, 1, 3, "pot", extract)
    assert t.asked == [("p0", 0), ("p1", 0), ("p2", 0), ("p1", 1), ("p2", 1), ("p1", 2), ("p2", 2), ("p2", 3)]
    assert [len(r) for r in replies] == [1, 3, 4] and [len(a) for a in answers] == [1, 3, 4]
    t0 = ScriptedTeacher({"p0": [5], "p1": [4], "p2": [1]})
    assert [len(r) for r in collect_seed_rationales(t0.write_rationales, ps, 1, 0, "pot", extract)[0]] == [1, 1, 1]


def test_two_copies_of_one_wrong_program_do_not_outvote_the_truth():
    wrong = "def solution():\n    apples = 3\n    return apples * 2\n"
    copy = "def solution():\n    # the same program, renamed and commented\n    n = 3\n    return n * 2\n"
    right = "def solution():\n    apples = 3\n    return apples * 3\n"
    reps = [Reply(wrong), Reply(copy), Reply(right)]
    ans = [ExecResult(6.0, None), ExecResult(6.0, None), ExecResult(9.0, None)]
    cand = [Candidate("q", "parent", "hard-similar", "test")]
    accepted, _ = accept_by_agreement(cand, [reps], [ans], 2, 1, distinct=False)
    assert [i.answer for i in accepted] == [6.0]  # answers alone: the copies win
    accepted, rejected = accept_by_agreement(cand, [reps], [ans], 2, 1, distinct=True)
    assert accepted == [] and rejected[0].reason == "no_agreement" and "duplicate_vote=1" in rejected[0].detail
    other = "def solution():\n    apples = 3\n    total = apples + apples\n    return total\n"  # 6, another way
    accepted, _ = accept_by_agreement(cand, [reps + [Reply(other)]], [ans + [ExecResult(6.0, None)]], 2, 1, True)
    assert [i.answer for i in accepted] == [6.0] and accepted[0].rationale == wrong


class _LLM(ScriptedTeacher):
    def by_rule(self, role):
        return False


def test_distinct_votes_and_problem_screening_follow_the_teacher_unless_set():
    from fdd.config import AugmentationConfig
    from fdd.method.loop import FDDLoop
    from fdd.sim.oracle import OracleTeacher
    from fdd.teachers.roles import RoleTeacher

    oracle, llm = OracleTeacher(SimpleNamespace(error_rate=0.0)), _LLM({})
    for rule in (FDDLoop.distinct_votes.fget, FDDLoop.screen_problems.fget):
        assert rule(SimpleNamespace(aug=AugmentationConfig(), teacher=oracle)) is False  # written by rule
        assert rule(SimpleNamespace(aug=AugmentationConfig(), teacher=llm)) is True  # free text
    on, off = (
        AugmentationConfig(distinct_votes=True, screen_problems=True),
        AugmentationConfig(distinct_votes=False, screen_problems=False),
    )
    for rule in (FDDLoop.distinct_votes.fget, FDDLoop.screen_problems.fget):
        assert rule(SimpleNamespace(aug=on, teacher=oracle)) is True
        assert rule(SimpleNamespace(aug=off, teacher=llm)) is False
    # roles: the new problems' rationale writer casts the votes; the problem writers' problems are screened
    mixed = RoleTeacher({"rationale": oracle, "new_rationale": llm, "harder": oracle, "similar": oracle}, {})
    assert FDDLoop.distinct_votes.fget(SimpleNamespace(aug=AugmentationConfig(), teacher=mixed)) is True
    assert FDDLoop.screen_problems.fget(SimpleNamespace(aug=AugmentationConfig(), teacher=mixed)) is False


def test_seed_retries_stop_when_a_whole_wave_failed():
    """An outage is not a hard problem: retrying every seed problem against a dead server only
    delays the stage's failure check (found in review)."""
    from fdd.method.agreement import collect_seed_rationales

    ps = [Problem(f"p{i}", f"question {i}", 5.0, "test") for i in range(2)]
    t = ScriptedTeacher({"p0": [1, None, 5, 5], "p1": [2, None, 5, 5]})
    replies, _ = collect_seed_rationales(t.write_rationales, ps, 1, 3, "pot", extract)
    assert [len(r) for r in replies] == [2, 2] and len(t.asked) == 4  # wave 1 failed whole: no wave 2
