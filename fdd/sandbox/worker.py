"""The worker process: it runs programs one by one and reports each one's outcome.

A worker is started by :class:`fdd.sandbox.pool.Sandbox` as a fresh interpreter with a clean
environment (fdd/sandbox/pool.py) and talks to it over one socket in JSON (never pickle, so a
program that took over its worker still cannot run code in the parent):

* parent -> worker: a :class:`WorkerSpec` once, then batches
  ``{"reader": <source or null>, "programs": [[idx, code], ...]}``, and ``null`` to stop;
* worker -> parent: ``["ready", layers]`` once its OS layer is applied (fdd/sandbox/confine.py),
  then ``[idx, kind, payload, convention]`` per program, in order (fdd/sandbox/result.py).

Each program runs under the AST check (fdd/sandbox/policy.py), with restricted builtins and an
``__import__`` that hands out *copies* of whitelisted modules with their module-valued attributes
removed (``statistics.sys``, ``fractions.sys`` would otherwise be a way to ``os``), in a fresh
temporary working directory, with bounded ``print`` capture, an in-worker ``SIGALRM`` timer and
``RLIMIT_CPU`` re-armed per program (the limit is cumulative per process).

What a program's answer is, the worker does not decide: an *answer reader*, the source of a
function ``read_answer(namespace, printed)`` sent with each batch, picks it from the program's
globals and what it printed (``printed()``) (fdd/reasoning/programs.py holds the PoT convention's); without one,
the answer is the top-level variable ``answer``. The worker only turns the value into a number
or text to report.
"""

from __future__ import annotations

# Every module a worker uses is imported here, before it drops to an unprivileged user that may not
# be able to read the interpreter's library folder (a Python under /root, mode 0700): a lazy import
# after the drop fails with ModuleNotFoundError.
import ast
import builtins
import importlib
import json
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import types
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fdd.sandbox.confine import apply_os_layer, set_limits
from fdd.sandbox.policy import DROP_MODULE_ATTRS, FORBIDDEN_BUILTINS, MAX_CODE_CHARS, check_ast

__all__ = ["WorkerSpec", "AnswerReader", "read_answer_variable", "send", "recv", "worker_main", "main"]

# (namespace, printed) -> (convention, value), or (None, why there is no answer); printed() is
# what the program has printed so far (None: nothing)
AnswerReader = Callable[[Dict[str, Any], Callable[[], Optional[str]]], Tuple[Optional[str], Any]]
MAX_TEXT_CHARS = 2000  # a text answer is reported up to this long


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker is told at start (sent as JSON)."""

    allowed: Sequence[str]  # importable modules
    timeout_s: float
    memory_mb: int
    cpu_s: int
    output_chars: int
    drop_privileges: bool
    tmp_root: str
    ast_check: bool = True
    os_layer: str = "auto"


def send(conn: Connection, message: Any) -> None:
    conn.send_bytes(json.dumps(message).encode("ascii"))


def recv(conn: Connection, maxlength: Optional[int] = None) -> Any:
    """The next message; EOFError when the other side is gone, OSError when it is over ``maxlength``
    bytes, ValueError when it is not JSON."""
    return json.loads(conn.recv_bytes(maxlength))


class _Violation(BaseException):
    """A forbidden operation; BaseException so ``except Exception`` in the program cannot hide it."""


class _Timeout(BaseException):
    pass


class _OutputLimit(BaseException):
    pass


def read_answer_variable(namespace: Dict[str, Any], printed: Callable[[], Optional[str]]) -> Tuple[Optional[str], Any]:
    """The answer reader used without one: the program's top-level variable ``answer``."""
    if "answer" in namespace:
        return "answer", namespace["answer"]
    return None, "no top-level answer"


class WorkerState:
    """The restricted namespace programs run in, and what the running program has done so far."""

    def __init__(self, allowed: Sequence[str], output_chars: int):
        self.allowed = frozenset(allowed)
        self.output_chars = output_chars
        self.tmp_root: Optional[str] = None
        self.violation: Optional[str] = None
        self.convention: Optional[str] = None  # how the running program's answer was read
        self.ast_check = True
        self.timed_out = False
        self.limit: Optional[str] = None  # which limit's signal fired first: "timeout" or "cpu_limit"
        self.output_over = False
        self.out: List[str] = []
        self.out_len = 0
        self._readers: Dict[str, AnswerReader] = {}
        self._module_dicts: Dict[str, dict] = {}
        for name in sorted(self.allowed):
            try:
                self._module_dicts[name] = self._safe_dict(name)
            except ImportError:  # an optional extra (e.g. numpy) that is not installed
                pass
        safe = {k: v for k, v in vars(builtins).items() if not k.startswith("_") or k in ("__build_class__",)}
        for k in FORBIDDEN_BUILTINS:
            if k in safe or k in vars(builtins):
                safe[k] = self._forbidden_stub(k)
        safe["__import__"] = self._import
        safe["print"] = self._print
        safe["__build_class__"] = builtins.__build_class__
        self.builtins = safe

    def reader(self, source: Optional[str]) -> AnswerReader:
        """The answer reader ``source`` defines (trusted code from the parent: real builtins, no
        AST check), compiled once per worker; None: :func:`read_answer_variable`."""
        if source is None:
            return read_answer_variable
        if source not in self._readers:
            namespace: Dict[str, Any] = {"__builtins__": builtins}
            exec(compile(source, "<answer reader>", "exec"), namespace)  # noqa: S102 - the parent's code
            self._readers[source] = namespace["read_answer"]
        return self._readers[source]

    def _safe_dict(self, name: str) -> dict:
        mod = importlib.import_module(name)
        d = {}
        for k, v in vars(mod).items():
            if k.startswith("_") or k in DROP_MODULE_ATTRS:
                continue
            if isinstance(v, types.ModuleType):
                continue  # submodules are added back below only when whitelisted
            d[k] = v
        d["__name__"] = name
        return d

    def _module(self, name: str):
        """A fresh copy of a whitelisted module, so a program cannot monkeypatch the next one."""
        m = types.ModuleType(name)
        m.__dict__.update(self._module_dicts[name])
        prefix = name + "."
        for sub in self._module_dicts:
            if sub.startswith(prefix) and "." not in sub[len(prefix) :]:
                setattr(m, sub[len(prefix) :], self._module(sub))
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


