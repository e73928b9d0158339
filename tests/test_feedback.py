"""Feedback signals (trained / probe / sampled solve rate) and synthetic-world scenarios."""

from __future__ import annotations

from collections import Counter

import pytest

from fdd.config import ConfigError, validate
from fdd.method.feedback import probe_ids, split
from fdd.method.loop import FDDLoop
from fdd.reasoning.formats import get_format
from fdd.runtime.io import read_json, read_jsonl
from fdd.sandbox import Sandbox
from fdd.sim import world as synthetic
from fdd.teachers import build_teacher
from fdd.types import Prediction, Problem


def problems(n):
    return [Problem(f"p{i}", f"q{i}", 1.0, "t") for i in range(n)]


def test_probe_slice_is_seeded_sized_and_rotates():
    pool = problems(50)
    a = probe_ids(pool, 0.2, seed=0, round_idx=1)
    assert a == probe_ids(list(reversed(pool)), 0.2, seed=0, round_idx=1)  # order of the pool does not matter
    assert len(a) == 10 and a <= {p.id for p in pool}
    assert a != probe_ids(pool, 0.2, seed=0, round_idx=2) and a != probe_ids(pool, 0.2, seed=1, round_idx=1)
    assert len(probe_ids(problems(2), 0.1, 0, 1)) == 1  # never empty


def preds(pattern):
    return [Prediction(f"p{i}", "", None, 1.0, correct=c) for i, c in enumerate(pattern)]


def test_greedy_split_solved_is_easy():
    easy, hard, rate = split(problems(3), preds([True, False, True]), samples=1, threshold=0.5)
    assert easy == ["p0", "p2"] and hard == ["p1"] and rate == {"p0": 1.0, "p1": 0.0, "p2": 1.0}


def test_solve_rate_split_uses_the_threshold():
    ps = problems(3)
    # 4 samples each, problem by problem: p0 3/4, p1 1/4, p2 2/4
    pattern = [True, True, True, False, False, True, False, False, True, False, True, False]
    answers = [Prediction(p.id, "", None, 1.0, correct=c) for p, c in zip([p for p in ps for _ in range(4)], pattern)]
    easy, hard, rate = split(ps, answers, samples=4, threshold=0.5)
    assert rate == {"p0": 0.75, "p1": 0.25, "p2": 0.5}
    assert easy == ["p0", "p2"] and hard == ["p1"]
    assert split(ps, answers, samples=4, threshold=0.75)[0] == ["p0"]


class FakeStudent:
    """Records what it trains on and what it is asked; solves problems whose id hash is even."""

    def __init__(self):
        self.trained, self.asked, self.sampling = {}, {}, {}

    def fit(self, items, out_dir, state_dir, init_from=None, round_idx=1, loggers=()):
        self.trained[round_idx] = [it.problem_id for it in items]
        return {"train_loss": 1.0}

    def rationales(self, problems, ckpt_dir, desc="answer", sampling=None):
        r = int(ckpt_dir.split("round_")[1].split("/")[0])
        if desc == "feedback":
            self.asked[r], self.sampling[r] = [p.id for p in problems], sampling
        # programs the loop grades: the gold answer, or one off it
        return [f"answer = {p.answer!r}" if hash(p.id) % 2 == 0 else f"answer = {p.answer!r} + 1" for p in problems]


class FakeTracker:
    def __init__(self):
        self.rows = []

    def log_round(self, r, row):
        self.rows.append(row)


def run_loop(tiny_cfg, tmp_path, *overrides):
    obj = validate(tiny_cfg("augmentation.budget=10", *overrides))
    from fdd.data import load_problems

    train, evals = load_problems(obj)
    student = FakeStudent()
    with (
        Sandbox(workers=1, timeout_s=2.0, memory_mb=256) as sandbox,
        build_teacher(obj.teacher, cache_dir=str(tmp_path / "cache"), seed=obj.seed) as teacher,
    ):
        loop = FDDLoop(obj, tmp_path / "run", teacher, student, get_format("pot"), sandbox, FakeTracker(), train, evals)
        loop.run()
    return loop, student


def test_trained_signal_answers_what_it_trained_on(tiny_cfg, tmp_path):
    loop, st = run_loop(tiny_cfg, tmp_path)
    assert set(st.asked[1]) == set(st.trained[1]) and st.sampling[1] is None


