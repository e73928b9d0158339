"""The PoT sandbox: normal programs, conventions, and adversarial programs that must be contained.

After every adversarial program the same sandbox must still answer a normal program.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from fdd.reasoning.fences import strip_fences
from fdd.reasoning.programs import run_programs
from fdd.sandbox import ERRORS, ExecResult, Sandbox, SandboxLimits

OK = "answer = 6 * 7"


@pytest.fixture(scope="module")
def sb():
    with Sandbox(SandboxLimits(workers=2, timeout_s=1.0, memory_mb=256, cpu_s=2)) as s:
        yield s


def pot(sb: Sandbox, text: str) -> ExecResult:
    """A PoT rationale's answer, read as the run reads it (fences, the convention of fdd/reasoning/programs.py)."""
    from fdd.reasoning.formats import get_format

    return get_format("pot").extract([text], sb)[0]


def assert_usable(sb: Sandbox) -> None:
    r = sb.run(OK)
    assert r == ExecResult(42.0, None, convention="answer"), r


# ---------------------------------------------------------------------------- normal programs
@pytest.mark.parametrize(
    "code,value",
    [
        ("answer = 3 + 4", 7.0),
        ("def solution():\n    return 10 / 4\n", 2.5),
        ("def solution():\n    x = 3\n    return x * 2\nanswer = 99\n", 6.0),  # solution() wins over answer
        ("```python\nimport math\nanswer = math.floor(7.8)\n```", 7.0),
        ("Here is the program:\n```py\ndef solution():\n    return 5\n```\nThat's it.", 5.0),
        ("from fractions import Fraction\nanswer = Fraction(3, 4)", 0.75),
        ("from decimal import Decimal\nanswer = Decimal('1.25') * 2", 2.5),
        ("import statistics\nanswer = statistics.mean([1, 2, 3, 4])", 2.5),
        ("from collections import Counter\nanswer = Counter('banana')['a']", 3.0),
        ("import itertools, functools\nanswer = functools.reduce(lambda a, b: a * b, itertools.repeat(2, 10))", 1024.0),
        ("import datetime\nanswer = (datetime.date(2024, 3, 1) - datetime.date(2024, 2, 1)).days", 29.0),
        ("answer = '$1,200'", 1200.0),  # a string answer that states a number
        ("answer = 10**20", 1e20),
        ("class Box:\n    def __init__(self, n):\n        self.n = n\nanswer = Box(4).n", 4.0),
        ("def solution():\n    return 7\nif __name__ == '__main__':\n    print(solution())", 7.0),
        ("print('thinking...')\nanswer = -3", -3.0),
        ("import re\nanswer = len(re.findall(r'\\d', 'a1b2c3'))", 3.0),
        ("import random\nrandom.seed(0)\nanswer = random.randint(5, 5)", 5.0),
    ],
)
def test_normal_programs(sb, code, value):
    r = pot(sb, code)
    assert r.error is None and r.value == pytest.approx(value), r


@pytest.mark.parametrize(
    "code,error",
    [
        ("x = 1", "no_answer"),
        ("def helper():\n    return 1", "no_answer"),
        ("answer = True", "non_numeric"),
        ("answer = 'twelve'", "non_numeric"),
        ("answer = [1, 2]", "non_numeric"),
        ("answer = float('nan')", "non_numeric"),
        ("answer = 10**400", "non_numeric"),
        ("answer = 1 / 0", "error"),
        ("def solution():\n    raise ValueError('bad')", "error"),
        ("answer = (", "error"),
        ("raise SystemExit(3)", "error"),
        ("def f(n):\n    return f(n + 1)\nanswer = f(0)", "error"),
        ("answer = undefined_name", "error"),
    ],
)
def test_failures_have_reasons(sb, code, error):
    r = pot(sb, code)
    assert r.value is None and r.error == error and r.detail, r
    assert r.error in ERRORS


