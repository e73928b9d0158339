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
    stuck in C code (``10**10**9``) or swallowing the timer's exception;
  - an OS layer that holds even when the Python-level checks above are bypassed (a
    ``().__class__.__base__.__subclasses__()`` escape reaching ``os``): **Landlock** (kernel >= 5.13,
    called through ``ctypes``: the PyPI bindings cover file rules only, not the TCP rules of ABI 4)
    lets the worker write only under its temporary root, refuses TCP ``connect``/``bind`` (ABI >= 4)
    and signals to processes outside the sandbox (ABI >= 6); a fresh **network namespace**
    (``unshare(CLONE_NEWNET)``, as root, or inside a new user namespace otherwise) leaves the worker
    no network at all, loopback included. Each part is used where the kernel and container allow
    it; what is missing is logged once (``os_layer="require"`` refuses to run without Landlock).
* **Reasons name the limit that fired**: ``timeout`` (wall clock: the in-worker timer, or the
  parent's kill), ``cpu_limit`` (``RLIMIT_CPU``), ``memory`` (``RLIMIT_AS``), ``output_limit``.
* **Outage, not rejections.** When every program of a batch fails for the same infrastructure
  reason (crashed, timeout, cpu_limit, memory), a trivial program is run; if it fails too, the
  sandbox itself is broken (workers cannot start, limits too tight for any program) and
  :class:`SandboxUnavailableError` is raised instead of rejecting good rationales.
* **Never hang.** Every failure of a program becomes an :class:`ExecResult` with a short reason;
  a dead worker is replaced and its program reported as ``"crashed"``.

This is a defence for *model-written* code, not a hardened jail for adversaries with kernel
exploits: run real untrusted workloads in a container as well.
"""

from __future__ import annotations

# Every module a worker uses is imported here, before it drops to an unprivileged user that may not
# be able to read the interpreter's library folder (a Python under /root, mode 0700): a lazy import
# after the drop fails with ModuleNotFoundError.
import ast
import ctypes
import importlib
import logging
import math
import multiprocessing as mp
import os
import platform
import resource
import shutil
import signal
import tempfile
import threading
import time
import types
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from multiprocessing.connection import wait as mp_wait
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tqdm.auto import tqdm

from fdd.reasoning.answer import last_number, parse_number
from fdd.reasoning.fences import strip_fences

log = logging.getLogger(__name__)

__all__ = [
    "ExecResult",
    "Sandbox",
    "ERRORS",
    "strip_fences",
    "DEFAULT_MODULES",
    "SandboxUnavailableError",
    "landlock_abi",
    "OS_LAYER_MODES",
]

ERRORS = ("timeout", "cpu_limit", "forbidden", "memory", "error", "no_answer", "non_numeric", "output_limit", "crashed")
# Reasons that, when every program of a batch shares one and a trivial program fails too, mean the
# sandbox (not the programs) is broken.
INFRA_ERRORS = frozenset({"crashed", "timeout", "cpu_limit", "memory"})
OS_LAYER_MODES = ("auto", "require", "off")
CANARY = "answer = 6 * 7"


class SandboxUnavailableError(RuntimeError):
    """The sandbox cannot run even a trivial program: an outage, not a batch of bad programs."""


DEFAULT_MODULES: Tuple[str, ...] = (
    "math",
    "cmath",
    "fractions",
    "decimal",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "collections.abc",
    "datetime",
    "re",
    "random",
    "string",
    "heapq",
    "bisect",
    "numbers",
    "typing",
)
# Builtins a program may not name at all (AST check) and that are replaced by a raising stub.
FORBIDDEN_BUILTINS = frozenset(
    {
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "input",
        "breakpoint",
        "help",
        "exit",
        "quit",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "memoryview",
        "copyright",
        "credits",
        "license",
    }
)
# Attribute names that lead to frames, code objects or globals without a leading underscore.
FORBIDDEN_ATTRS = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "ag_frame",
        "ag_code",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "tb_frame",
        "tb_next",
        "co_code",
        "mro",
        "format_map",
    }
)
# Names dropped from whitelisted modules that would reach files or evaluate strings as code.
_DROP_MODULE_ATTRS = frozenset(
    {
        "load",
        "loads",
        "save",
        "savez",
        "savez_compressed",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "fromfile",
        "tofile",
        "memmap",
        "fromregex",
        "DataSource",
        "ctypeslib",
        "get_type_hints",
        "ForwardRef",
        "sympify",
        "parse_expr",
        "lambdify",
        "S",
        "preview",
        "SystemRandom",
    }
)
MAX_CODE_CHARS = 100_000


@dataclass
class ExecResult:
    """Outcome of one program: a finite float answer, or an error from :data:`ERRORS`."""

    value: Optional[float]
    error: Optional[str]
    detail: Optional[str] = None
    # How the answer was read (fdd.reasoning.programs.CONVENTIONS for programs; cot_answer's for text)
    convention: Optional[str] = None
    # The rationale as the student should learn it, where reading it changed it (a normalized program)
    text: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


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


def _set_limits(memory_mb: int) -> None:

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


# ---- OS layer: Landlock and a network namespace ------------------------------------------------
# Landlock's syscalls have the same numbers on every architecture (they came after the unified
# syscall table); constants from linux/landlock.h.
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446
_LL_VERSION_FLAG, _LL_RULE_PATH_BENEATH = 1, 1
_LL_FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir: left unrestricted
_LL_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1}  # ABI 3 adds truncate; later ones ioctl (left out)
_LL_NET_TCP = (1 << 0) | (1 << 1)  # bind_tcp, connect_tcp (ABI >= 4)
_LL_SCOPE = (1 << 0) | (1 << 1)  # abstract unix sockets, signals (ABI >= 6)
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


def _libc():

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: not available here). Restricts nothing."""

    if platform.system() != "Linux":
        return 0
    try:
        v = _libc().syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(_LL_VERSION_FLAG))
    except (OSError, AttributeError):
        return 0
    return max(0, int(v))


