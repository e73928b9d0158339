"""An installed wheel runs without a checkout: the Hydra configs ship inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_non_editable_install_runs_the_fast_debug_run_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("fdd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fdd/conf/config.yaml" in names and "fdd/conf/teacher/prompts/default.yaml" in names
    site = tmp_path / "site"  # a plain (non-editable) install of the wheel alone; its dependencies come from this venv
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True
    )
    work = tmp_path / "elsewhere"  # no checkout in sight: not the cwd, not on the path
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "FDD_ROOT": str(work), "WANDB_MODE": "disabled"}
    where = subprocess.run(
        [sys.executable, "-c", "import fdd; print(fdd.__file__)"], cwd=work, env=env, capture_output=True, text=True
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    run = subprocess.run(
        [sys.executable, "-m", "fdd", "debug=fast"], cwd=work, env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (metrics,) = (work / "outputs").rglob("metrics.jsonl")
    assert len(metrics.read_text().splitlines()) == 3  # round 0 plus the two rounds of debug=fast
