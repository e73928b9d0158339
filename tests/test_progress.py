"""The progress line each finished stage logs: stages counted, time elapsed, and the time left
estimated from what the same stage took last (a resumed run reads it from the DONE markers)."""

from __future__ import annotations

import logging

from fdd.config import validate
from fdd.method.loop import FDDLoop
from fdd.runtime.progress import StagePlan, duration
from fdd.runtime.stages import StageRunner


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


ORDER = [(0, "init"), (1, "train"), (1, "evaluate"), (2, "train"), (2, "evaluate")]


def test_the_time_left_comes_from_the_same_stage_last_time():
    clock = Clock()
    plan = StagePlan(ORDER, clock=clock)
    clock.t = 5
    plan.record(0, "init", 5)
    assert plan.line(0, "init", 5) == (
        "round 0/2 init: 5 s | 1/5 stages, 5 s elapsed | about 0 s left (+ evaluate, train: not timed yet)"
    )
    clock.t = 125
    plan.record(1, "train", 120)
    clock.t = 155
    plan.record(1, "evaluate", 30)
    # round 2's train and evaluate are expected to take what round 1's did: 150 s
    assert plan.line(1, "evaluate", 30) == "round 1/2 evaluate: 30 s | 3/5 stages, 2m35s elapsed | about 2m30s left"
    plan.record(2, "train", 200)
    plan.record(2, "evaluate", 31)
    assert plan.line(2, "evaluate", 31).endswith("5/5 stages, 2m35s elapsed | all stages done")


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (0.4, 59, 60, 3599, 3600, 7260)] == [
        "0 s",
        "59 s",
        "1m00s",
        "59m59s",
        "1h00m",
        "2h01m",
    ]


def test_a_resumed_run_estimates_from_the_markers_and_logs_only_new_work(tmp_path, caplog):
    first = StageRunner(tmp_path, StagePlan(ORDER))
    first.run(0, "init", lambda d: {"n": 1})
    first.run(1, "train", lambda d: {})
    # a later process: the finished stages are skipped, their recorded seconds feed the estimate
    plan = StagePlan(ORDER)
    again = StageRunner(tmp_path, plan)
    with caplog.at_level(logging.INFO, logger="fdd.runtime.stages"):
        again.run(0, "init", lambda d: {"n": 2})
        again.run(1, "train", lambda d: {})
        again.run(1, "evaluate", lambda d: {})
    lines = [r.getMessage() for r in caplog.records if "stages," in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("round 1/2 evaluate: 0 s | 3/5 stages")
    assert plan.finished == {(0, "init"), (1, "train"), (1, "evaluate")} and set(plan.last) == {
        "init",
        "train",
        "evaluate",
    }


def test_the_loop_plans_every_stage_it_runs(tiny_cfg):
    cfg = validate(tiny_cfg("rounds=3"))
    order = FDDLoop.stage_order(cfg)
    assert order[0] == (0, "init") and order[-1] == (3, "metrics")
    assert [s for r, s in order if r == 2] == ["train", "evaluate", "feedback", "augment", "metrics"]
    assert "augment" not in [s for r, s in order if r == 3]  # the last round's new problems would train nothing
