"""Tracking: a tiny run logs every round to an offline wandb run, read back from its .wandb file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fdd.main import run
from fdd.reporting.tracking import Tracker, artifact_name
from tests.wandb_log import iter_wandb_records, wandb_history


def _wandb_file(run_dir: Path) -> Path:
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    return files[0]


def test_offline_wandb_run_has_per_round_metrics_table_and_artifacts(tiny_cfg, tmp_path):
    rows = run(tiny_cfg("logger=wandb", "logger.mode=offline"))
    run_dir = tmp_path / "run"
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all("train_steps" in r for r in rows[1:])  # extras read from the round's DONE markers
    # metrics.jsonl stays the source of truth
    assert [json.loads(x)["round"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]

    records = list(iter_wandb_records(_wandb_file(run_dir)))
    kinds = {r.WhichOneof("record_type") for r in records}
    assert {"run", "history", "artifact", "exit"} <= kinds
    run_rec = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run_rec.run_group == "fdd" and run_rec.job_type == "fdd"  # group/job_type for sweeps

    hist = wandb_history(_wandb_file(run_dir))
    by_round = {}
    for h in hist:
        if "round" in h:
            by_round.setdefault(h["round"], {}).update(h)
    for r in (1, 2):
        row = by_round[r]
        assert abs(row["accuracy/synthetic"] - rows[r]["accuracy"]["synthetic"]) < 1e-9
        for key in ("easy", "hard", "easy_ratio", "hard_ratio", "distill_size", "trained_on"):
            assert key in row, (r, key)
    assert "generated" in by_round[1] and "accepted" in by_round[1] and "teacher/rationale/requests" in by_round[1]
    assert by_round[1]["generated_problems/_type"] == "table-file"
    assert 0 < by_round[1]["generated_problems/nrows"] <= 50  # the sample of new problems
    arts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "dataset"]
    assert {a.name for a in arts} == {artifact_name("distill", "run")}
    assert len(arts) == 2  # versions for D0 and D1 (the last round adds no data)


def test_wandb_failure_is_not_fatal(tmp_path, caplog, monkeypatch):
    import wandb

    def boom(*a, **k):
        raise RuntimeError("no wandb today")

    monkeypatch.setattr(wandb, "init", boom)

    class LC:  # a logger config as the schema has it
        wandb, mode, project, entity, group, job_type, tags = True, "offline", "fdd", None, None, None, []

    with caplog.at_level(logging.WARNING):
        t = Tracker(tmp_path, LC())
    assert t.run is None and "wandb disabled" in caplog.text
    t.log_round(0, {"round": 0, "distill_size": 3})
    t.log_round(1, {"round": 1, "accuracy": {"x": 0.5}, "easy_ratio": 0.5})
    t.finish()
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "rounds.png").is_file()


def test_log_errors_after_init_are_warnings(tmp_path, caplog):
    class BadRun:
        def log(self, *a, **k):
            raise OSError("disk full")

        def log_artifact(self, *a, **k):
            raise OSError("disk full")

        def finish(self, **k):
            raise OSError("disk full")

    t = Tracker(tmp_path)
    t.run = BadRun()
    (tmp_path / "round_0").mkdir()
    (tmp_path / "round_0" / "distill.jsonl").write_text('{"id": "a", "question": "q", "answer": 1, "round": 0}\n')
    with caplog.at_level(logging.WARNING):
        t.log_round(0, {"round": 0})
        t.finish()
    assert "disk full" in caplog.text and (tmp_path / "metrics.jsonl").is_file()


def test_resumed_run_does_not_relog_finished_rounds(tmp_path):
    class FakeRun:
        id = "abc"

        def __init__(self):
            self.logged = []

        def log(self, d, **k):
            self.logged.append(d)

        def log_artifact(self, *a, **k):
            pass

        def finish(self, **k):
            pass

    first = Tracker(tmp_path)
    first.run = FakeRun()
    first.log_artifacts = False
    first.log_round(0, {"round": 0, "distill_size": 3})
    again = Tracker(tmp_path)  # the same run resumed: the loop reports round 0 again, then round 1
    again.run = FakeRun()
    again.log_artifacts = False
    again.log_round(0, {"round": 0, "distill_size": 3})
    again.log_round(1, {"round": 1, "accuracy": {"x": 0.5}})
    assert [d["round"] for d in again.run.logged] == [1]
    assert [r["round"] for r in again.rows] == [0, 1]  # metrics.jsonl still has every round


def test_offline_wandb_summary_has_final_and_mean_accuracy_totals_and_tags(tiny_cfg, tmp_path):
    """Sweep tables and parallel coordinates read the summary (issue 24): final per-set and mean
    accuracy, the best mean, augmentation totals instead of the last augmenting round's counts; the
    held-out predictions as a table; tags by default."""
    from tests.wandb_log import wandb_summary

    rows = run(tiny_cfg("logger=wandb", "logger.mode=offline"))
    path = _wandb_file(tmp_path / "run")
    summary = wandb_summary(path)
    last = rows[-1]
    means = [sum(r["accuracy"].values()) / len(r["accuracy"]) for r in rows[1:]]
    assert summary["final/round"] == last["round"] == 2
    assert summary["final/accuracy/synthetic"] == pytest.approx(last["accuracy"]["synthetic"])
    assert summary["final/mean_accuracy"] == pytest.approx(means[-1])
    assert summary["best/mean_accuracy"] == pytest.approx(max(means))
    assert summary["total/accepted"] == sum(r.get("accepted", 0) for r in rows) > 0
    assert "accepted" not in summary and "generated" not in summary  # not round 1's counts as the run's
    hist = wandb_history(path)
    tables = [h for h in hist if h.get("eval_predictions/_type") == "table-file"]
    assert [h["round"] for h in tables] == [1, 2] and all(0 < h["eval_predictions/nrows"] <= 25 for h in tables)
    run_rec = next(r.run for r in iter_wandb_records(path) if r.WhichOneof("record_type") == "run")
    assert list(run_rec.tags) == ["fdd", "pot", "student=tiny-word", "teacher=oracle"]
