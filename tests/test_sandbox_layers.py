"""Each sandbox layer on its own, so one removed is seen even when the others would still
contain the program: the in-worker timer (answers before the parent's kill), the CPU limit
(answers before the wall clock), and the process and file-size limits (set in the worker, so a fork
or a big write fails even where an import of ``os`` slipped through)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fdd.sandbox import Sandbox, SandboxLimits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_in_worker_timer_stops_a_loop_without_the_parent_killing_the_worker():
    # cpu_s is high so only the timer can fire before the parent's wall clock (timeout + grace).
    with Sandbox(SandboxLimits(workers=1, timeout_s=0.3, cpu_s=30)) as sb:
        assert sb.run("answer = 1").value == 1.0  # the worker is up: only the program is timed below
        t0 = time.monotonic()
        res = sb.run("while True:\n    pass\n")
        elapsed = time.monotonic() - t0
        assert res.error == "timeout" and res.detail.startswith("over 0.3s") and "in-worker timer" in res.detail
        assert sb.stats["restarts"] == 0 and elapsed < 0.3 + sb.grace_s
        assert sb.run("answer = 2 + 3").value == 5.0  # the same worker goes on


def test_the_cpu_limit_stops_a_loop_long_before_the_wall_clock():
    # The wall-clock budget is far away, so only RLIMIT_CPU (re-armed per program) can end it early.
    with Sandbox(SandboxLimits(workers=1, timeout_s=60, cpu_s=1)) as sb:
        t0 = time.monotonic()
        res = sb.run("while True:\n    pass\n")
        assert res.error == "cpu_limit" and time.monotonic() - t0 < 40
        assert sb.run("answer = 1 + 1").value == 2.0


_LIMITS_PROBE = """
import os, resource
from fdd.sandbox.confine import drop_privileges, set_limits
drop_privileges()
set_limits(256)
print(resource.getrlimit(resource.RLIMIT_NPROC)[0], flush=True)
try:
    pid = os.fork()
except OSError as e:
    print("fork refused", type(e).__name__, flush=True)
else:
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print("fork allowed", flush=True)
import signal, tempfile
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails with EFBIG instead of killing us
with tempfile.TemporaryFile() as f:
    try:
        f.write(b"x" * (2 << 20))
        f.flush()
    except OSError as e:
        print("write refused", type(e).__name__, flush=True)
    else:
        print("write allowed", flush=True)
"""


def test_the_worker_limits_forbid_new_processes_and_big_files():
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _LIMITS_PROBE], capture_output=True, text=True, env=env, timeout=60, cwd="/"
    )
    lines = out.stdout.split("\n")
    assert lines[0] == "0", out.stderr
    assert lines[1].startswith("fork refused"), out.stdout + out.stderr
    assert lines[2].startswith("write refused"), out.stdout + out.stderr


def test_workers_import_nothing_after_dropping_privileges():
    """A worker drops to an unprivileged user that may not read the interpreter's library folder
    (a Python under /root, mode 0700): every module it needs is imported at module level, so no
    function of the worker's modules imports lazily (``builtins`` is always loaded)."""
    import ast
    from pathlib import Path

    import fdd.sandbox.confine
    import fdd.sandbox.limits
    import fdd.sandbox.policy
    import fdd.sandbox.result
    import fdd.sandbox.worker

    lazy = []
    for mod in (fdd.sandbox.worker, fdd.sandbox.confine, fdd.sandbox.policy, fdd.sandbox.result, fdd.sandbox.limits):
        tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
        lazy += [
            (mod.__name__, node.lineno, alias.name)
            for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
            if alias.name != "builtins"
        ]
    assert lazy == []


def test_a_worker_is_a_fresh_interpreter_that_imports_the_parents_modules():
    """Workers are started with ``subprocess`` (a clean environment, fdd/sandbox/pool.py) and find
    fdd on the parent's sys.path, so the code they run is the parent's (a scratch copy's included)."""
    with Sandbox(SandboxLimits(workers=1, timeout_s=5), ast_check=False) as sb:
        esc = "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\n"
        res = sb.run(esc + "answer = g['sys'].modules['fdd.sandbox.worker'].__file__")
        assert res.answer_text == sys.modules["fdd.sandbox.worker"].__file__, res
        assert sb.run(esc + "answer = g['getppid']()").value == os.getpid()


def test_the_module_whitelist_on_its_own():
    """With the AST check off, the import hook alone refuses a module outside the whitelist."""
    with Sandbox(SandboxLimits(workers=1, timeout_s=5), ast_check=False) as sb:
        assert sb.run("import math\nanswer = math.floor(2.5)").value == 2.0
        res = sb.run("import os\nanswer = 1")
        assert res.value is None and res.error == "forbidden", res
