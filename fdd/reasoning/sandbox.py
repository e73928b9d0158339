"""A sandbox for model-written Program-of-Thought programs (teacher and student).

Design (why it is shaped like this):

* **Persistent workers.** Starting a Python interpreter per program costs ~20-40 ms; a warm worker
  compiles and runs a short program in well under a millisecond. Programs are sent to a worker in
  batches (one IPC round-trip per batch) and results stream back one by one, so the parent can
  enforce a per-program wall clock.
* **Layered containment.** Inside the worker each program runs with
  - an AST check that refuses non-whitelisted imports, the dangerous builtins (``open``, ``exec``,
    ``eval``, ``getattr``, ...) and any attribute starting with ``_`` or reaching frames
    (``f_globals``, ``gi_frame``...), the usual routes out of a Python-level sandbox;
  - restricted builtins and an ``__import__`` that hands out *copies* of whitelisted modules with
    their module-valued attributes removed (``statistics.sys``, ``fractions.sys`` would otherwise
    be a way to ``os``);
  - a fresh temporary working directory; bounded ``print`` capture;
  - OS limits: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (re-armed per program, because the limit is
    cumulative per process), ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` = 0 (no fork); if the worker runs
    as root it first drops to ``nobody`` where it can, because root ignores ``RLIMIT_NPROC``;
  - an in-worker ``SIGALRM`` timer, and a parent-side wall clock that kills and replaces a worker
    stuck in C code (``10**10**9``) or swallowing the timer's exception.
* **Never hang, never raise.** Every failure becomes an :class:`ExecResult` with a short reason;
  a dead worker is replaced and its program reported as ``"crashed"``.

This is a defence for *model-written* code, not a hardened jail for adversaries with kernel
exploits: run real untrusted workloads in a container as well.
"""
from __future__ import annotations

import ast
import logging
import multiprocessing as mp
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

__all__ = ["ExecResult", "Sandbox", "ERRORS", "strip_fences", "DEFAULT_MODULES"]

ERRORS = ("timeout", "forbidden", "memory", "error", "no_answer", "non_numeric", "output_limit", "crashed")

DEFAULT_MODULES: Tuple[str, ...] = (
    "math", "cmath", "fractions", "decimal", "statistics", "itertools", "functools", "collections",
    "collections.abc", "datetime", "re", "random", "string", "heapq", "bisect", "numbers", "typing",
)
# Builtins a program may not name at all (AST check) and that are replaced by a raising stub.
FORBIDDEN_BUILTINS = frozenset({
    "open", "exec", "eval", "compile", "__import__", "input", "breakpoint", "help", "exit", "quit",
    "globals", "locals", "vars", "getattr", "setattr", "delattr", "memoryview", "copyright", "credits",
    "license",
})
# Attribute names that lead to frames, code objects or globals without a leading underscore.
FORBIDDEN_ATTRS = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code",
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "co_code",
    "mro", "format_map",
})
# Names dropped from whitelisted modules that would reach files or evaluate strings as code.
_DROP_MODULE_ATTRS = frozenset({
    "load", "loads", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt",
    "fromfile", "tofile", "memmap", "fromregex", "DataSource", "ctypeslib", "get_type_hints",
    "ForwardRef", "sympify", "parse_expr", "lambdify", "S", "preview", "SystemRandom",
})
MAX_CODE_CHARS = 100_000

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)


@dataclass
class ExecResult:
    """Outcome of one program: a finite float answer, or an error from :data:`ERRORS`."""

    value: Optional[float]
    error: Optional[str]
    detail: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


def strip_fences(text: str) -> str:
    """The code inside the first ```python fence (the text itself when there is none)."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


# --------------------------------------------------------------------------------------------
# worker side (runs in the child process)
# --------------------------------------------------------------------------------------------
class _Violation(BaseException):
    """A forbidden operation; BaseException so ``except Exception`` in the program cannot hide it."""


class _Timeout(BaseException):
    pass


class _OutputLimit(BaseException):
    pass


def _check_ast(tree: ast.AST, allowed: frozenset) -> Optional[str]:
    """Why the program is refused before running, or None."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "") not in allowed:
                return f"import of {node.module!r}"
            if any(a.name.startswith("_") for a in node.names):
                return f"import of a private name from {node.module!r}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name not in allowed:
                    return f"import of {a.name!r}"
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in FORBIDDEN_ATTRS:
                return f"attribute {node.attr!r}"
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_BUILTINS and node.id not in bound:
                return f"use of {node.id!r}"
            if node.id.startswith("__") and node.id not in ("__name__",):
                return f"name {node.id!r}"
    return None