# ---------------------------------------------------------------------------- adversarial programs
ADVERSARIAL = {
    "infinite loop": ("while True:\n    pass", {"timeout"}),
    "loop swallowing the timer": (
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
        {"timeout"},
    ),
    "huge C-level computation": ("answer = 10**10**9", {"timeout", "memory"}),
    "fork bomb via os": ("import os\nwhile True:\n    os.fork()", {"forbidden", "crashed"}),
    "fork via multiprocessing": (
        "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
        {"forbidden", "crashed"},
    ),
    "10 GB allocation": ("x = bytearray(10**10)\nanswer = 1", {"memory"}),
    "slow memory growth": ("x = []\nwhile True:\n    x.append(' ' * 10**6)", {"memory"}),
    "write outside temp dir": ("f = open('/tmp/fdd_sandbox_escape.txt', 'w')\nf.write('x')\nanswer = 1", {"forbidden"}),
    "write via pathlib": ("import pathlib\npathlib.Path('/tmp/fdd_sandbox_escape.txt').write_text('x')", {"forbidden"}),
    "socket": ("import socket\ns = socket.socket()\ns.connect(('example.com', 80))", {"forbidden"}),
    "os.system": ('import os; os.system("echo hi")', {"forbidden"}),
    "subprocess": ("import subprocess\nsubprocess.run(['echo', 'hi'])", {"forbidden"}),
    "read /etc/passwd": ("answer = len(open('/etc/passwd').read())", {"forbidden"}),
    "dunder import": ("answer = __import__('os').getpid()", {"forbidden"}),
    "exec": ("exec('import os')", {"forbidden"}),
    "eval": ("answer = eval('1+1')", {"forbidden"}),
    "getattr escape": ("answer = getattr((), '__class__')", {"forbidden"}),
    "subclasses escape": ("answer = ().__class__.__base__.__subclasses__()", {"forbidden"}),
    "frame escape": ("def g():\n    yield x.gi_frame.f_back.f_globals\nx = g()\nanswer = next(x)", {"forbidden"}),
    "module attribute escape": (
        "import statistics\nanswer = statistics.sys.modules['os'].getpid()",
        {"error", "forbidden"},
    ),
    "ctypes": ("import ctypes\nctypes.string_at(0)", {"forbidden"}),
    "huge print": ("for i in range(10**9):\n    print(i)", {"output_limit"}),
    "one giant print": ("print('x' * (10**7))\nanswer = 1", {"output_limit", "memory"}),
    "input": ("answer = int(input())", {"forbidden"}),
    "exit": ("exit(0)", {"forbidden"}),
    "private module name": ("from random import _os\nanswer = 1", {"forbidden"}),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_contained(sb, name):
    code, allowed = ADVERSARIAL[name]
    t0 = time.monotonic()
    r = sb.run(code)
    assert r.value is None and r.error in allowed, (name, r)
    assert time.monotonic() - t0 < sb.limits.timeout_s + sb.grace_s + 5
    assert_usable(sb)


def test_no_file_escaped():
    assert not os.path.exists("/tmp/fdd_sandbox_escape.txt")


def test_monkeypatching_does_not_leak_between_programs(sb):
    assert sb.run("import math\nmath.pi = 3\nanswer = math.pi").value == 3.0
    assert sb.run("import math\nanswer = math.pi").value == pytest.approx(3.141592653589793)


def test_run_many_preserves_order_and_mixes_failures(sb):
    codes = [f"answer = {i}" if i % 5 else "while True: pass" for i in range(40)]
    res = sb.run_many(codes)
    assert len(res) == 40
    for i, r in enumerate(res):
        if i % 5:
            assert r.value == float(i), (i, r)
        else:
            assert r.error == "timeout", (i, r)
    assert sb.run_many([]) == []


def test_dead_worker_is_reported_as_crashed_and_replaced():
    with Sandbox(SandboxLimits(workers=1, timeout_s=5.0)) as s:
        assert s.run(OK).value == 42.0
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", s.run("while True:\n    pass")))
        t.start()
        time.sleep(0.5)
        s._pool[0].proc.kill()  # simulate a segfault / OOM kill of the worker
        t.join(10)
        assert box["r"].error == "crashed", box
        assert s.stats["restarts"] >= 1
        assert s.run(OK).value == 42.0


def test_progress_bar_and_closed_sandbox():
    s = Sandbox(SandboxLimits(workers=2))
    assert [r.value for r in s.run_many(["answer = 1", "answer = 2", "answer = 3"], progress=True)] == [1.0, 2.0, 3.0]
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError):
        s.run(OK)


