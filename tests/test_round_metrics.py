"""The one schema of a round's metrics (fdd.types.RoundMetrics), the loop's call plan that
dry_run prints, fdd.data.load_problems' overlap filter, the shared plots and main's task_wrapper."""

from __future__ import annotations

import json
import sys
import types

import pytest

from fdd.method.loop import FDDLoop, plan_calls
from fdd.types import RoundMetrics

ROUND_1 = {
    "round": 1,
    "accuracy": {"gsm8k": 0.25, "svamp": 0.5},
    "trained_on": 40,
    "train_loss": 1.5,
    "train_steps": 12,
    "easy": 10,
    "hard": 30,
    "easy_ratio": 0.25,
    "hard_ratio": 0.75,
    "generated": 30,
    "accepted": 20,
    "rejected": 10,
    "rejected_by_reason": {"duplicate": 4, "disagreement": 6},
    "accepted_by_branch": {"easy-harder": 5, "hard-similar": 15},
    "unrepresentable_by_reason": {},
    "distill_size": 60,
    "teacher": {"harder": {"requests": 10}, "similar": {"requests": 30}, "rationale": {"requests": 60}},
    "seconds": 0.3,  # the stage runner's, not a field: kept in extra
}


def test_row_round_trips_unknown_keys_and_empty_dicts_kept():
    m = RoundMetrics.from_row(ROUND_1)
    assert m.accuracy == {"gsm8k": 0.25, "svamp": 0.5} and m.extra == {"seconds": 0.3}
    assert m.to_row() == ROUND_1  # same keys, same values: metrics.jsonl is unchanged by the schema
    assert m.mean_accuracy() == pytest.approx(0.375)
    assert m.teacher_requests() == 100 and m.requests_per_accepted() == pytest.approx(5.0)
    assert "train_seconds" not in m.to_row()  # a field nobody set is not in the row
    assert RoundMetrics(round=0).to_row() == {"round": 0}
    with pytest.raises(ValueError, match="without a round"):
        RoundMetrics.from_row({"accuracy": {}})


def test_renaming_a_key_is_one_entry_and_old_files_still_read(monkeypatch):
    monkeypatch.setattr(RoundMetrics, "ROW_KEYS", {"easy_ratio": "easy_share"})
    monkeypatch.setattr(RoundMetrics, "OLD_KEYS", {"easy_ratio": ("easy_ratio",)})
    old = RoundMetrics.from_row(ROUND_1)  # a metrics.jsonl written before the rename
    assert old.easy_ratio == 0.25 and "easy_ratio" not in old.extra
    row = old.to_row()
    assert row["easy_share"] == 0.25 and "easy_ratio" not in row
    assert RoundMetrics.from_row(row).easy_ratio == 0.25
    from fdd.reporting.report import flow_numbers

    assert flow_numbers(RoundMetrics.from_row(row))["easy_ratio"] == 0.25  # readers go through the fields


def _summaries():
    train = {"distill_size": 50, "trained_on": 40, "train_loss": 1.5, "train_steps": 12, "train_examples": 40}
    train.update(unrepresentable=0, unrepresentable_by_reason={})
    evaluate = {"accuracy": {"gsm8k": 0.25}}
    feedback = {"easy": 10, "hard": 30, "easy_ratio": 0.25, "hard_ratio": 0.75, "answered": 40}
    augment = {
        "asked_harder": 10,
        "asked_similar": 30,
        "generated": 30,
        "accepted": 20,
        "accepted_by_branch": {"easy-harder": 5},
        "rejected": 10,
        "rejected_by_reason": {"duplicate": 10},
        "distill_size": 70,
        "teacher": {"harder": {"requests": 10}},
        "rationale_requests_per_accepted": 3.0,
        "failed_requests": 0,
    }
    return {"train": train, "evaluate": evaluate, "feedback": feedback, "augment": augment}


def test_loop_rows_are_round_metrics():
    metrics = FDDLoop._metrics  # uses nothing of the loop but its arguments
    init = {"seed_problems": 8, "distill_size": 6, "rejected": 2, "teacher": {}, "failed_requests": 0}
    assert metrics(None, 0, {"init": init}) == {
        "round": 0,
        "seed_problems": 8,
        "seed_rejected": 2,
        "distill_size": 6,
        "teacher": {},
        "failed_requests": 0,
    }
    s = _summaries()
    row = metrics(None, 1, s)
    m = RoundMetrics.from_row(row)
    assert m.extra == {} and m.distill_size == 70 and m.trained_on == 40 and m.train_steps == 12
    assert m.asked_similar == 30 and m.unrepresentable_by_reason == {} and m.failed_requests == 0
    del s["augment"]  # the last round does not augment: the set it trained on is the size
    last = RoundMetrics.from_row(metrics(None, 2, s))
    assert last.distill_size == 50 and last.generated is None and last.teacher is None


