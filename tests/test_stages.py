"""``StageRunner``: a stage runs once, its marker is written last, a failed stage runs again."""

from __future__ import annotations

import pytest

from fdd.runtime.io import read_json
from fdd.runtime.stages import StageRunner


def test_a_done_stage_is_skipped_and_its_summary_read_back(tmp_path):
    runner, calls = StageRunner(tmp_path), []

    def stage(d):
        calls.append(d)
        (d / "out.txt").write_text("x")
        return {"n": 3}

    first = runner.run(2, "train", stage)
    again = runner.run(2, "train", stage)
    assert calls == [tmp_path / "round_2"] and first["n"] == again["n"] == 3 and "seconds" in again
    assert runner.done(2, "train") and not runner.done(1, "train") and not runner.done(2, "evaluate")
    assert read_json(tmp_path / "round_2" / "DONE.train")["n"] == 3


def test_the_marker_is_written_after_the_stage_body(tmp_path):
    runner = StageRunner(tmp_path)
    seen = {}

    def stage(d):
        seen["done_inside"] = runner.done(1, "feedback")
        seen["marker_inside"] = (d / "DONE.feedback").exists()
        return {}

    runner.run(1, "feedback", stage)
    assert seen == {"done_inside": False, "marker_inside": False}
    assert runner.done(1, "feedback")


def test_a_failed_stage_leaves_no_marker_and_runs_again(tmp_path):
    runner, calls = StageRunner(tmp_path), []

    def broken(d):
        calls.append("broken")
        (d / "half.jsonl").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runner.run(1, "augment", broken)
    assert not runner.done(1, "augment") and not (tmp_path / "round_1" / "DONE.augment").exists()
    summary = runner.run(1, "augment", lambda d: calls.append("fixed") or {"accepted": 1})
    assert calls == ["broken", "fixed"] and summary["accepted"] == 1 and runner.done(1, "augment")


def test_a_stage_returning_nothing_still_gets_a_marker(tmp_path):
    runner = StageRunner(tmp_path)
    assert set(runner.run(0, "init", lambda d: None)) == {"seconds"}
    assert runner.done(0, "init")