def _report(v: Any) -> Tuple[str, Any]:
    """(kind, payload) sent back to the parent: a finite number, text, or why neither."""
    if isinstance(v, bool):
        return "non_numeric", f"bool {v}"
    if isinstance(v, str):
        return "text", v[:MAX_TEXT_CHARS]
    if isinstance(v, (int, float, Fraction, Decimal)) or (
        hasattr(v, "dtype") and getattr(v, "shape", None) == () and getattr(v.dtype, "kind", "") in "iuf"
    ):
        try:
            f = float(v)
        except (OverflowError, ValueError, TypeError):
            return "non_numeric", "number too large"
        if not math.isfinite(f):
            return "non_numeric", f"not finite: {f}"
        return "number", f
    return "non_numeric", f"type {type(v).__name__}"


def run_one(state: WorkerState, code: str, reader: AnswerReader, timeout_s: float, cpu_s: int) -> Tuple[str, Any]:
    """Run one program and read its answer with ``reader``: ``(kind, payload)`` to report."""
    state.violation, state.timed_out, state.output_over, state.limit = None, False, False, None
    state.convention = None
    state.out, state.out_len = [], 0
    if len(code) > MAX_CODE_CHARS:
        return "error", f"program longer than {MAX_CODE_CHARS} characters"
    try:
        tree = ast.parse(code, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return "error", f"{type(e).__name__}: {e}"
    why = check_ast(tree, state.allowed) if state.ast_check else None
    if why:
        return "forbidden", why
    try:
        compiled = compile(tree, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return "error", f"{type(e).__name__}: {e}"

    g: Dict[str, Any] = {"__builtins__": state.builtins, "__name__": "__main__"}
    value: Any = None
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
        # The answer, by the caller's convention (it may call the program's functions: still timed).
        state.convention, value = reader(g, lambda: "".join(state.out) if state.out else None)
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
        if state.limit == "cpu_limit":
            return "cpu_limit", f"over {cpu_s}s of CPU (RLIMIT_CPU)"
        return "timeout", f"over {timeout_s}s wall clock (in-worker timer)"
    if state.output_over:
        return "output_limit", f"printed over {state.output_chars} characters"
    if state.convention is None:
        return "no_answer", str(value)  # the reader's reason
    try:
        return _report(value)
    except BaseException as e:  # noqa: BLE001 - exotic __float__ implementations
        return "non_numeric", f"{type(e).__name__}: {e}"


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Apply the OS layer and limits, send ``["ready", layers]``, then run batches until told to stop."""
    state = WorkerState(spec.allowed, spec.output_chars)  # imports whitelisted modules before the limits
    state.tmp_root = spec.tmp_root
    state.ast_check = spec.ast_check

    def on_limit(sig, _frm):
        state.timed_out = True
        state.limit = state.limit or ("cpu_limit" if sig == signal.SIGXCPU else "timeout")
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_limit)
    signal.signal(signal.SIGXCPU, on_limit)
    layers = apply_os_layer(spec.os_layer, spec.tmp_root, spec.drop_privileges)
    if spec.os_layer == "require" and not layers["landlock_fs"]:
        try:
            send(conn, ["ready", layers])
        finally:
            os._exit(3)
    set_limits(spec.memory_mb)
    try:
        send(conn, ["ready", layers])
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            batch = recv(conn)
        except (EOFError, OSError, ValueError, KeyboardInterrupt):
            return
        if batch is None:
            return
        try:
            reader: Optional[AnswerReader] = state.reader(batch["reader"])
            reader_error = ""
        except Exception as e:  # noqa: BLE001 - the caller's reader is broken: every program says so
            reader, reader_error = None, f"answer reader: {type(e).__name__}: {e}"
        for idx, code in batch["programs"]:
            try:
                if reader is None:
                    kind, payload = "error", reader_error
                else:
                    kind, payload = run_one(state, code, reader, spec.timeout_s, spec.cpu_s)
            except MemoryError:
                kind, payload = "memory", "MemoryError"
            except BaseException as e:  # noqa: BLE001 - a late _Timeout etc.; keep the worker alive
                kind, payload = (
                    ((state.limit or "timeout"), "late timer") if isinstance(e, _Timeout) else ("error", repr(e)[:200])
                )
            try:
                send(conn, [idx, kind, payload, state.convention if kind in ("number", "text") else None])
            except (BrokenPipeError, OSError):
                return
            except BaseException:  # noqa: BLE001 - e.g. MemoryError while encoding
                try:
                    send(conn, [idx, "error", "result could not be sent", None])
                except BaseException:  # noqa: BLE001
                    return


def main(argv: Optional[Sequence[str]] = None) -> None:
    """A worker process's entry point; ``argv[0]`` is the file descriptor of its socket to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    argv = sys.argv[1:] if argv is None else argv
    conn = Connection(int(argv[0]))
    try:
        spec = WorkerSpec(**recv(conn))
    except (EOFError, OSError, ValueError):
        return
    worker_main(conn, spec)
