"""The choices of the method inside ``FDDLoop``, with small fakes for teacher and student (no
model, no sandbox): the feedback split, which problems each branch expands (every ablation mode
and the budget cap), and the round bookkeeping (D_r = D_{r-1} + accepted)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fdd.config import AugmentationConfig
from fdd.method.loop import FDDLoop
from fdd.reasoning.formats import RationaleFormat
from fdd.runtime.io import read_json, read_jsonl, write_jsonl
from fdd.sandbox import ExecResult
from fdd.teachers.base import Reply, Teacher
from fdd.types import BRANCH_HARDER, BRANCH_SIMILAR, Item, Problem


class FakeTeacher(Teacher):
    """Writes a new question per parent (numbers differ per parent and branch) and ``k`` rationales
    that all give the answer 5; remembers which problems each job got."""

    def __init__(self):
        super().__init__()
        self.asked = {"harder": [], "similar": []}

    def write_rationales(self, problems, k, fmt, first=0):  # first: the index of the first sample asked
        # distinct texts: votes count distinct rationales (fdd.method.verify.vote)
        return [[Reply(f"5 sample{j}") for j in range(first, first + k)] for _ in problems]

    def _new(self, job, problems, n):
        self.asked[job] += [p.id for p in problems]
        return [
            [
                Reply(
                    f"{job} variant {j} of {p.id} with {100 + 10 * i + j} marbles and {len(job)} friends: "
                    "how many marbles does each friend get?"
                )
                for j in range(n)
            ]
            for i, p in enumerate(problems)
        ]

    def write_harder(self, problems, n=1):
        return self._new("harder", problems, n)

    def write_similar(self, problems, n=1):
        return self._new("similar", problems, n)


class FakeFormat(RationaleFormat):
    def extract(self, texts, sandbox=None, progress=False):
        return [ExecResult(float(t.split()[0]), None) for t in texts]


class FakeStudent:
    """Solves exactly the problems whose ids it is given."""

    def __init__(self, solves):
        self.solves = set(solves)

    def rationales(self, problems, checkpoint, desc="", sampling=None):
        # texts FakeFormat reads as numbers: the gold answer when solved, one off it when not
        return [str(p.answer if p.id in self.solves else p.answer + 1) for p in problems]


def _cfg(mode="fdd", budget=None, per_easy=1, per_hard=1):
    aug = AugmentationConfig(  # the schema's defaults for every key the test does not set
        mode=mode,
        budget=budget,
        per_easy=per_easy,
        per_hard=per_hard,
        samples=3,
        min_agree=2,
        dedup_threshold=0.8,
        decontam_ngram=13,
        seed_samples=1,
        adaptive=True,
    )
    return SimpleNamespace(
        augmentation=aug,
        seed=0,
        rounds=3,
        train_subset=None,
        rationale="pot",
        student=SimpleNamespace(continue_from_previous=True),
        # the defaults of FeedbackConfig: one greedy answer per problem it trained on
        feedback=SimpleNamespace(signal="trained", probe_fraction=0.2, samples=1, temperature=0.7, easy_threshold=0.5),
        teacher=SimpleNamespace(max_failed_share=0.1),
    )


def _loop(tmp_path, cfg=None, teacher=None, student=None, eval_sets=None):
    return FDDLoop(
        cfg or _cfg(),
        tmp_path,
        teacher or FakeTeacher(),
        student or FakeStudent(()),
        FakeFormat(),
        None,
        None,
        [],
        eval_sets or {"held": [Problem("t", "an unrelated held out question", 1.0, "s")]},
    )


def _problems(prefix, n):
    return [Problem(f"{prefix}{i}", f"question {prefix}{i}", float(i), "s") for i in range(n)]


def _items(ids, round_idx=0):
    return [
        Item(
            id=i,
            question=f"question {i} about {n + 1} apples",
            answer=float(n + 1),
            source="s",
            rationale=str(n + 1),
            round=round_idx,
        )
        for n, i in enumerate(ids)
    ]


def _ids(ps):
    return [p.id for p in ps]


# ------------------------------------------------------------------ feedback
def test_feedback_calls_solved_problems_easy_and_unsolved_hard(tmp_path):
    write_jsonl(tmp_path / "round_0" / "distill.jsonl", _items(["a", "b", "c", "d"]))
    loop = _loop(tmp_path, student=FakeStudent({"a", "c"}))
    out = tmp_path / "round_1"
    summary = loop.feedback(1, out)
    assert read_json(out / "split.json") == {
        "easy": ["a", "c"],
        "hard": ["b", "d"],
        "solve_rate": {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0},  # one greedy answer: solved or not
    }
    assert (summary["easy"], summary["hard"], summary["easy_ratio"], summary["hard_ratio"]) == (2, 2, 0.5, 0.5)
    assert len(read_jsonl(out / "train_predictions.jsonl")) == 4


def test_feedback_pool_has_one_problem_per_question(tmp_path):
    items = _items(["a"]) + [
        Item(id="a#1", question="question a about 1 apples", answer=1.0, source="s", rationale="1")
    ]
    write_jsonl(tmp_path / "round_0" / "distill.jsonl", items)
    assert _ids(_loop(tmp_path).feedback_pool(1)) == ["a"]


# ------------------------------------------------------------------ choose_targets
@pytest.mark.parametrize(
    "mode, want_easy, want_hard",
    [
        ("fdd", ["e0", "e1", "e2"], ["h0", "h1"]),
        ("none", [], []),
        ("easy_only", ["e0", "e1", "e2"], []),
        ("hard_only", [], ["h0", "h1"]),
    ],
)
def test_choose_targets_by_mode(tmp_path, mode, want_easy, want_hard):
    easy, hard = _loop(tmp_path, _cfg(mode)).choose_targets(1, _problems("e", 3), _problems("h", 2))
    assert (_ids(easy), _ids(hard)) == (want_easy, want_hard)


def test_random_mode_spends_the_fdd_budget_without_looking_at_the_labels(tmp_path):
    easy_in, hard_in = _problems("e", 10), _problems("h", 10)
    loop = _loop(tmp_path, _cfg("random"))
    easy, hard = loop.choose_targets(1, easy_in, hard_in)
    assert len(easy) == 10 and len(hard) == 10 and not set(_ids(easy)) & set(_ids(hard))
    assert set(_ids(easy)) | set(_ids(hard)) == set(_ids(easy_in + hard_in))
    assert set(_ids(easy)) != set(_ids(easy_in))  # drawn from the pool, not the feedback
    assert (_ids(easy), _ids(hard)) == tuple(map(_ids, loop.choose_targets(1, easy_in, hard_in)))  # seeded
    easy, hard = loop.choose_targets(1, _problems("e", 2), _problems("h", 5))
    assert (len(easy), len(hard)) == (2, 5)


def test_the_budget_caps_the_targets_in_proportion(tmp_path):
    easy_in, hard_in = _problems("e", 6), _problems("h", 2)
    easy, hard = _loop(tmp_path, _cfg("fdd", budget=4)).choose_targets(1, easy_in, hard_in)
    assert (len(easy), len(hard)) == (3, 1)
    assert set(_ids(easy)) <= set(_ids(easy_in)) and set(_ids(hard)) <= set(_ids(hard_in))
    easy, hard = _loop(tmp_path, _cfg("fdd", budget=8)).choose_targets(1, easy_in, hard_in)
    assert (len(easy), len(hard)) == (6, 2)  # a budget at the count is no cap


def test_a_problem_is_expanded_at_most_once_per_branch(tmp_path):
    write_jsonl(
        tmp_path / "round_1" / "generated.jsonl",
        [
            {"id": "g1", "question": "q", "parent_id": "e0", "branch": BRANCH_HARDER, "round": 1},
            {"id": "g2", "question": "q", "parent_id": "h0", "branch": BRANCH_SIMILAR, "round": 1},
        ],
    )
    loop = _loop(tmp_path)
    assert loop._expanded(2) == ({"e0"}, {"h0"})
    assert loop._expanded(1) == (set(), set())  # only earlier rounds count
    easy, hard = loop.choose_targets(2, _problems("e", 2), _problems("h", 2))
    assert (_ids(easy), _ids(hard)) == (["e1"], ["h1"])
    # expanded on one branch, still open on the other
    easy, hard = loop.choose_targets(2, [Problem("h0", "q", 1.0, "s")], [Problem("e0", "q", 1.0, "s")])
    assert (_ids(easy), _ids(hard)) == (["h0"], ["e0"])


# ------------------------------------------------------------------ bookkeeping
def test_distill_set_returns_round_r_or_the_last_round_before_it(tmp_path):
    write_jsonl(tmp_path / "round_0" / "distill.jsonl", _items(["a"]))
    write_jsonl(tmp_path / "round_1" / "distill.jsonl", _items(["a", "b"]))
    loop = _loop(tmp_path)
    assert [_ids(loop.distill_set(r)) for r in (0, 1, 2)] == [["a"], ["a", "b"], ["a", "b"]]
    with pytest.raises(FileNotFoundError):
        _loop(tmp_path / "empty").distill_set(0)


def test_augment_sends_easy_problems_to_harder_and_hard_to_similar_and_appends_to_the_set(tmp_path):
    write_jsonl(tmp_path / "round_0" / "distill.jsonl", _items(["a", "b", "c"]))
    teacher = FakeTeacher()
    loop = _loop(tmp_path, cfg=_cfg(per_easy=2, per_hard=1), teacher=teacher, student=FakeStudent({"a"}))
    out = tmp_path / "round_1"
    loop.feedback(1, out)
    summary = loop.augment(1, out)
    assert teacher.asked == {"harder": ["a"], "similar": ["b", "c"]}
    generated = read_jsonl(out / "generated.jsonl")
    assert sorted((g["parent_id"], g["branch"]) for g in generated) == [
        ("a", BRANCH_HARDER),
        ("a", BRANCH_HARDER),
        ("b", BRANCH_SIMILAR),
        ("c", BRANCH_SIMILAR),
    ]
    d0, d1 = loop.distill_set(0), read_jsonl(out / "distill.jsonl", Item)
    new = d1[len(d0) :]
    assert [i.to_dict() for i in d1[: len(d0)]] == [i.to_dict() for i in d0]  # D_1 = D_0 + accepted
    assert len(new) == 4 and all(i.round == 1 and i.answer == 5.0 for i in new)
    assert sorted((i.parent_id, i.branch) for i in new) == [
        ("a", BRANCH_HARDER),
        ("a", BRANCH_HARDER),
        ("b", BRANCH_SIMILAR),
        ("c", BRANCH_SIMILAR),
    ]
    assert summary["accepted"] == 4 and summary["distill_size"] == 7 and summary["generated"] == 4
    assert summary["asked_harder"] == 1 and summary["asked_similar"] == 2


def test_augment_screens_candidates_against_known_and_held_out_problems(tmp_path):
    write_jsonl(tmp_path / "round_0" / "distill.jsonl", _items(["a", "b"]))
    teacher = FakeTeacher()
    held = teacher._new("harder", [Problem("a", "", 1.0, "s")], 1)[0][0].text  # what it will write for a
    teacher.asked["harder"].clear()
    known = _items(["a", "b"])[1].question
    teacher.write_similar = lambda problems, n=1: [[Reply(known)] for _ in problems]  # b's own question
    cfg = _cfg()
    cfg.augmentation.decontam_ngram = 5
    loop = _loop(
        tmp_path,
        cfg=cfg,
        teacher=teacher,
        student=FakeStudent({"a"}),
        eval_sets={"held": [Problem("t", held, 1.0, "s")]},
    )
    out = tmp_path / "round_1"
    loop.feedback(1, out)
    summary = loop.augment(1, out)
    assert summary["rejected_by_reason"] == {"contaminated": 1, "duplicate": 1} and summary["accepted"] == 0
    assert sorted((r["parent_id"], r["reason"]) for r in read_jsonl(out / "rejected.jsonl")) == [
        ("a", "contaminated"),
        ("b", "duplicate"),
    ]
    assert len(read_jsonl(out / "distill.jsonl")) == 2