def test_throughput_is_well_above_one_process_per_program(sb):
    codes = [f"def solution():\n    return {i} * 3 + 1" for i in range(400)]
    run_programs(sb, codes[:10])  # warm up
    t0 = time.perf_counter()
    res = run_programs(sb, codes)
    dt = time.perf_counter() - t0
    assert [r.value for r in res] == [float(i * 3 + 1) for i in range(400)]
    assert dt < 4.0, f"{400 / dt:.0f} programs/s"  # ~>1000/s in practice; a process each is ~30/s


def test_strip_fences():  # the PoT format strips them; the sandbox runs what it is given
    assert strip_fences("```python\nanswer = 1\n```") == "answer = 1\n"
    assert strip_fences("answer = 2") == "answer = 2"
    assert strip_fences("text\n```\nanswer = 3\n```\nmore") == "answer = 3\n"


def test_pot_format_uses_the_sandbox(sb):
    from fdd.reasoning.formats import get_format

    res = get_format("pot").extract(["```python\ndef solution():\n    return 2 + 2\n```", "answer = 1/0", ""], sb)
    assert [r.value for r in res] == [4.0, None, None]
    assert [r.error for r in res] == [None, "error", "no_answer"]


def test_the_sandbox_reads_no_convention_of_its_own(sb):
    """Without an answer reader a program's answer is its variable ``answer``, and text stays text:
    solution(), printed numbers and numbers in strings are the PoT convention's (fdd/reasoning/programs.py)."""
    assert sb.run("def solution():\n    return 5\n").error == "no_answer"
    assert sb.run("print(3)").error == "no_answer"
    text = sb.run("answer = '$1,200'")
    assert (text.value, text.error, text.answer_text, text.convention) == (None, "non_numeric", "$1,200", "answer")
    assert pot(sb, "answer = '$1,200'") == ExecResult(1200.0, None, convention="answer")
    fenced = sb.run("```python\nanswer = 1\n```")
    assert fenced.error == "error" and "SyntaxError" in fenced.detail, fenced


# ---------------------------------------------------------------------------- each layer on its own
def test_limits_are_checked_in_one_place():
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="timeout_s must be > 0"):
            SandboxLimits(timeout_s=bad)
        with pytest.raises(ValueError, match="timeout_s must be > 0"):
            Sandbox(timeout_s=bad)  # keyword overrides of the limits go through the same check
    with pytest.raises(ValueError, match="os_layer"):
        SandboxLimits(os_layer="maybe")
    with pytest.raises(ValueError, match="sandbox.workers"):
        SandboxLimits(workers=0)
    with pytest.raises(TypeError):
        Sandbox(wrokers=2)  # a typo is not silently ignored
    assert SandboxLimits(timeout_s="3", cpu_s=2.0) == SandboxLimits(timeout_s=3.0, cpu_s=2)


def test_limits_come_from_the_config_section(tmp_path):
    from fdd.config import validate
    from tests.conftest import compose_cfg

    obj = validate(compose_cfg(["sandbox.workers=3", "sandbox.os_layer=off"], tmp_path))
    limits = SandboxLimits.from_config(obj.sandbox)
    assert limits == SandboxLimits(workers=3, timeout_s=obj.sandbox.timeout_s, os_layer="off")
    assert SandboxLimits.from_config(compose_cfg([], tmp_path).sandbox) == SandboxLimits()  # a DictConfig too


def test_in_worker_timer_fires_before_the_parent_kill():
    with Sandbox(SandboxLimits(workers=1, timeout_s=0.5, cpu_s=60)) as s:
        t0 = time.monotonic()
        r = s.run("while True:\n    pass")
        assert r.error == "timeout" and "in-worker timer" in r.detail, r
        assert time.monotonic() - t0 < 0.5 + s.grace_s  # not the parent's kill
        assert s.stats["restarts"] == 0  # the worker survived its program


