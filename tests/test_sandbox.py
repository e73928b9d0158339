"""The PoT sandbox: normal programs, conventions, and adversarial programs that must be contained.

After every adversarial program the same sandbox must still answer a normal program.
"""
from __future__ import annotations

import os
import threading
import time

import pytest

from fdd.reasoning.sandbox import ERRORS, ExecResult, Sandbox, strip_fences

OK = "answer = 6 * 7"


@pytest.fixture(scope="module")
def sb():
    with Sandbox(workers=2, timeout_s=1.0, memory_mb=256, cpu_s=2) as s:
        yield s


def assert_usable(sb: Sandbox) -> None:
    r = sb.run(OK)
    assert r == ExecResult(42.0, None), r


# ---------------------------------------------------------------------------- normal programs
@pytest.mark.parametrize("code,value", [
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
])
def test_normal_programs(sb, code, value):
    r = sb.run(code)
    assert r.error is None and r.value == pytest.approx(value), r


@pytest.mark.parametrize("code,error", [
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
])
def test_failures_have_reasons(sb, code, error):
    r = sb.run(code)
    assert r.value is None and r.error == error and r.detail, r
    assert r.error in ERRORS


# ---------------------------------------------------------------------------- adversarial programs
ADVERSARIAL = {
    "infinite loop": ("while True:\n    pass", {"timeout"}),
    "loop swallowing the timer": ("while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
                                  {"timeout"}),
    "huge C-level computation": ("answer = 10**10**9", {"timeout", "memory"}),
    "fork bomb via os": ("import os\nwhile True:\n    os.fork()", {"forbidden", "crashed"}),
    "fork via multiprocessing": ("import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
                                 {"forbidden", "crashed"}),
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
    "module attribute escape": ("import statistics\nanswer = statistics.sys.modules['os'].getpid()", {"error", "forbidden"}),
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
    assert time.monotonic() - t0 < sb.timeout_s + sb.grace_s + 5
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
    with Sandbox(workers=1, timeout_s=5.0) as s:
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
    s = Sandbox(workers=2)
    assert [r.value for r in s.run_many(["answer = 1", "answer = 2", "answer = 3"], progress=True)] == [1.0, 2.0, 3.0]
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError):
        s.run(OK)


def test_throughput_is_well_above_one_process_per_program(sb):
    codes = [f"def solution():\n    return {i} * 3 + 1" for i in range(400)]
    sb.run_many(codes[:10])  # warm up
    t0 = time.perf_counter()
    res = sb.run_many(codes)
    dt = time.perf_counter() - t0
    assert [r.value for r in res] == [float(i * 3 + 1) for i in range(400)]
    assert dt < 4.0, f"{400 / dt:.0f} programs/s"  # ~>1000/s in practice; a process each is ~30/s


def test_strip_fences():
    assert strip_fences("```python\nanswer = 1\n```") == "answer = 1\n"
    assert strip_fences("answer = 2") == "answer = 2"
    assert strip_fences("text\n```\nanswer = 3\n```\nmore") == "answer = 3\n"


def test_pot_format_uses_the_sandbox(sb):
    from fdd.reasoning.formats import get_format

    res = get_format("pot").extract(["```python\ndef solution():\n    return 2 + 2\n```", "answer = 1/0", ""], sb)
    assert [r.value for r in res] == [4.0, None, None]
    assert [r.error for r in res] == [None, "error", "no_answer"]
