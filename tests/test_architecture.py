"""The import-linter contracts of pyproject.toml hold (entry points -> method -> parts -> runtime ->
types; real teachers import neither datasets nor the simulator; the student's generators never import
the student back), and the check would see each one broken."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import ROOT

LINT = "from importlinter.cli import lint_imports; import sys; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def _lint(root):
    return subprocess.run(
        [sys.executable, "-c", LINT],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    shutil.copytree(ROOT / "fdd", tmp_path / "fdd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    types_py = tmp_path / "fdd" / "types.py"
    types_py.write_text(types_py.read_text() + "\n\ndef _planted():\n    import fdd.method.loop  # noqa: F401\n")
    teacher = tmp_path / "fdd" / "teachers" / "base.py"
    teacher.write_text(teacher.read_text() + "\n\ndef _planted():\n    import fdd.sim.world  # noqa: F401\n")
    backends = tmp_path / "fdd" / "students" / "backends.py"  # the circle the renovation cut
    backends.write_text(backends.read_text() + "\n\ndef _planted():\n    import fdd.students.student  # noqa: F401\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "0 kept, 3 broken" in out.stdout, out.stdout


def test_ruff_lint_and_format_are_clean():
    """`ruff check .` and `ruff format --check .` (pyproject.toml), the same as the pre-commit hooks."""
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stdout + out.stderr