def _apply_landlock(writable: str) -> Dict[str, bool]:
    """Restrict this process for good: writes only beneath ``writable``, no TCP, no signals out."""

    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available (kernel < 5.13, or disabled in this kernel/container)")
    libc = _libc()

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1  # the kernel struct is packed
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    fs = _LL_FS_BY_ABI.get(abi, (1 << 15) - 1) & ~_LL_FS_READ
    attr = RulesetAttr(fs, _LL_NET_TCP if abi >= 4 else 0, _LL_SCOPE if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # older kernels refuse fields they do not know

    def check(ret: int, what: str) -> int:
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return ret

    ruleset = check(
        libc.syscall(ctypes.c_long(_LL_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    root = os.open(writable, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = PathBeneath(fs, root)
        check(
            libc.syscall(
                ctypes.c_long(_LL_ADD_RULE),
                ctypes.c_int(ruleset),
                ctypes.c_int(_LL_RULE_PATH_BENEATH),
                ctypes.byref(rule),
                ctypes.c_uint32(0),
            ),
            "landlock_add_rule",
        )
        check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        check(
            libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(root)
        os.close(ruleset)
    return {"landlock_fs": True, "landlock_net": abi >= 4, "landlock_scope": abi >= 6}


def _unshare_network() -> None:
    """A new, empty network namespace (loopback down): as root directly, else in a user namespace."""

    flags = _CLONE_NEWNET if os.getuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def _os_layer(mode: str, writable: str, drop_privileges: bool) -> Dict[str, Any]:
    """Apply what the kernel allows of the OS layer; returns what was applied and why not."""
    layers: Dict[str, Any] = {
        "mode": mode,
        "landlock_abi": landlock_abi(),
        "landlock_fs": False,
        "landlock_net": False,
        "landlock_scope": False,
        "netns": False,
        "missing": [],
    }
    if mode != "off":
        try:
            _unshare_network()  # before dropping root: it needs CAP_SYS_ADMIN or a user namespace
            layers["netns"] = True
        except OSError as e:
            layers["missing"].append(f"network namespace ({e})")
    if drop_privileges:
        _drop_privileges()
    if mode != "off":
        try:
            layers.update(_apply_landlock(writable))
        except OSError as e:
            layers["missing"].append(f"Landlock ({e})")
    return layers


def _to_number(v: Any) -> Tuple[str, Any]:
    """(kind, payload) sent back to the parent; strings are parsed there, not here."""

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

    state.violation, state.timed_out, state.output_over, state.limit = None, False, False, None
    state.convention = None
    state.out, state.out_len = [], 0
    if len(code) > MAX_CODE_CHARS:
        return "error", f"program longer than {MAX_CODE_CHARS} characters"
    try:
        tree = ast.parse(code, "<program>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return "error", f"{type(e).__name__}: {e}"
    why = _check_ast(tree, state.allowed) if state.ast_check else None
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
        # The answer conventions of fdd/reasoning/programs.py, in their documented order.
        if callable(g.get("solution")):
            value, state.convention = g["solution"](), "solution"
        elif "answer" in g:
            value, state.convention = g["answer"], "answer"
        else:
            value = _NO_ANSWER
        if (value is None or value is _NO_ANSWER) and state.out:
            value, state.convention = _Printed("".join(state.out)[-2000:]), "print"
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
    if value is _NO_ANSWER:
        return "no_answer", "no solution(), no top-level answer and nothing printed"
    if isinstance(value, _Printed):
        return "printed", str(value)
    try:
        return _to_number(value)
    except BaseException as e:  # noqa: BLE001 - exotic __float__ implementations
        return "non_numeric", f"{type(e).__name__}: {e}"


_NO_ANSWER = object()


class _Printed(str):
    """What a program printed, when that is its answer (the ``print`` convention)."""


def _worker_main(
    conn,
    allowed: Sequence[str],
    timeout_s: float,
    memory_mb: int,
    cpu_s: int,
    output_chars: int,
    drop_privileges: bool,
    tmp_root: str,
    ast_check: bool = True,
    os_layer: str = "auto",
) -> None:
    """Worker loop: send ("ready", layers, None) once, then receive [(idx, code)] and send
    (idx, kind, payload) per program, forever."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # numpy (if whitelisted) must not start threads
    # Import everything the loop needs now: after dropping privileges the interpreter's own files
    # may no longer be readable (e.g. a Python installed under /root).
    import builtins  # noqa: F401,E401

    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # nothing a program does reaches the parent's terminal
        os.close(devnull)
    except OSError:
        pass
    state = _WorkerState(allowed, output_chars)  # imports whitelisted modules before the limits
    state.tmp_root = tmp_root
    state.ast_check = ast_check

    def on_limit(sig, _frm):
        state.timed_out = True
        state.limit = state.limit or ("cpu_limit" if sig == signal.SIGXCPU else "timeout")
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_limit)
    signal.signal(signal.SIGXCPU, on_limit)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    layers = _os_layer(os_layer, tmp_root, drop_privileges)
    if os_layer == "require" and not layers["landlock_fs"]:
        try:
            conn.send(("ready", layers, None))
        finally:
            os._exit(3)
    _set_limits(memory_mb)
    try:
        conn.send(("ready", layers, None))
    except (BrokenPipeError, OSError):
        return
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
                kind, payload = (
                    ((state.limit or "timeout"), "late timer") if isinstance(e, _Timeout) else ("error", repr(e)[:200])
                )
            try:
                conn.send((idx, kind, payload, state.convention if kind in _ANSWER_KINDS else None))
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
    ``("numpy",)``; do not add ``sympy``: it evaluates strings as code). ``os_layer``: ``auto``
    uses Landlock and a network namespace where available (logged once where not), ``require``
    refuses to run without Landlock, ``off`` skips them. ``ast_check=False`` switches the AST check
    off, only to test the layers behind it.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 2.0,
        memory_mb: int = 512,
        cpu_s: int = 2,
        extra_modules: Sequence[str] = (),
        output_chars: int = 65536,
        batch_size: int = 16,
        max_tasks_per_worker: int = 2000,
        drop_privileges: bool = True,
        os_layer: str = "auto",
        ast_check: bool = True,
    ):
        if not float(timeout_s) > 0:
            raise ValueError(f"sandbox timeout_s must be > 0 seconds, got {timeout_s}")
        if os_layer not in OS_LAYER_MODES:
            raise ValueError(f"sandbox os_layer must be one of {OS_LAYER_MODES}, got {os_layer!r}")
        if os_layer == "require" and landlock_abi() < 1:
            raise SandboxUnavailableError(
                "sandbox.os_layer=require but Landlock is not available on this kernel "
                "(needs Linux >= 5.13 with Landlock enabled); use os_layer=auto"
            )
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
        self._args = (
            self.allowed,
            self.timeout_s,
            self.memory_mb,
            self.cpu_s,
            output_chars,
            drop_privileges,
            self._tmp_root,
            bool(ast_check),
            os_layer,
        )
        self.layers: Optional[Dict[str, Any]] = None  # what the OS layer of the last worker applied
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

    def __enter__(self) -> Sandbox:
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

    def os_layers(self) -> Dict[str, Any]:
        """What the OS layer applied in a worker (starts one if none ran yet)."""
        if self.layers is None:
            self.run(CANARY)
        return dict(self.layers or {})

    def _note_layers(self, layers: Dict[str, Any]) -> None:
        self.layers = layers
        missing = tuple(layers.get("missing", ()))
        if missing and missing not in _LOGGED_MISSING:
            _LOGGED_MISSING.add(missing)
            log.warning(
                "sandbox: OS layer incomplete, running without: %s; the AST check and rlimits still apply",
                "; ".join(missing),
            )

    def run_many(self, codes: Iterable[str], progress: bool = False) -> List[ExecResult]:
        """Run programs in parallel across the workers; results in input order.

        Raises :class:`SandboxUnavailableError` when the sandbox itself is broken (see the module
        docstring), so that good programs are not rejected for an outage."""
        codes = [strip_fences(c if isinstance(c, str) else str(c)) for c in codes]
        results: List[Optional[ExecResult]] = [None] * len(codes)
        if not codes:
            return []
        bar = None
        if progress:
            bar = tqdm(total=len(codes), desc="sandbox", unit="prog")
        with self._lock:
            if self._closed:
                raise RuntimeError("Sandbox is closed")
            try:
                self._dispatch(codes, results, bar)
            finally:
                if bar is not None:
                    bar.close()
            out = [r if r is not None else ExecResult(None, "crashed", "lost") for r in results]
            self._check_outage(out)
        return out

    def _check_outage(self, results: List[ExecResult]) -> None:
        """Raise when every program failed for one infrastructure reason and a trivial one fails too."""
        reasons = {r.error for r in results}
        if len(reasons) != 1 or not reasons <= INFRA_ERRORS:
            return
        canary: List[Optional[ExecResult]] = [None]
        self._dispatch([CANARY], canary, None)
        probe = canary[0] or ExecResult(None, "crashed", "lost")
        if probe.value == 42.0:
            return  # the programs are bad, not the sandbox
        first = results[0]
        raise SandboxUnavailableError(
            f"sandbox unavailable: all {len(results)} programs failed with {first.error} ({first.detail}) and so did "
            f"a trivial program ({probe.error}: {probe.detail}); check sandbox.timeout_s, cpu_s and memory_mb, and "
            f"that worker processes can start"
        )

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
                        idx, kind, payload, *conv = w.conn.recv()
                        if idx == "ready":  # the worker's report of its OS layer, once at start
                            self._note_layers(kind)
                            continue
                        if w.pending and w.pending[0][0] == idx:
                            w.pending.popleft()
                        finish(idx, _to_result(kind, payload, conv[0] if conv else None))
                        w.done += 1
                        w.deadline = time.monotonic() + self.timeout_s + self.grace_s
                except (EOFError, OSError):
                    pass
                if w.pending and not w.proc.is_alive():
                    seen.add(i)
                    code = w.proc.exitcode
                    if code == -signal.SIGXCPU:
                        fail_worker(
                            i, ExecResult(None, "cpu_limit", f"worker killed by SIGXCPU (over {self.cpu_s}s of CPU)")
                        )
                    elif code == 3 and self.layers and not self.layers.get("landlock_fs"):
                        fail_worker(
                            i, ExecResult(None, "crashed", "os_layer=require: " + "; ".join(self.layers["missing"]))
                        )
                    else:
                        fail_worker(i, ExecResult(None, "crashed", f"worker died (exit code {code})"))
            now = time.monotonic()
            for i, w in busy:
                if self._pool[i] is w and w.pending and now >= w.deadline:
                    fail_worker(
                        i,
                        ExecResult(
                            None, "timeout", f"killed after {self.timeout_s + self.grace_s:.1f}s wall clock (parent)"
                        ),
                    )


_LOGGED_MISSING: set = set()  # OS-layer gaps already logged by this process


_ANSWER_KINDS = ("ok", "str", "printed", "non_numeric")


def _to_result(kind: str, payload: Any, convention: Optional[str] = None) -> ExecResult:
    if kind == "ok":
        return ExecResult(float(payload), None, convention=convention)
    if kind == "str":
        v = parse_number(payload)
        if v is None:
            return ExecResult(None, "non_numeric", f"string {payload[:80]!r}", convention)
        return ExecResult(v, None, convention=convention)
    if kind == "printed":
        v = last_number(payload)
        if v is None:
            return ExecResult(None, "no_answer", f"printed no number: {payload[-80:]!r}", convention)
        return ExecResult(v, None, convention=convention)
    if kind not in ERRORS:
        return ExecResult(None, "error", f"{kind}: {payload}")
    return ExecResult(None, kind, None if payload is None else str(payload)[:300])
