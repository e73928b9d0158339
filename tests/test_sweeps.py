"""Each sweep has its own folder, named by its command (the same command resumes it), and the report
never pools the runs of two sweeps."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

from fdd.reporting import report
from tests.conftest import ROOT

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


# ---------------------------------------------------------------------- fake sweeps, as Hydra lays them out
def write_run(
    folder: Path,
    overrides: List[str],
    acc: Dict[int, float],
    rounds: Optional[int] = None,
    multirun: Optional[bool] = None,
) -> Path:
    """A run directory: .hydra/{overrides,config}.yaml and one metrics.jsonl row per round."""
    ov = dict(o.split("=", 1) for o in overrides)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    rounds = max(acc, default=0) if rounds is None else rounds
    cfg = {"augmentation": {"mode": ov.get("augmentation", "fdd")}, "seed": int(ov.get("seed", 0)), "rounds": rounds}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if multirun is not None:
        mode = "MULTIRUN" if multirun else "RUN"
        (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"mode": mode}}))
    rows = [{"round": 0}] + [{"round": r, "accuracy": {"synthetic": a}} for r, a in sorted(acc.items())]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def write_sweep(folder: Path, task: List[str], jobs: Dict[str, Dict[int, float]], sweeper: str = BASIC) -> Path:
    """A sweep folder: multirun.yaml with the sweep's overrides, a run directory per job."""
    folder.mkdir(parents=True)
    (folder / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": task}, "sweeper": {"_target_": sweeper}}})
    )
    for job, acc in jobs.items():
        write_run(folder / job, job.split(","), acc)
    return folder


@pytest.fixture
def two_sweeps(tmp_path):
    """outputs/fdd/multirun with two sweeps that share the variant ``fdd`` (at different accuracies)."""
    multirun = tmp_path / "multirun"
    a = write_sweep(
        multirun / "augmentation=fdd,none,seed=0,1",
        ["augmentation=fdd,none", "seed=0,1"],
        {
            "augmentation=fdd,seed=0": {1: 0.5, 2: 0.6},
            "augmentation=fdd,seed=1": {1: 0.5, 2: 0.8},
            "augmentation=none,seed=0": {1: 0.5, 2: 0.5},
            "augmentation=none,seed=1": {1: 0.5, 2: 0.6},
        },
    )
    b = write_sweep(
        multirun / "augmentation=fdd,random,seed=0",
        ["augmentation=fdd,random", "seed=0"],
        {"augmentation=fdd,seed=0": {1: 0.1, 2: 0.2}, "augmentation=random,seed=0": {1: 0.1, 2: 0.1}},
    )
    return multirun, a, b


def _final(rep, variant: str) -> float:
    return float(rep.final[(rep.final.variant == variant) & (rep.final.set == "synthetic")].iloc[0]["mean"])


# ---------------------------------------------------------------------- the report never mixes sweeps
def test_a_folder_of_two_sweeps_gets_one_report_per_sweep(two_sweeps):
    multirun, a, b = two_sweeps
    with pytest.raises(report.SeveralSweeps) as err:  # one report of the folder would pool them
        report.build_report(multirun)
    assert a.name in str(err.value) and b.name in str(err.value)

    reps = report.build_reports(multirun)
    assert [r.root for r in reps] == [a, b] and all(r.sweep for r in reps)
    ra, rb = reps
    assert sorted({r.variant for r in ra.runs}) == ["fdd", "none"] and len(ra.runs) == 4
    assert sorted({r.variant for r in rb.runs}) == ["fdd", "random"] and len(rb.runs) == 2
    # fdd of each sweep is that sweep's: (0.6 + 0.8) / 2 and 0.2, never the pool of the three runs
    assert _final(ra, "fdd") == pytest.approx(0.7) and _final(rb, "fdd") == pytest.approx(0.2)
    assert ra.table[ra.table.variant == "fdd"]["n"].max() == 2 and rb.table[rb.table.variant == "fdd"]["n"].max() == 1
    fa = ra.final[ra.final.variant == "fdd"].iloc[0]
    assert fa["vs_none"] == pytest.approx(0.15) and fa["vs_none_wins"] == "2/2" and fa["vs_random_wins"] == ""
    assert ra.overrides == ["augmentation=fdd,none", "seed=0,1"] and ra.missing == [] and rb.missing == []


