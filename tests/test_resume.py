"""A run killed during training and rerun with the same command ends with the same
distillation set as an uninterrupted run, without redoing finished stages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fdd.runtime.io import read_jsonl
from tests.conftest import ROOT, TINY

ARGS = [a for a in TINY if not a.startswith(("student.epochs", "dataset.train.n", "rounds"))] + [
    "student.epochs=12",
    "dataset.train.n=80",
    "rounds=3",
    "trainer.log_every_n_steps=1",
]


def _cmd(run_dir: Path, *extra: str):
    return [
        sys.executable,
        "-m",
        "fdd.main",
        *ARGS,
        *extra,
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={run_dir}/cache",
    ]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _kill_when(cmd, path: Path) -> None:
    """Start ``cmd`` and SIGKILL its whole process group as soon as ``path`` exists."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed during training"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _final_set(run_dir: Path):
    rows = read_jsonl(run_dir / "round_2" / "distill.jsonl")
    return sorted((r["id"], r["rationale"], r["answer"], r["branch"], r["parent_id"], r["round"]) for r in rows)


@pytest.mark.slow
def test_killed_during_training_resumes_to_the_same_distillation_set(tmp_path):
    ref = tmp_path / "uninterrupted"
    subprocess.run(_cmd(ref), cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)

    run_dir = tmp_path / "killed"
    _kill_when(_cmd(run_dir), run_dir / "round_2" / "train_state" / "logs" / "metrics.csv")  # round 2 is training
    assert not (run_dir / "round_2" / "DONE.train").exists()
    init_mtime = (run_dir / "round_0" / "distill.jsonl").stat().st_mtime_ns
    round1_ckpt = (run_dir / "round_1" / "checkpoint" / "model.safetensors").stat().st_mtime_ns

    out = subprocess.run(_cmd(run_dir), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "round 1: train already done, skipping" in out.stderr + out.stdout
    # finished work was not repeated ...
    assert (run_dir / "round_0" / "distill.jsonl").stat().st_mtime_ns == init_mtime
    assert (run_dir / "round_1" / "checkpoint" / "model.safetensors").stat().st_mtime_ns == round1_ckpt
    # ... and the result is the uninterrupted one
    assert _final_set(run_dir) == _final_set(ref)
    assert read_jsonl(run_dir / "metrics.jsonl")[-1]["accuracy"] == read_jsonl(ref / "metrics.jsonl")[-1]["accuracy"]


@pytest.mark.slow
def test_opt_in_resume_from_the_last_epoch_finishes_the_run(tmp_path):
    """student.resume_from_last_epoch=true continues a killed fit from its epoch checkpoint
    (faster for long runs; not bit-identical, so only completion is promised)."""
    run_dir = tmp_path / "killed"
    cmd = _cmd(run_dir, "student.resume_from_last_epoch=true")
    _kill_when(cmd, run_dir / "round_1" / "train_state" / "last.ckpt")
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming the fit from" in out.stderr + out.stdout
    assert (run_dir / "round_3" / "DONE.metrics").is_file()
    assert not list((run_dir / "round_1" / "train_state").glob("*.ckpt"))  # cleaned once the stage is done
