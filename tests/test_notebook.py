"""notebooks/fdd_run.ipynb executes end to end on a tiny run."""

from __future__ import annotations

import pytest

from fdd.main import run
from tests.conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_notebook_runs_on_a_tiny_run(tiny_cfg, tmp_path, monkeypatch):
    run(tiny_cfg())
    monkeypatch.setenv("FDD_RUN_DIR", str(tmp_path / "run"))
    nb = nbformat.read(ROOT / "notebooks" / "fdd_run.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert str(tmp_path / "run") in text and "problems added by the teacher" in text and "parent:" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the per-round figure