class _WorkerState:
    def __init__(self, allowed: Sequence[str], output_chars: int):
        import builtins
        import types

        self.allowed = frozenset(allowed)
        self.output_chars = output_chars
        self.tmp_root: Optional[str] = None
        self.violation: Optional[str] = None
        self.timed_out = False
        self.output_over = False
        self.out: List[str] = []
        self.out_len = 0
        self._module_dicts: Dict[str, dict] = {}
        for name in sorted(self.allowed):
            try:
                self._module_dicts[name] = self._safe_dict(name)
            except ImportError:  # an optional extra (e.g. numpy) that is not installed
                pass
        self._types = types
        safe = {k: v for k, v in vars(builtins).items() if not k.startswith("_") or k in ("__build_class__",)}
        for k in FORBIDDEN_BUILTINS:
            if k in safe or k in vars(builtins):
                safe[k] = self._forbidden_stub(k)
        safe["__import__"] = self._import
        safe["print"] = self._print
        safe["__build_class__"] = builtins.__build_class__
        self.builtins = safe

    def _safe_dict(self, name: str) -> dict:
        import importlib
        import types

        mod = importlib.import_module(name)
        d = {}
        for k, v in vars(mod).items():
            if k.startswith("_") or k in _DROP_MODULE_ATTRS:
                continue
            if isinstance(v, types.ModuleType):
                continue  # submodules are added back below only when whitelisted
            d[k] = v
        d["__name__"] = name
        return d

    def _module(self, name: str):
        """A fresh copy of a whitelisted module, so a program cannot monkeypatch the next one."""
        m = self._types.ModuleType(name)
        m.__dict__.update(self._module_dicts[name])
        prefix = name + "."
        for sub in self._module_dicts:
            if sub.startswith(prefix) and "." not in sub[len(prefix):]:
                setattr(m, sub[len(prefix):], self._module(sub))
        return m

    def _forbidden_stub(self, name: str):
        def stub(*_a: Any, **_k: Any):
            self.violation = self.violation or f"call of {name}"
            raise _Violation(name)

        return stub

    def _import(self, name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level or name not in self._module_dicts:
            self.violation = self.violation or f"import of {name!r}"
            raise _Violation(f"import of {name!r}")
        if fromlist or "." not in name:
            return self._module(name)
        return self._module(name.split(".")[0])

    def _print(self, *args: Any, sep: Optional[str] = " ", end: Optional[str] = "\n", **_k: Any) -> None:
        s = (" " if sep is None else str(sep)).join(str(a) for a in args) + ("\n" if end is None else str(end))
        self.out_len += len(s)
        if self.out_len > self.output_chars:
            self.output_over = True
            raise _OutputLimit()
        self.out.append(s)


def _set_limits(memory_mb: int) -> None:
    import resource

    def setl(which: int, soft: int, hard: Optional[int] = None) -> None:
        try:
            cur_soft, cur_hard = resource.getrlimit(which)
            hard = soft if hard is None else hard
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard) if hard != resource.RLIM_INFINITY else cur_hard
                soft = min(soft, hard) if soft != resource.RLIM_INFINITY else hard
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as e:  # pragma: no cover - platform dependent
            log.debug("setrlimit(%s) failed: %s", which, e)

    # Memory: the budget is on top of what the warm interpreter already maps, so it means the same
    # whatever the parent had imported before the worker was forked.
    base = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    base = int(line.split()[1]) * 1024
    except OSError:
        pass
    setl(resource.RLIMIT_AS, base + memory_mb * 1024 * 1024)
    setl(resource.RLIMIT_FSIZE, 1024 * 1024)
    setl(resource.RLIMIT_CORE, 0)
    setl(resource.RLIMIT_NPROC, 0)
    setl(resource.RLIMIT_NOFILE, 64)  # the worker holds a pipe and a few std fds, nothing more