def test_parent_kills_a_program_that_swallows_the_timer():
    with Sandbox(SandboxLimits(workers=1, timeout_s=0.5, cpu_s=60)) as s:
        r = s.run(ADVERSARIAL["loop swallowing the timer"][0])
        assert r.error == "timeout" and "parent" in r.detail, r
        assert s.stats["restarts"] == 1
        assert_usable(s)


def test_cpu_limit_is_named_not_called_a_timeout():
    with Sandbox(SandboxLimits(workers=1, timeout_s=60, cpu_s=1)) as s:
        r = s.run("while True:\n    pass")
        assert r.error == "cpu_limit" and "CPU" in r.detail, r
        assert_usable(s)


def test_memory_limit_on_its_own():
    # bytearray is calloc'ed: without RLIMIT_AS the pages are never touched and this succeeds.
    with Sandbox(SandboxLimits(workers=1, timeout_s=5, memory_mb=64)) as s:
        r = s.run("x = bytearray(400 * 2**20)\nanswer = 1")
        assert r.error == "memory", r
        assert s.run("x = bytearray(8 * 2**20)\nanswer = len(x)").value == 8 * 2**20


# A __subclasses__ escape to the os module's globals, for tests with the AST check off.
ESCAPE = (
    "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\n"
)


def test_process_limit_on_its_own():
    with Sandbox(SandboxLimits(workers=1, timeout_s=5, os_layer="off"), ast_check=False) as s:
        r = s.run(ESCAPE + "pid = g['fork']()\nif pid == 0:\n    g['_exit'](0)\nanswer = 1")
        assert r.error == "error" and "BlockingIOError" in r.detail, r


@pytest.fixture
def listener():
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    yield srv
    srv.close()


def _escapes(s: Sandbox, target: str, port: int):
    """(write result, connect result) of two escapes that the AST check would have refused."""
    assert s.run(ESCAPE + "answer = g['getpid']()").ok  # the AST check is really off: os is reached
    write = s.run(
        ESCAPE + f"fd = g['open']({target!r}, g['O_WRONLY'] | g['O_CREAT'], 0o666)\n"
        "g['write'](fd, b'escaped')\nanswer = 1"
    )
    connect = s.run(
        ESCAPE + "socket = g['sys'].modules['builtins'].__import__('socket')\n"
        f"c = socket.socket()\nc.settimeout(2)\nc.connect(('127.0.0.1', {port}))\nanswer = 1"
    )
    return write, connect


@pytest.fixture
def world_writable():
    """A folder like /tmp (directly under it, mode 0777): the worker, even as nobody, may write
    here unless the OS layer stops it."""
    import pathlib
    import shutil
    import tempfile

    d = pathlib.Path(tempfile.mkdtemp(prefix="fdd-escape-", dir="/tmp" if os.path.isdir("/tmp") else None))
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_without_the_os_layer_the_escapes_succeed(world_writable, listener):
    """The control: with both the AST check and the OS layer off, these escapes do get out."""
    with Sandbox(SandboxLimits(workers=1, timeout_s=5, os_layer="off"), ast_check=False) as s:
        write, connect = _escapes(s, str(world_writable / "escape.txt"), listener.getsockname()[1])
    assert write.ok and (world_writable / "escape.txt").read_bytes() == b"escaped", write
    assert connect.ok, connect
    listener.accept()[0].close()


def test_os_layer_stops_escapes_with_the_ast_check_off(world_writable, listener):
    import socket

    from fdd.sandbox import landlock_abi

    with Sandbox(SandboxLimits(workers=1, timeout_s=5), ast_check=False) as s:
        layers = s.os_layers()
        write, connect = _escapes(s, str(world_writable / "escape.txt"), listener.getsockname()[1])
        inside = s.run(
            ESCAPE + "fd = g['open']('own.txt', g['O_WRONLY'] | g['O_CREAT'], 0o600)\nanswer = g['write'](fd, b'ok')"
        )
    abi = landlock_abi()
    if _netns_probe().startswith("refused"):
        assert layers["netns"], layers
    if abi >= 1:
        assert layers["landlock_fs"], layers
    if abi >= 4:
        assert layers["landlock_net"], layers
    assert inside.value == 2.0, inside  # the program's own temporary directory stays writable
    if not layers["landlock_fs"]:
        pytest.skip(f"Landlock not available here: {layers['missing']}")
    assert write.error == "error" and "PermissionError" in write.detail, write
    assert not (world_writable / "escape.txt").exists()
    if not (layers["landlock_net"] or layers["netns"]):
        pytest.skip(f"no network layer here: {layers['missing']}")
    assert connect.error == "error", connect
    assert "PermissionError" in connect.detail or "unreachable" in connect.detail, connect
    with pytest.raises(socket.timeout):
        listener.accept()


