"""The FDD loop end to end on a tiny config: stages, outputs, lineage, resume."""

from __future__ import annotations

from pathlib import Path

from fdd.main import run
from fdd.runtime.io import read_json, read_jsonl
from fdd.types import BRANCHES, Item


def test_tiny_run_writes_every_stage_and_lineage(tiny_cfg, tmp_path):
    rows = run(tiny_cfg("rounds=2"))
    run_dir = tmp_path / "run"
    assert [r["round"] for r in rows] == [0, 1, 2]
    for stage in ("train", "evaluate", "feedback", "augment", "metrics"):
        assert (run_dir / "round_1" / f"DONE.{stage}").is_file()
    assert not (run_dir / "round_2" / "DONE.augment").exists()  # nothing trains on the last round's data
    assert (run_dir / "round_2" / "checkpoint" / "config.json").is_file()
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == 3
    assert (run_dir / "rounds.png").stat().st_size > 1000

    d0 = read_jsonl(run_dir / "round_0" / "distill.jsonl", Item)
    d1 = read_jsonl(run_dir / "round_1" / "distill.jsonl", Item)
    assert len(d1) > len(d0) and {i.id for i in d0} <= {i.id for i in d1}
    new = [i for i in d1 if i.round == 1]
    assert new and all(i.branch in BRANCHES[1:] and i.parent_id in {x.problem_id for x in d0} for i in new)
    split = read_json(run_dir / "round_1" / "split.json")
    assert len(split["easy"]) + len(split["hard"]) == len({i.question for i in d0})
    # every generated candidate is either accepted or rejected with a reason
    generated = {g["id"] for g in read_jsonl(run_dir / "round_1" / "generated.jsonl")}
    rejected = read_jsonl(run_dir / "round_1" / "rejected.jsonl")
    assert all(r["reason"] for r in rejected)
    assert generated <= {i.id for i in new} | {r["id"] for r in rejected}


def test_rerun_skips_finished_stages(tiny_cfg, tmp_path):
    run(tiny_cfg("rounds=1"))
    marker = tmp_path / "run" / "round_1" / "DONE.train"
    before = marker.stat().st_mtime_ns
    ckpt = Path(tmp_path / "run" / "round_1" / "checkpoint" / "model.safetensors").stat().st_mtime_ns
    rows = run(tiny_cfg("rounds=2"))  # extends the same run by one round
    assert marker.stat().st_mtime_ns == before
    assert Path(tmp_path / "run" / "round_1" / "checkpoint" / "model.safetensors").stat().st_mtime_ns == ckpt
    assert [r["round"] for r in rows] == [0, 1, 2]