def _drop_privileges() -> None:
    """Root ignores RLIMIT_NPROC and can read anything: become nobody when we can."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError as e:  # e.g. user namespaces without a mapping for nobody
        log.debug("could not drop privileges: %s", e)


def _to_number(v: Any) -> Tuple[str, Any]:
    """(kind, payload) sent back to the parent; strings are parsed there, not here."""
    from decimal import Decimal
    from fractions import Fraction
    import math

    if isinstance(v, bool):
        return "non_numeric", f"bool {v}"
    if isinstance(v, str):
        return "str", v[:1000]
    if isinstance(v, (int, float, Fraction, Decimal)) or (
        hasattr(v, "dtype") and getattr(v, "shape", None) == () and getattr(v.dtype, "kind", "") in "iuf"
    ):
        try:
            f = float(v)
        except (OverflowError, ValueError, TypeError):
            return "non_numeric", "number too large"
        if not math.isfinite(f):
            return "non_numeric", f"not finite: {f}"
        return "ok", f
    return "non_numeric", f"type {type(v).__name__}"


def _run_one(state: _WorkerState, code: str, timeout_s: float, cpu_s: int) -> Tuple[str, Any]:
    import resource
    import shutil
    import tempfile

    state.violation, state.timed_out, state.output_over = None, False, False
    state.out, state.out_len = [], 0
    if len(code) > MAX_CODE_CHARS:
        return "error", f"program longer than {MAX_CODE_CHARS} characters"
    try:
        tree = ast.parse(code, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return "error", f"{type(e).__name__}: {e}"
    why = _check_ast(tree, state.allowed)
    if why:
        return "forbidden", why
    try:
        compiled = compile(tree, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return "error", f"{type(e).__name__}: {e}"

    g: Dict[str, Any] = {"__builtins__": state.builtins, "__name__": "__main__"}
    value: Any = _NO_ANSWER
    try:
        tmp = tempfile.mkdtemp(prefix="run-", dir=state.tmp_root)
    except OSError as e:
        return "crashed", f"no temporary directory: {e}"
    used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    try:
        # RLIMIT_CPU counts the worker's whole life: re-arm it relative to the time used so far.
        resource.setrlimit(resource.RLIMIT_CPU, (int(used) + cpu_s + 1, resource.getrlimit(resource.RLIMIT_CPU)[1]))
    except (ValueError, OSError):
        pass
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        os.chdir(tmp)
        exec(compiled, g)  # noqa: S102 - the whole point; guarded by the checks above
        if callable(g.get("solution")):
            value = g["solution"]()
        elif "answer" in g:
            value = g["answer"]
        else:
            value = _NO_ANSWER
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        state.timed_out = True
    except _Violation:
        pass
    except _OutputLimit:
        pass
    except MemoryError:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "memory", "MemoryError"
    except RecursionError as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return "error", f"RecursionError: {e}"
    except BaseException as e:  # noqa: BLE001 - the program's own exception, incl. SystemExit
        signal.setitimer(signal.ITIMER_REAL, 0)
        if not (state.violation or state.timed_out or state.output_over):
            return "error", f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            os.chdir("/")
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    # A program may swallow our exceptions with a bare except: the flags still tell the truth.
    if state.violation:
        return "forbidden", state.violation
    if state.timed_out:
        return "timeout", f"over {timeout_s}s"
    if state.output_over:
        return "output_limit", f"printed over {state.output_chars} characters"
    if value is _NO_ANSWER:
        return "no_answer", "no solution() and no top-level answer"
    try:
        return _to_number(value)
    except BaseException as e:  # noqa: BLE001 - exotic __float__ implementations
        return "non_numeric", f"{type(e).__name__}: {e}"


_NO_ANSWER = object()


def _worker_main(conn, allowed: Sequence[str], timeout_s: float, memory_mb: int, cpu_s: int,
                 output_chars: int, drop_privileges: bool, tmp_root: str) -> None:
    """Worker loop: receive [(idx, code)], send (idx, kind, payload) per program, forever."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # numpy (if whitelisted) must not start threads
    # Import everything the loop needs now: after dropping privileges the interpreter's own files
    # may no longer be readable (e.g. a Python installed under /root).
    import builtins, decimal, fractions, importlib, math, resource, tempfile, types  # noqa: F401,E401
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # nothing a program does reaches the parent's terminal
        os.close(devnull)
    except OSError:
        pass
    state = _WorkerState(allowed, output_chars)  # imports whitelisted modules before the limits
    state.tmp_root = tmp_root

    def on_alarm(_sig, _frm):
        state.timed_out = True
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGXCPU, on_alarm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if drop_privileges:
        _drop_privileges()
    _set_limits(memory_mb)
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if batch is None:
            return
        for idx, code in batch:
            try:
                kind, payload = _run_one(state, code, timeout_s, cpu_s)
            except MemoryError:
                kind, payload = "memory", "MemoryError"
            except BaseException as e:  # noqa: BLE001 - a late _Timeout etc.; keep the worker alive
                kind, payload = ("timeout", "late timer") if isinstance(e, _Timeout) else ("error", repr(e)[:200])
            try:
                conn.send((idx, kind, payload))
            except (BrokenPipeError, OSError):
                return
            except BaseException:  # noqa: BLE001 - e.g. MemoryError while pickling
                try:
                    conn.send((idx, "error", "result could not be sent"))
                except BaseException:  # noqa: BLE001
                    return


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------
class _Worker:
    def __init__(self, ctx, args: tuple):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child,) + args, daemon=True)
        self.proc.start()
        child.close()
        self.pending: deque = deque()  # (idx, code) sent, result not yet received
        self.deadline = float("inf")
        self.done = 0

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(timeout=2)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass


class Sandbox:
    """A pool of warm worker processes that run PoT programs and return their numeric answers.

    ``timeout_s`` is the wall-clock budget per program, ``memory_mb`` the address space a program
    may add, ``cpu_s`` its CPU seconds. ``extra_modules`` widens the import whitelist (e.g.
    ``("numpy",)``; do not add ``sympy``: it evaluates strings as code).
    """

    def __init__(self, workers: int = 2, timeout_s: float = 2.0, memory_mb: int = 512, cpu_s: int = 2,
                 extra_modules: Sequence[str] = (), output_chars: int = 65536, batch_size: int = 16,
                 max_tasks_per_worker: int = 2000, drop_privileges: bool = True):
        self.workers = max(1, int(workers))
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.cpu_s = max(1, int(cpu_s))
        self.batch_size = max(1, int(batch_size))
        self.max_tasks_per_worker = max_tasks_per_worker
        self.allowed = tuple(DEFAULT_MODULES) + tuple(extra_modules)
        # Programs cannot outlive this: in-worker timer first, then the parent kills.
        self.grace_s = 1.0 + 0.5 * self.timeout_s
        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        # Per-program working directories live under one private root that close() removes; it is
        # world-writable only so that a worker that dropped root privileges can use it.
        self._tmp_root = tempfile.mkdtemp(prefix="fdd-sandbox-")
        os.chmod(self._tmp_root, 0o777)
        self._args = (self.allowed, self.timeout_s, self.memory_mb, self.cpu_s, output_chars, drop_privileges,
                      self._tmp_root)
        self._pool: List[Optional[_Worker]] = [None] * self.workers
        self._lock = threading.Lock()
        self._closed = False
        self.stats: Dict[str, int] = {"restarts": 0}

    # -- lifecycle -------------------------------------------------------------------------
    def _worker(self, i: int) -> _Worker:
        w = self._pool[i]
        if w is None or not w.proc.is_alive() or w.done >= self.max_tasks_per_worker:
            if w is not None:
                self._retire(i)
            w = self._pool[i] = _Worker(self._ctx, self._args)
        return w

    def _retire(self, i: int, kill: bool = True) -> None:
        w = self._pool[i]
        self._pool[i] = None
        if w is None:
            return
        if kill:
            w.kill()

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        with self._lock:
            self._closed = True
            for i, w in enumerate(self._pool):
                if w is None:
                    continue
                try:
                    w.conn.send(None)
                except Exception:  # noqa: BLE001
                    pass
                w.proc.join(timeout=0.5)
                w.kill()
                self._pool[i] = None
            shutil.rmtree(self._tmp_root, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- running ---------------------------------------------------------------------------
    def run(self, code: str) -> ExecResult:
        """Run one program."""
        return self.run_many([code])[0]

    def run_many(self, codes: Iterable[str], progress: bool = False) -> List[ExecResult]:
        """Run programs in parallel across the workers; results in input order."""
        codes = [strip_fences(c if isinstance(c, str) else str(c)) for c in codes]
        results: List[Optional[ExecResult]] = [None] * len(codes)
        if not codes:
            return []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(codes), desc="sandbox", unit="prog")
        with self._lock:
            if self._closed:
                raise RuntimeError("Sandbox is closed")
            try:
                self._dispatch(codes, results, bar)
            finally:
                if bar is not None:
                    bar.close()
        return [r if r is not None else ExecResult(None, "crashed", "lost") for r in results]

    def _dispatch(self, codes: List[str], results: List[Optional[ExecResult]], bar) -> None:
        todo: deque = deque(enumerate(codes))
        n_active = min(self.workers, len(codes))
        # Small inputs: share them out so both workers get some; big ones: fixed-size batches.
        chunk = max(1, min(self.batch_size, -(-len(codes) // n_active)))
        remaining = len(codes)

        def finish(idx: int, res: ExecResult) -> None:
            nonlocal remaining
            if results[idx] is None:
                results[idx] = res
                remaining -= 1
                if bar is not None:
                    bar.update(1)

        def fail_worker(i: int, first: ExecResult) -> None:
            """Report the program in flight, re-queue the rest, replace the worker."""
            w = self._pool[i]
            if w is None:
                return
            if w.pending:
                idx, _ = w.pending.popleft()
                finish(idx, first)
            todo.extendleft(reversed(w.pending))
            w.pending.clear()
            self._retire(i)
            self.stats["restarts"] += 1

        while remaining:
            # hand out work to idle workers
            for i in range(n_active):
                w = self._pool[i]
                if todo and (w is None or not w.pending):
                    batch = [todo.popleft() for _ in range(min(chunk, len(todo)))]
                    try:
                        w = self._worker(i)
                        w.pending.extend(batch)
                        w.conn.send(batch)
                        w.deadline = time.monotonic() + self.timeout_s + self.grace_s
                    except Exception as e:  # noqa: BLE001 - worker failed to start or pipe broke
                        # Report rather than retry forever: a pool that cannot start must not hang.
                        log.warning("sandbox worker failed: %s", e)
                        for idx, _ in batch:
                            finish(idx, ExecResult(None, "crashed", f"worker failed: {e}"))
                        if self._pool[i] is not None:
                            self._pool[i].pending.clear()
                            self._retire(i)
            busy = [(i, self._pool[i]) for i in range(n_active) if self._pool[i] is not None and self._pool[i].pending]
            if not busy:
                if not todo:
                    break
                continue
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for _, w in busy) - now)
            handles = {}
            for i, w in busy:
                handles[w.conn] = i
                handles[w.proc.sentinel] = i
            ready = mp_wait(list(handles), timeout=wait_s)
            seen = set()
            for h in ready:
                i = handles[h]
                if i in seen:
                    continue
                w = self._pool[i]
                if w is None:
                    continue
                # Drain every result that has arrived before looking at the process state.
                try:
                    while w.pending and w.conn.poll():
                        idx, kind, payload = w.conn.recv()
                        if w.pending and w.pending[0][0] == idx:
                            w.pending.popleft()
                        finish(idx, _to_result(kind, payload))
                        w.done += 1
                        w.deadline = time.monotonic() + self.timeout_s + self.grace_s
                except (EOFError, OSError):
                    pass
                if w.pending and not w.proc.is_alive():
                    seen.add(i)
                    code = w.proc.exitcode
                    if code == -signal.SIGXCPU:
                        fail_worker(i, ExecResult(None, "timeout", "CPU limit"))
                    else:
                        fail_worker(i, ExecResult(None, "crashed", f"worker died (exit code {code})"))
            now = time.monotonic()
            for i, w in busy:
                if self._pool[i] is w and w.pending and now >= w.deadline:
                    fail_worker(i, ExecResult(None, "timeout", f"killed after {self.timeout_s + self.grace_s:.1f}s"))


def _to_result(kind: str, payload: Any) -> ExecResult:
    if kind == "ok":
        return ExecResult(float(payload), None)
    if kind == "str":
        from fdd.reasoning.answer import parse_number

        v = parse_number(payload)
        if v is None:
            return ExecResult(None, "non_numeric", f"string {payload[:80]!r}")
        return ExecResult(v, None)
    if kind not in ERRORS:
        return ExecResult(None, "error", f"{kind}: {payload}")
    return ExecResult(None, kind, None if payload is None else str(payload)[:300])