def _in_child(code: str) -> str:
    """Run ``code`` in a fresh interpreter (a layer applied there cannot leak into the tests)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_landlock_on_its_own(world_writable, listener):
    from fdd.sandbox import landlock_abi

    if landlock_abi() < 1:
        pytest.skip("Landlock not available on this kernel")
    own = world_writable / "own"
    own.mkdir()
    res = _in_child(f"""
import socket
from fdd.sandbox.confine import apply_landlock
print(apply_landlock({str(own)!r}))
open({str(own / "a.txt")!r}, 'w').write('ok')
for what, fn in [('write', lambda: open({str(world_writable / "b.txt")!r}, 'w')),
                 ('connect', lambda: socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), 2))]:
    try:
        fn()
        print(what, 'allowed')
    except PermissionError:
        print(what, 'denied')
""")
    assert "write denied" in res and (own / "a.txt").read_text() == "ok" and not (world_writable / "b.txt").exists()
    if landlock_abi() >= 4:
        assert "connect denied" in res, res


def _netns_probe(port: int = 9) -> str:
    """'refused ...' where this process may create a network namespace and it has no network."""
    return _in_child(f"""
import socket
from fdd.sandbox.confine import unshare_network
try:
    unshare_network()
except OSError as e:
    print('unavailable', e)
    raise SystemExit(0)
try:
    socket.create_connection(('127.0.0.1', {port}), 2)
    print('connected')
except OSError as e:
    print('refused', e.errno)