def test_fdd_report_on_the_folder_of_sweeps(two_sweeps, tmp_path, capsys):
    multirun, a, b = two_sweeps
    out = tmp_path / "rep"
    assert report.main([str(multirun), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 sweeps, one report each" in printed
    assert printed.count("# FDD report: ") == 2 and f"# FDD report: {a}" in printed and f"# FDD report: {b}" in printed
    for sweep in (a, b):
        assert (out / sweep.name / "report.md").read_text().startswith(f"# FDD report: {sweep}\n")
        assert (out / sweep.name / "table.csv").is_file()
    assert (out / "report.md").read_text().count("# FDD report: ") == 2
    table_b = (out / b.name / "table.csv").read_text()
    assert "none" not in table_b and "random" in table_b


def test_fdd_report_on_one_sweep_reports_only_that_sweep(two_sweeps, capsys):
    multirun, a, b = two_sweeps
    assert report.main([str(b)]) == 0
    printed = capsys.readouterr().out
    assert f"# FDD report: {b}\n" in printed and "sweep: `augmentation=fdd,random seed=0`" in printed
    assert "| none |" not in printed and "| random |" in printed and "2 run(s)" in printed
    assert (b / "report" / "report.md").is_file() and not (multirun / "report").exists()


def test_missing_jobs_are_counted_per_sweep(two_sweeps):
    multirun, a, b = two_sweeps
    import shutil

    shutil.rmtree(a / "augmentation=none,seed=1")  # a job of sweep a deleted; b still has its jobs
    ra, rb = report.build_reports(multirun)
    assert ra.missing == ["job never ran or was deleted: augmentation=none,seed=1"] and rb.missing == []


def test_the_old_shared_folder_and_single_runs_are_groups_of_their_own(tmp_path, capsys):
    """Before sweeps had their own folders, every sweep wrote into outputs/<task>/multirun/ itself:
    that folder is one sweep, a sweep folder inside it another, and single runs next to them a third."""
    outputs = tmp_path / "outputs"
    old = write_sweep(
        outputs / "multirun", ["augmentation=fdd,none"], {"augmentation=fdd": {1: 0.3}, "augmentation=none": {1: 0.2}}
    )
    new = write_sweep(
        old / "augmentation=fdd,random",
        ["augmentation=fdd,random"],
        {"augmentation=fdd": {1: 0.9}, "augmentation=random": {1: 0.4}},
    )
    single = write_run(outputs / "rounds=1", ["rounds=1"], {1: 0.7}, rounds=1, multirun=False)

    groups = report.find_groups(outputs)
    assert [(g.root, g.sweep, len(g.run_dirs)) for g in groups] == [(old, True, 2), (new, True, 2), (outputs, False, 1)]
    assert [g.run_dirs for g in groups][2] == [single]
    assert [g.label(outputs) for g in groups] == [
        "multirun",
        "multirun/augmentation=fdd,random",
        "runs outside any sweep",
    ]

    out = tmp_path / "rep"
    assert report.main([str(old), "--out", str(out)]) == 0  # the old sweep and the one inside it
    printed = capsys.readouterr().out
    assert "2 sweeps" in printed and (out / "_sweep" / "report.md").is_file()
    assert (out / new.name / "report.md").is_file()
    assert _final(report.build_reports(old)[0], "fdd") == pytest.approx(0.3)
    assert report.main([str(outputs), "--out", str(tmp_path / "rep2")]) == 0
    assert (tmp_path / "rep2" / "_single_runs" / "report.md").is_file()


def test_an_optuna_sweep_is_a_sweep_before_and_after_it_writes_its_results(tmp_path):
    """The Optuna sweeper writes no multirun.yaml, only optimization_results.yaml at the end; its
    jobs' .hydra/hydra.yaml say MULTIRUN."""
    multirun = tmp_path / "multirun"
    study = multirun / "debug=fast"
    for lr, acc in (("0.01", 0.2), ("0.003", 0.4)):
        write_run(study / f"debug=fast,student.lr={lr}", ["debug=fast", f"student.lr={lr}"], {1: acc}, 1, multirun=True)
    other = write_sweep(multirun / "augmentation=fdd,none", ["augmentation=fdd,none"], {"augmentation=fdd": {1: 0.5}})
    groups = report.find_groups(multirun)
    assert [(g.root, len(g.run_dirs)) for g in groups] == [(other, 1), (study, 2)]  # by folder
    (study / "optimization_results.yaml").write_text(yaml.safe_dump({"name": "optuna", "best_value": 0.4}))
    assert report.is_sweep(study) and [g.root for g in report.find_groups(multirun)] == [other, study]
    rep = report.build_reports(multirun)[1]
    assert sorted(r.variant for r in rep.runs) == ["fdd [student.lr=0.003]", "fdd [student.lr=0.01]"]
    assert rep.missing == [] and report.expected_jobs(study) == []


def test_expected_jobs_only_for_the_basic_sweeper(tmp_path):
    basic = write_sweep(tmp_path / "a", ["augmentation=fdd,none", "seed=0,1"], {})
    assert len(report.expected_jobs(basic)) == 4
    optuna = write_sweep(tmp_path / "b", ["augmentation=fdd,none"], {}, sweeper=OPTUNA)
    assert report.expected_jobs(optuna) == []
    ranged = write_sweep(tmp_path / "c", ["seed=range(0,3)"], {})
    assert report.expected_jobs(ranged) == []  # not expanded here: no guess


# ---------------------------------------------------------------------- real Hydra sweeps
def _multirun(log_dir: Path, *overrides: str) -> List[Path]:
    """``python -m fdd.main -m --dry-run`` jobs (no work): the run directories its jobs got."""
    env = {**os.environ, "FDD_ROOT": str(log_dir)}
    cmd = [
        sys.executable,
        "-m",
        "fdd.main",
        "-m",
        "dry_run=true",
        "logger=none",
        f"paths.log_dir={log_dir}",
        *overrides,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [Path(p) for p in re.findall(r"run directory: (\S+)", proc.stdout + proc.stderr)]


def test_each_sweep_has_its_own_folder_named_by_its_command(tmp_path):
    multirun = tmp_path / "fdd" / "multirun"
    jobs = _multirun(tmp_path, "augmentation=fdd,none", "seed=0,1")
    sweep = multirun / "augmentation=fdd,none,seed=0,1"  # sorted overrides; dry_run and logger are cosmetic
    assert (sweep / "multirun.yaml").is_file()
    assert sorted(j.relative_to(multirun) for j in jobs) == sorted(
        Path(sweep.name, f"augmentation={a},seed={s}") for a in ("fdd", "none") for s in (0, 1)
    )
    # the same command: the same folder; another command: a folder of its own, the first untouched
    assert _multirun(tmp_path, "augmentation=fdd,none", "seed=0,1") == jobs
    before = (sweep / "multirun.yaml").read_text()
    other = _multirun(tmp_path, "augmentation=fdd,random", "seed=0")
    assert {j.parent for j in other} == {multirun / "augmentation=fdd,random,seed=0"}
    assert sorted(p.parent.name for p in multirun.glob("*/multirun.yaml")) == [
        "augmentation=fdd,none,seed=0,1",
        "augmentation=fdd,random,seed=0",
    ]
    assert (sweep / "multirun.yaml").read_text() == before


def test_an_explicit_sweep_dir_is_kept(tmp_path):
    """experiments/ablation.sh passes hydra.sweep.dir so two sweep commands share one folder."""
    jobs = _multirun(tmp_path, "augmentation=fdd,none", "hydra.sweep.dir=${paths.log_dir}/mine")
    assert {j.parent for j in jobs} == {tmp_path / "mine"} and (tmp_path / "mine" / "multirun.yaml").is_file()
    more = _multirun(tmp_path, "augmentation=fdd,none,random", "hydra.sweep.dir=${paths.log_dir}/mine")
    assert set(jobs) < set(more) and {j.parent for j in more} == {tmp_path / "mine"}


def test_a_sweep_on_the_submitit_launcher_uses_the_same_folders(tmp_path):
    """submitit pickles each job's config to another process: the sweep's folder name goes with it."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    _multirun(tmp_path, "hydra/launcher=submitit_local", "augmentation=fdd,none")  # the jobs log to .submitit/
    multirun = tmp_path / "fdd" / "multirun"
    jobs = sorted(p.parent.parent.relative_to(multirun) for p in multirun.rglob(".hydra/overrides.yaml"))
    assert jobs == [
        Path("augmentation=fdd,none", "augmentation=fdd"),
        Path("augmentation=fdd,none", "augmentation=none"),
    ]
    assert (multirun / "augmentation=fdd,none" / "multirun.yaml").is_file()


def test_an_optuna_search_names_its_sweep_folder():
    """hparams_search names no run, but it is what a search sweep is: `fdd -m hparams_search=optuna`
    gets multirun/hparams_search=optuna/, not the multirun/default a plain sweep could share."""
    from fdd.config import key_role
    from fdd.main import sweep_key_role
    from fdd.runtime.identity import run_name

    assert run_name(["hparams_search=optuna"], sweep_key_role) == "hparams_search=optuna"
    assert run_name(["hparams_search=optuna", "logger.mode=offline"], sweep_key_role) == "hparams_search=optuna"
    assert run_name(["hparams_search=optuna"], key_role) == "default"  # a trial's run is named by its own overrides