def _cfg(**aug):
    a = {
        "seed_samples": 1,
        "seed_retries": 0,
        "per_easy": 1,
        "per_hard": 2,
        "samples": 3,
        "mode": "fdd",
        "budget": None,
        **aug,
    }
    return types.SimpleNamespace(augmentation=types.SimpleNamespace(**a), rounds=3, train_subset=None)


def test_call_plan_counts_the_growing_pool_and_the_caps():
    plan = plan_calls(_cfg(), 10)
    # round 1 may expand all 10 seed problems (2 new each); round 2's pool has up to 10 + 20
    assert plan.targets == (10, 30) and plan.augmenting_rounds == 2
    assert plan.calls(0) == 10 and plan.problem_calls(1) == 20 and plan.rationale_calls(1) == 60
    assert plan.total_calls == 10 + 80 + 240 and plan.calls(3) == 0
    assert plan_calls(_cfg(budget=4), 10).targets == (4, 4)
    capped = _cfg()
    capped.train_subset = 6
    assert plan_calls(capped, 10).targets == (6, 6)
    assert plan_calls(_cfg(mode="none"), 10).total_calls == 10


def test_dry_run_prints_the_plan_and_the_cost_uses_it(tmp_path, capsys):
    from fdd.config import validate
    from fdd.data import load_problems
    from fdd.main import dry_run
    from tests.conftest import compose_cfg

    cfg = validate(compose_cfg(["dataset.train.n=20", "dataset.eval.synthetic.n=5", "rounds=3"], tmp_path))
    train, evals = load_problems(cfg)
    out = dry_run(cfg, train, evals)
    plan = plan_calls(cfg, len(train))
    assert (
        out["max_total_calls"] == plan.total_calls == sum(s["calls"] for s in out["teacher_tokens"]["stages"].values())
    )
    assert out["max_calls_per_round"] == [plan.calls(1), plan.calls(2)]
    assert "max_total_calls" in capsys.readouterr().out


def test_load_problems_drops_held_out_questions_seen_in_training(caplog):
    from fdd.data import drop_overlap
    from fdd.types import Problem

    train = [Problem("t1", "How many  apples?", 3.0, "x")]
    evals = {"a": [Problem("e1", "how many apples?", 3.0, "x"), Problem("e2", "How many pears?", 1.0, "x")]}
    kept = drop_overlap(train, evals)
    assert [p.id for p in kept["a"]] == ["e2"] and "dropped 1 problems" in caplog.text


def test_plots_draw_rounds_png_and_the_notebook_figure(tmp_path):
    from fdd.reporting.plots import plot_rounds
    from fdd.reporting.report import plot_run

    rows = [RoundMetrics(round=0, accuracy={"x": 0.1}, distill_size=5), RoundMetrics.from_row(ROUND_1)]
    assert plot_rounds(rows, tmp_path / "rounds.png").stat().st_size > 1000
    assert plot_rounds([RoundMetrics(round=0)], tmp_path / "none.png") is None  # nothing to draw yet
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r.to_row()) for r in rows) + "\n{not json\n")
    fig = plot_run(tmp_path, tmp_path / "run.png")  # a damaged line is skipped, not fatal
    assert len(fig.axes) == 3 and (tmp_path / "run.png").is_file()


def test_task_wrapper_one_line_for_user_errors_and_always_finishes_wandb(monkeypatch, capsys):
    from fdd.config import ConfigError
    from fdd.main import task_wrapper

    finished = []
    fake = types.SimpleNamespace(run=object(), finish=lambda exit_code: finished.append(exit_code))
    monkeypatch.setitem(sys.modules, "wandb", fake)

    @task_wrapper
    def bad_config(cfg):
        raise ConfigError("sandbox.timeout_s must be > 0")

    with pytest.raises(SystemExit) as exit_:
        bad_config(None)
    assert exit_.value.code == 2 and capsys.readouterr().err == "fdd: error: sandbox.timeout_s must be > 0\n"

    @task_wrapper
    def crash(cfg):
        raise KeyError("a bug")

    with pytest.raises(KeyError):  # a bug keeps its traceback
        crash(None)

    @task_wrapper
    def fine(cfg):
        return 0.5

    assert fine(None) == 0.5
    assert finished == [1, 1, 0]  # the open wandb run was closed every time, with the outcome
