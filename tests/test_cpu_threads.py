"""The entry points choose OpenMP's sleeping wait before torch is imported (fdd/runtime/cpu.py);
a policy the user exported is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = "import os, sys, {module}; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"


def _probe(module: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.parametrize("module", ["fdd.main", "fdd.cli", "fdd.solve"])
def test_the_entry_points_set_a_passive_wait_before_torch_loads(module):
    assert _probe(module) == ["PASSIVE", "False"]  # torch not loaded yet, so OpenMP will read it


def test_a_policy_the_user_set_wins():
    assert _probe("fdd.main", OMP_WAIT_POLICY="ACTIVE") == ["ACTIVE", "False"]