""")


def test_network_namespace_on_its_own(listener):
    res = _netns_probe(listener.getsockname()[1])
    if res.startswith("unavailable"):
        pytest.skip(res)
    assert res.startswith("refused"), res


# ---------------------------------------------------------------------------- outage vs bad programs
def test_a_batch_of_bad_programs_is_not_an_outage(sb):
    res = sb.run_many(["while True:\n    pass"] * 3)
    assert [r.error for r in res] == ["timeout"] * 3


def test_workers_that_cannot_start_are_an_outage(monkeypatch):
    from fdd.sandbox import pool as mod

    def no_fork(self, spec):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(mod._Worker, "__init__", no_fork)
    with Sandbox(SandboxLimits(workers=2)) as s:
        with pytest.raises(mod.SandboxUnavailableError, match="all 3 programs failed with crashed.*trivial program"):
            s.run_many([OK, OK, OK])


def test_a_sandbox_that_fails_every_program_is_an_outage():
    import shutil

    from fdd.sandbox import SandboxUnavailableError

    with Sandbox(SandboxLimits(workers=1)) as s:
        shutil.rmtree(s._tmp_root)  # no program can get a working directory any more
        with pytest.raises(SandboxUnavailableError) as e:
            s.run_many([OK, "answer = 1"])
    assert "\n" not in str(e.value) and "sandbox unavailable" in str(e.value)


def test_outage_is_one_error_line_for_the_cli_and_config_refuses_bad_sandbox_values(tmp_path):
    from fdd.config import ConfigError, validate
    from fdd.main import _user_errors
    from fdd.sandbox import SandboxUnavailableError
    from tests.conftest import compose_cfg

    assert SandboxUnavailableError in _user_errors()
    for override, message in [
        ("sandbox.timeout_s=-1", "sandbox.timeout_s must be > 0"),
        ("sandbox.timeout_s=0", "sandbox.timeout_s must be > 0"),
        ("sandbox.cpu_s=0", "sandbox.cpu_s"),
        ("sandbox.workers=0", "sandbox.workers must be >= 1"),
        ("sandbox.memory_mb=8", "sandbox.memory_mb must be >= 16"),
        ("sandbox.os_layer=maybe", "sandbox.os_layer"),
    ]:
        with pytest.raises(ConfigError, match=message):
            validate(compose_cfg([override], tmp_path))
    assert validate(compose_cfg(["sandbox.os_layer=off"], tmp_path)).sandbox.os_layer == "off"


def test_require_mode_runs_only_with_landlock():
    from fdd.sandbox import SandboxUnavailableError, landlock_abi

    if landlock_abi() < 1:
        with pytest.raises(SandboxUnavailableError, match="Landlock is not available"):
            Sandbox(SandboxLimits(os_layer="require"))
        return
    with Sandbox(SandboxLimits(workers=1, os_layer="require")) as s:
        assert_usable(s)
        assert s.os_layers()["landlock_fs"]


# ---------------------------------------------------------------------------- a clean start
SECRET = "sk-fdd-test-not-a-real-key-0123456789"
# What a worker's environment may hold (fdd.sandbox.pool.WORKER_ENV, and what Python sets itself).
WORKER_ENV = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONHASHSEED", "OPENBLAS_NUM_THREADS"}


def test_workers_cannot_see_the_parents_environment(monkeypatch):
    """A program past every Python-level check (here: the AST check off, ``os`` reached through
    ``__subclasses__``) finds no API key of the parent: not in os.environ, and not in
    /proc/self/environ (the environment the worker was started with)."""
    for name in ("OPENAI_API_KEY", "WANDB_API_KEY", "FDD_TEST_SECRET"):
        monkeypatch.setenv(name, SECRET)
    # drop_privileges=False: a worker that dropped root may not read its own /proc/self/environ at all
    with Sandbox(SandboxLimits(workers=1, timeout_s=5), ast_check=False, drop_privileges=False) as s:
        names = s.run(ESCAPE + "answer = ' '.join(sorted(g['environ']))")
        leaked = s.run(ESCAPE + f"answer = sum({SECRET!r} in v for v in g['environ'].values())")
        initial = s.run(
            ESCAPE + "fd = g['open']('/proc/self/environ', g['O_RDONLY'])\n"
            f"answer = g['read'](fd, 1 << 20).count({SECRET.encode()!r})"
        )
        pid = s._pool[0].proc.pid
        from_outside = None
        if os.path.exists(f"/proc/{pid}/environ"):
            with open(f"/proc/{pid}/environ", "rb") as f:
                from_outside = f.read()
    assert names.answer_text is not None and set(names.answer_text.split()) <= WORKER_ENV, names
    assert leaked.value == 0.0, leaked
    if from_outside is None:
        pytest.skip("no /proc here: only os.environ was checked")
    assert initial.value == 0.0, initial  # the worker's own view of its start
    assert SECRET.encode() not in from_outside  # the parent's view of the same
    assert {v.split(b"=", 1)[0].decode() for v in from_outside.split(b"\0") if v} <= WORKER_ENV, from_outside


def test_worker_env_keeps_only_locale_path_and_hash_seed(monkeypatch):
    from fdd.sandbox.pool import worker_env

    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    env = worker_env()
    assert set(env) <= WORKER_ENV and env["PYTHONHASHSEED"] == "7" and SECRET not in env.values()


def test_a_taken_over_worker_cannot_make_the_parent_run_code(tmp_path):
    """Results come back as JSON, never pickle: a pickle that would run a shell command in the
    parent, written straight to the worker's socket, is a malformed message and nothing more."""
    marker = tmp_path / "parent-ran-it"
    payload = f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode()
    inject = (
        ESCAPE
        + f"msg = len({payload!r}).to_bytes(4, 'big') + {payload!r}\n"
        + "for fd in range(3, 64):\n"
        + "    try:\n"
        + "        if g['st'].S_ISSOCK(g['fstat'](fd).st_mode):\n"
        + "            g['write'](fd, msg)\n"
        + "    except OSError:\n"
        + "        pass\n"
        + "answer = 1\n"
    )
    with Sandbox(SandboxLimits(workers=1, timeout_s=5), ast_check=False) as s:
        r = s.run(inject)
        time.sleep(0.2)
        assert not marker.exists()
        assert r.error == "crashed" and "malformed" in r.detail, r
        assert_usable(s)  # a fresh worker took its place
