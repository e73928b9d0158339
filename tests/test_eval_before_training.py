"""Round 0: the base student evaluated before any training (``student.eval_before_training``)."""

from __future__ import annotations

import json

import pytest

from fdd.config import StudentConfig


@pytest.mark.parametrize(
    "choice, pretrained, expected",
    [
        ("auto", None, False),
        ("auto", "some/model", True),
        ("true", None, True),
        ("True", None, True),
        ("false", "some/model", False),
    ],
)
def test_eval_before_training_choice(choice, pretrained, expected):
    cfg = StudentConfig(name="s", arch="causal", pretrained=pretrained, eval_before_training=choice)
    assert cfg.evaluates_base() is expected


def test_bad_choice_fails_validation(tiny_cfg):
    from fdd.config import ConfigError, validate

    with pytest.raises(ConfigError, match="eval_before_training"):
        validate(tiny_cfg("student.eval_before_training=maybe"))


def test_round_zero_accuracy_is_a_resumable_stage(tiny_cfg, tmp_path, one_thread):
    from fdd.main import run

    cfg = tiny_cfg("student.eval_before_training=true", "rounds=1")
    rows = run(cfg)
    r0 = rows[0]
    assert r0["round"] == 0 and set(r0["accuracy"]) == {"synthetic"}
    preds = [json.loads(x) for x in (tmp_path / "run/round_0/eval_synthetic.jsonl").read_text().splitlines()]
    assert len(preds) == 20 and r0["accuracy"]["synthetic"] == sum(p["correct"] for p in preds) / 20
    assert (tmp_path / "run/round_0/DONE.evaluate").is_file()
    logged = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert logged[0]["round"] == 0 and logged[0]["accuracy"] == r0["accuracy"]
    assert (tmp_path / "run/rounds.png").is_file()
    # a rerun resumes: the finished round-0 stage is read back (its outputs checked), not recomputed
    marker = tmp_path / "run/round_0/DONE.evaluate"
    written = (marker.stat().st_mtime_ns, (tmp_path / "run/round_0/eval_synthetic.jsonl").stat().st_mtime_ns)
    again = run(cfg)
    assert again[0]["accuracy"] == r0["accuracy"]
    assert (marker.stat().st_mtime_ns, (tmp_path / "run/round_0/eval_synthetic.jsonl").stat().st_mtime_ns) == written


def test_random_init_students_skip_round_zero_by_default(tiny_cfg, tmp_path, one_thread):
    from fdd.main import run

    rows = run(tiny_cfg("rounds=1"))
    assert "accuracy" not in rows[0]
    assert not (tmp_path / "run/round_0/eval_synthetic.jsonl").exists()