def test_probe_signal_holds_the_slice_out_of_training(tiny_cfg, tmp_path):
    loop, st = run_loop(tiny_cfg, tmp_path, "feedback=probe", "feedback.probe_fraction=0.25")
    probe = loop.probe_ids(1)
    pool = {p.id for p in loop.feedback_pool(1)}
    assert set(st.asked[1]) == probe and len(probe) == round(0.25 * len(pool))
    assert not probe & set(st.trained[1]) and set(st.trained[1]) == pool - probe
    assert not loop.probe_ids(2) & set(st.trained[2])  # the last round too: a round never depends on `rounds`
    split_1 = read_json(tmp_path / "run" / "round_1" / "split.json")
    assert set(split_1["easy"]) | set(split_1["hard"]) == probe
    # only the probe slice can be expanded
    assert {g["parent_id"] for g in read_jsonl(tmp_path / "run" / "round_1" / "generated.jsonl")} <= probe


def test_sampled_feedback_asks_k_answers_per_problem(tiny_cfg, tmp_path):
    loop, st = run_loop(tiny_cfg, tmp_path, "feedback=solve_rate", "feedback.samples=3")
    pool = [p.id for p in loop.feedback_pool(1)]
    assert Counter(st.asked[1]) == {pid: 3 for pid in pool}
    assert st.sampling[1]["temperature"] == 0.7
    assert set(read_json(tmp_path / "run" / "round_1" / "split.json")["solve_rate"]) == set(pool)


@pytest.mark.parametrize(
    "bad", ["feedback.signal=oracle", "feedback.probe_fraction=1.0", "feedback.samples=0", "feedback.easy_threshold=0"]
)
def test_bad_feedback_config_is_refused(tiny_cfg, bad):
    with pytest.raises(ConfigError, match="feedback"):
        validate(tiny_cfg(bad))


def test_scenario_weights_the_families():
    rare = {"fraction", "discount"}
    weights = {k: (0.05 if k in rare else 1.0) for k in synthetic.BASES}
    train = synthetic.generate(400, 0, "train", families=weights)
    share = sum(synthetic.family(p) in rare for p in train) / len(train)
    assert 0 < share < 0.1
    only = synthetic.generate(50, 0, "test", families={"fraction": 1.0})
    assert {synthetic.family(p) for p in only} == {"fraction"}
    # no weights = the balanced world, unchanged
    assert synthetic.generate(30, 0, "train") == synthetic.generate(30, 0, "train", families={})


def test_unknown_family_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown"):
        synthetic.generate(5, 0, "train", families={"algebra": 1.0})


def test_imbalanced_scenario_composes(tiny_cfg):
    from fdd.data import load_problems

    obj = validate(
        tiny_cfg(
            "dataset=synthetic_imbalanced",
            "dataset.train.n=200",
            "dataset.eval.rare.n=30",
            "dataset.eval.synthetic.n=60",
        )
    )
    train, evals = load_problems(obj)
    assert set(evals) == {"synthetic", "rare"}
    assert {synthetic.family(p) for p in evals["rare"]} == {"fraction", "discount"}
    assert sum(synthetic.family(p) in ("fraction", "discount") for p in train) < 0.15 * len(train)


def test_sampled_generation_is_seeded_and_differs_from_greedy(tmp_path, one_thread):
    from omegaconf import OmegaConf

    from fdd.students.generate import encode_prompts, generate_batches, plan_batches
    from fdd.students.model import build_model
    from fdd.students.tokenizer import build_tokenizer
    from tests.conftest import compose_cfg

    scfg = OmegaConf.to_object(compose_cfg(["student=tiny-llama", "logger=none"], tmp_path / "run").student)
    tok = build_tokenizer(scfg)
    model = build_model(scfg, tok, seed=0)
    enc = encode_prompts(tok, [f"Question: {i} + {i} = ?" for i in range(6)], "causal", 64)
    batches = plan_batches([len(e) for e in enc], 4)

    def gen(sampling):
        return generate_batches(model, tok, enc, batches, "causal", max_new_tokens=12, sampling=sampling)

    greedy = gen(None)
    a, b = gen({"temperature": 1.0, "seed": 7}), gen({"temperature": 1.0, "seed": 7})
    assert a == b  # a rerun of the same feedback stage samples the same answers
    assert a != greedy and a != gen({"temperature": 1.0, "seed": 8})
