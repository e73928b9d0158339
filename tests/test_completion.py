"""Tab completion: Hydra's query (``-sc query=bash``) for the ``fdd`` and ``python -m fdd.main``
forms, Hydra's own script for ``fdd``, and the bash function ``fdd completion bash`` prints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fdd.cli import BASH_COMPLETION, completion_line
from tests.conftest import ROOT

BIN = Path(sys.executable).parent
FDD = BIN / "fdd"
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
needs_fdd = pytest.mark.skipif(not FDD.is_file(), reason="the fdd console script is not installed next to python")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def query(line: str, *cmd: str) -> list:
    """What Hydra's completion query answers for the command line ``line`` (``COMP_LINE``)."""
    env = {**ENV, "COMP_LINE": line, "COMP_POINT": str(len(line))}
    out = subprocess.run([*cmd, "-sc", "query=bash"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.parametrize(
    "line, expected",
    [
        ("python -m fdd.main stud", "fdd stud"),
        ("/venv/bin/python3 -m fdd.main -m augmentation=fdd,none lo", "fdd -m augmentation=fdd,none lo"),
        ("python -u -m fdd ", "fdd "),
        ("python -m fdd.main", "fdd "),
        ("fdd stud", "fdd stud"),
        ("python train.py stud", "python train.py stud"),  # Hydra's own python-script form
        ("python -m fdd_other stud", "python -m fdd_other stud"),
    ],
)
def test_completion_line(line, expected):
    assert completion_line(line) == expected


@needs_fdd
def test_query_for_the_fdd_form():
    assert "student=" in query("fdd stud", str(FDD))
    assert "student=tiny-word" in query("fdd student=ti", str(FDD))


def test_query_for_the_python_m_fdd_main_form():
    """Hydra reads ``-m fdd.main`` in the line as the multirun flag and an override and fails;
    ``python -m fdd`` (fdd/cli.py) hands it the line as ``fdd ...``: what the bash function runs."""
    assert "student=" in query("python -m fdd.main stud", sys.executable, "-m", "fdd")
    assert "augmentation=" in query(f"{sys.executable} -m fdd.main -m aug", sys.executable, "-m", "fdd")
    assert "student=" in query("fdd stud", sys.executable, "-m", "fdd.main")  # the query itself is Hydra's


def complete(script: str, line: str, words: list, function: str) -> list:
    """Source ``script`` in bash and run the completion ``function`` as bash would for ``line``
    (COMP_WORDS split at = as bash's COMP_WORDBREAKS does); returns COMPREPLY."""
    setup = "\n".join(
        [
            script,
            f"COMP_LINE={_q(line)}; COMP_POINT=${{#COMP_LINE}}",
            "COMP_WORDS=(" + " ".join(_q(w) for w in words) + ")",
            "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()",
            f"{function} {_q(words[0])} {_q(words[-1])} {_q(words[-2] if len(words) > 1 else '')}",
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ]
    )
    out = subprocess.run(["bash", "-c", setup], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return [w for w in out.stdout.splitlines() if w]


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


@needs_bash
@pytest.mark.parametrize(
    "line, words, expected, absent",
    [
        ("python -m fdd.main stud", ["python", "-m", "fdd.main", "stud"], "student=", None),
        ("python -m fdd.main -m aug", ["python", "-m", "fdd.main", "-m", "aug"], "augmentation=", None),
        ("python -m fdd.main ", ["python", "-m", "fdd.main", ""], "trainer=", "report"),
        ("fdd student=ti", ["fdd", "student", "=", "ti"], "tiny-word", "student=tiny-word"),  # after the =
        ("fdd ", ["fdd", ""], "report", None),  # fdd's subcommands next to the config groups
        ("python -m fdd rep", ["python", "-m", "fdd", "rep"], "report", None),
    ],
)
def test_the_bash_function(line, words, expected, absent):
    reply = complete(BASH_COMPLETION, line, words, "_fdd_complete")
    assert expected in reply and (absent is None or absent not in reply), reply


@needs_bash
def test_the_bash_function_leaves_other_command_lines_alone():
    assert complete(BASH_COMPLETION, "python train.py ", ["python", "train.py", ""], "_fdd_complete") == []
    assert complete(BASH_COMPLETION, "fdd report ", ["fdd", "report", ""], "_fdd_complete") == []  # files
    assert complete(BASH_COMPLETION, "fdd completion ", ["fdd", "completion", ""], "_fdd_complete") == ["bash"]


@needs_bash
def test_fdd_completion_bash_registers_the_function():
    script = subprocess.run(
        [sys.executable, "-m", "fdd", "completion", "bash"], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert script.returncode == 0 and script.stdout == BASH_COMPLETION
    out = subprocess.run(
        ["bash", "-c", script.stdout + "\ncomplete -p fdd python python3"], capture_output=True, text=True
    )
    assert out.stdout.count("-F _fdd_complete") == 3, out.stdout + out.stderr


@needs_bash
@needs_fdd
def test_hydras_own_script_for_the_fdd_form():
    """``eval "$(fdd -sc install=bash)"``: Hydra's script, for ``fdd`` only."""
    script = subprocess.run([str(FDD), "-sc", "install=bash"], env=ENV, capture_output=True, text=True, timeout=120)
    assert script.returncode == 0 and "complete -o nospace -o default -F hydra_bash_completion fdd" in script.stdout
    assert "student=" in complete(script.stdout, "fdd stud", ["fdd", "stud"], "hydra_bash_completion")
