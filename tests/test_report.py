"""fdd.reporting.report on a real (tiny) Hydra multirun: table, comparison, plots, and a partial sweep."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from fdd.reporting import report
from tests.conftest import ROOT, TINY

MODES = ("fdd", "none", "random")


def _sweep_command(root):
    """A 3-job multirun (fdd, none, random; seed 0; 2 rounds) by ``python -m fdd.main -m``, under ``root``."""
    env = {**os.environ, "FDD_ROOT": str(root)}
    env.pop("WANDB_API_KEY", None)
    tiny = [o for o in TINY if not o.startswith("logger=")]
    cmd = [
        sys.executable,
        "-m",
        "fdd.main",
        "-m",
        *tiny,
        "logger=wandb",
        "logger.mode=offline",
        f"augmentation={','.join(MODES)}",
        "seed=0",
    ]
    return cmd, env


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep's folder: outputs/fdd/multirun/<the sweep's overrides>/ with multirun.yaml and a run
    directory per job."""
    root = tmp_path_factory.mktemp("sweep")
    cmd, env = _sweep_command(root)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    multirun = root / "outputs" / "fdd" / "multirun"
    (folder,) = [p.parent for p in multirun.glob("*/multirun.yaml")]  # the sweep's own folder
    # named by the sweep's overrides as a run is by its own (logger keys are cosmetic: left out)
    assert folder.name.startswith("augmentation=fdd,none,random,dataset.eval.synthetic.n=20,"), folder.name
    assert "logger" not in folder.name and "seed=0" in folder.name
    return folder


def _job(multirun, mode):
    (d,) = [p for p in multirun.iterdir() if p.is_dir() and f"augmentation={mode}," in p.name + ","]
    return d


def test_multirun_jobs_get_separate_finished_wandb_runs(sweep):
    from tests.wandb_log import iter_wandb_records

    ids = []
    for mode in MODES:
        job = _job(sweep, mode)
        (wb,) = job.glob("wandb/offline-run-*/run-*.wandb")  # exactly one wandb run per job
        recs = list(iter_wandb_records(wb))
        run = next(r.run for r in recs if r.WhichOneof("record_type") == "run")
        # seeds of a variant share a group: the task's group plus the overrides without seed
        assert run.job_type == mode and run.run_group.startswith("fdd/augmentation=" + mode + ",")
        assert "seed=" not in run.run_group
        assert any(r.WhichOneof("record_type") == "exit" for r in recs)  # finished before the next job
        ids.append(run.run_id)
    assert len(set(ids)) == len(MODES)


def test_report_on_a_full_sweep(sweep, tmp_path, capsys):
    rep = report.build_report(sweep)
    assert sorted(r.variant for r in rep.runs) == sorted(MODES)
    assert rep.missing == [] and rep.sets == ["synthetic"]
    assert set(rep.table["round"]) == {1, 2} and set(rep.table["variant"]) == set(MODES)
    fdd_final = rep.final[(rep.final.variant == "fdd") & (rep.final.set == "synthetic")].iloc[0]
    runs = {r.variant: r for r in rep.runs}
    acc = {m: runs[m].rows[-1]["accuracy"]["synthetic"] for m in MODES}
    assert fdd_final["round"] == 2
    assert fdd_final["vs_none"] == pytest.approx(acc["fdd"] - acc["none"])
    assert fdd_final["vs_random"] == pytest.approx(acc["fdd"] - acc["random"])

    out = tmp_path / "rep"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held-out accuracy on `synthetic`" in printed and "| fdd |" in printed and "vs none" in printed
    for name in ("table.csv", "final.csv", "flow.csv", "report.md", "accuracy.png", "easy_hard.png"):
        assert (out / name).stat().st_size > 0, name


def test_report_on_a_partial_sweep(sweep, tmp_path, capsys):
    partial = tmp_path / "multirun"
    shutil.copytree(sweep, partial, ignore=shutil.ignore_patterns("checkpoint", "cache", ".cache"))
    shutil.rmtree(_job(partial, "random"))  # a job deleted
    none_metrics = _job(partial, "none") / "metrics.jsonl"  # a job that finished only round 1
    lines = none_metrics.read_text().splitlines()
    none_metrics.write_text("\n".join(lines[:2]) + "\n")

    rep = report.build_report(partial)
    assert sorted(r.variant for r in rep.runs) == ["fdd", "none"]
    text = "\n".join(rep.missing)
    assert "augmentation=random" in text and "deleted" in text
    assert "finished 1 of 2 rounds" in text
    f = rep.final[rep.final.variant == "fdd"].iloc[0]
    assert f["vs_random_wins"] == "" and f["vs_none_wins"] == ""  # nothing to pair with at round 2

    assert report.main([str(partial)]) == 0
    printed = capsys.readouterr().out
    assert "missing:" in printed and "augmentation=random" in printed
    assert (partial / "report" / "report.md").is_file()


def test_report_on_one_run_and_on_nothing(sweep, tmp_path, capsys):
    one = _job(sweep, "fdd")
    rep = report.build_report(one)
    assert len(rep.runs) == 1 and rep.runs[0].variant == "fdd"
    lin = report.lineage(one, limit=None)
    assert len(lin) and set(lin["branch"]) <= {"easy-harder", "hard-similar"} and lin["parent_question"].notna().all()
    assert report.main([str(tmp_path)]) == 1 and "no run directories" in capsys.readouterr().out
    assert json.loads((one / "metrics.jsonl").read_text().splitlines()[-1])["round"] == 2


def test_report_on_the_folder_of_one_sweep_reports_that_sweep(sweep, tmp_path, capsys):
    rep = report.build_report(sweep.parent)  # outputs/fdd/multirun with one sweep in it
    assert rep.root == sweep and rep.sweep and sorted(r.variant for r in rep.runs) == sorted(MODES)
    assert "augmentation=fdd,none,random" in " ".join(rep.overrides) and rep.missing == []
    assert report.main([str(sweep.parent), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert f"# FDD report: {sweep}" in printed and "sweep: `" in printed


def _folders(root):
    return {p for p in root.rglob("*") if p.is_dir() and "wandb" not in p.relative_to(root).parts}


def test_the_same_sweep_command_resumes_its_sweep(sweep):
    """Rerunning the sweep's command finds its folder and jobs: every stage is skipped, no new folder."""
    root = sweep.parents[3]
    before = _folders(root / "outputs")
    cmd, env = _sweep_command(root)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("round 2: evaluate already done, skipping") == len(MODES)
    for mode in MODES:
        assert f"run directory: {_job(sweep, mode)}" in log
    assert _folders(root / "outputs") == before  # nothing new but wandb's offline runs
