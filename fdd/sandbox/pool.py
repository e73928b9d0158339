"""The parent side: :class:`Sandbox`, a pool of warm worker processes that run programs.

* **Persistent workers.** Starting a Python interpreter per program costs ~20-40 ms; a warm worker
  compiles and runs a short program in well under a millisecond. Programs are sent to a worker in
  batches (one IPC round-trip per batch) and results stream back one by one, so the parent can
  enforce a per-program wall clock, and kill and replace a worker stuck in C code
  (``10**10**9``) or swallowing its in-worker timer.
* **A clean start.** A worker is a fresh interpreter (``subprocess``, not ``fork``) whose
  environment holds only :data:`WORKER_ENV` names from the parent's: no API key or token of the
  parent is in its ``os.environ`` or ``/proc/<pid>/environ``, even for a program that got past
  every Python-level check. Its messages are JSON, so it cannot make the parent run code either.
* **Reasons name the limit that fired**: ``timeout`` (wall clock: the in-worker timer, or the
  parent's kill), ``cpu_limit`` (``RLIMIT_CPU``), ``memory`` (``RLIMIT_AS``), ``output_limit``.
* **Outage, not rejections.** When every program of a batch fails for the same infrastructure
  reason (crashed, timeout, cpu_limit, memory), a trivial program is run; if it fails too, the
  sandbox itself is broken (workers cannot start, limits too tight for any program) and
  :class:`SandboxUnavailableError` is raised instead of rejecting good rationales.
* **Never hang.** Every failure of a program becomes an :class:`ExecResult` with a short reason;
  a dead worker is replaced and its program reported as ``"crashed"``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, replace
from multiprocessing.connection import wait as mp_wait
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from fdd.sandbox.confine import landlock_abi
from fdd.sandbox.limits import SandboxLimits
from fdd.sandbox.policy import DEFAULT_MODULES
from fdd.sandbox.result import INFRA_ERRORS, ExecResult, result_from_report
from fdd.sandbox.worker import WorkerSpec, recv, send

log = logging.getLogger(__name__)

__all__ = ["Sandbox", "SandboxUnavailableError", "WORKER_ENV", "worker_env", "CANARY"]

CANARY = "answer = 6 * 7"
# The only names a worker's environment takes from the parent's (locale and hash seed, so programs
# behave as they would in the parent); everything else, API keys included, stays behind.
WORKER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONHASHSEED")
# A worker finds the parent's modules on the parent's sys.path (given on its command line), then
# starts its loop; nothing of fdd is imported before sys.path is set.
_BOOT = "import sys; sys.path[:] = sys.argv[2:]; from fdd.sandbox.worker import main; main(sys.argv[1:2])"
_MAX_MESSAGE = 1 << 20  # bytes; a worker's reports are far shorter


class SandboxUnavailableError(RuntimeError):
    """The sandbox cannot run even a trivial program: an outage, not a batch of bad programs."""


def worker_env() -> Dict[str, str]:
    """The whole environment a worker starts with."""
    env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
    env["OPENBLAS_NUM_THREADS"] = "1"  # numpy (if whitelisted) must not start threads
    return env


class _Worker:
    """One worker process and the socket to it."""

    def __init__(self, spec: WorkerSpec):
        self.conn, child = mp.Pipe(duplex=True)
        try:
            fd = child.fileno()
            flags = ["-B"] if sys.dont_write_bytecode else []
            path = [os.path.abspath(p) for p in sys.path if isinstance(p, str)]
            self.proc = subprocess.Popen(
                [sys.executable, *flags, "-c", _BOOT, str(fd), *path],
                env=worker_env(),
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # nothing a program does reaches the parent's terminal
            )
        except BaseException:
            self.conn.close()
            raise
        finally:
            child.close()
        self.sentinel: Optional[int] = None  # a pidfd: readable once the process has exited
        try:
            self.sentinel = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):  # Linux < 5.3: its socket's end of file says it as well
            pass
        self.pending: deque = deque()  # (idx, code) sent, result not yet received
        self.deadline = float("inf")
        self.done = 0
        try:
            send(self.conn, asdict(spec))
        except BaseException:
            self.kill()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> int:
        """The exit status of a worker whose socket closed (killed if it has not exited in a second)."""
        try:
            return self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=2)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None


def _parse_report(message: Any) -> Optional[Tuple[Any, str, Any, Optional[str]]]:
    """``(idx, kind, payload, convention)`` of a well-formed result message, else None."""
    if not (isinstance(message, list) and len(message) == 4):
        return None
    idx, kind, payload, convention = message
    if not (isinstance(kind, str) and (convention is None or isinstance(convention, str))):
        return None
    if kind == "number" and not (isinstance(payload, (int, float)) and not isinstance(payload, bool)):
        return None
    if payload is not None and not isinstance(payload, (str, int, float)):
        return None
    return idx, kind, payload, convention


class Sandbox:
    """A pool of warm worker processes that run programs and return their answers.

    ``limits`` (:class:`SandboxLimits`): the number of workers and what one program may use;
    keyword arguments named after its fields override it (``Sandbox(workers=1)``).
    ``extra_modules`` widens the import whitelist (e.g. ``("numpy",)``; do not add ``sympy``: it
    evaluates strings as code). ``ast_check=False`` switches the AST check off, only to test the
    layers behind it.

    A program's answer is read by an *answer reader* (fdd/sandbox/worker.py), by default the
    top-level variable ``answer``; a number comes back as ``value``, text (a string answer) as
    ``answer_text`` with the error ``non_numeric``: reading a number out of text is the caller's
    convention (fdd/reasoning/programs.py), as are Markdown fences around a program.
    """

    def __init__(
        self,
        limits: Optional[SandboxLimits] = None,
        *,
        extra_modules: Sequence[str] = (),
        output_chars: int = 65536,
        batch_size: int = 16,
        max_tasks_per_worker: int = 2000,
        drop_privileges: bool = True,
        ast_check: bool = True,
        **overrides: Any,
    ):
        limits = limits or SandboxLimits()
        self.limits = replace(limits, **overrides) if overrides else limits
        if self.limits.os_layer == "require" and landlock_abi() < 1:
            raise SandboxUnavailableError(
                "sandbox.os_layer=require but Landlock is not available on this kernel "
                "(needs Linux >= 5.13 with Landlock enabled); use os_layer=auto"
            )
        self.batch_size = max(1, int(batch_size))
        self.max_tasks_per_worker = max_tasks_per_worker
        self.allowed = tuple(DEFAULT_MODULES) + tuple(extra_modules)
        # Programs cannot outlive this: in-worker timer first, then the parent kills.
        self.grace_s = 1.0 + 0.5 * self.limits.timeout_s
        # Per-program working directories live under one private root that close() removes; it is
        # world-writable only so that a worker that dropped root privileges can use it.
        self._tmp_root = tempfile.mkdtemp(prefix="fdd-sandbox-")
        os.chmod(self._tmp_root, 0o777)
        self._spec = WorkerSpec(
            allowed=self.allowed,
            timeout_s=self.limits.timeout_s,
            memory_mb=self.limits.memory_mb,
            cpu_s=self.limits.cpu_s,
            output_chars=output_chars,
            drop_privileges=drop_privileges,
            tmp_root=self._tmp_root,
            ast_check=bool(ast_check),
            os_layer=self.limits.os_layer,
        )
        self.layers: Optional[Dict[str, Any]] = None  # what the OS layer of the last worker applied
        self._pool: List[Optional[_Worker]] = [None] * self.limits.workers
        self._lock = threading.Lock()
        self._closed = False
        self.stats: Dict[str, int] = {"restarts": 0}

    # -- lifecycle -------------------------------------------------------------------------
    def _worker(self, i: int) -> _Worker:
        w = self._pool[i]
        if w is None or not w.alive() or w.done >= self.max_tasks_per_worker:
            if w is not None:
                self._retire(i)
            w = self._pool[i] = _Worker(self._spec)
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
                    send(w.conn, None)
                    w.proc.wait(timeout=0.5)
                except Exception:  # noqa: BLE001
                    pass
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
    def run(self, code: str, answer_reader: Optional[str] = None) -> ExecResult:
        """Run one program."""
        return self.run_many([code], answer_reader=answer_reader)[0]

    def os_layers(self) -> Dict[str, Any]:
        """What the OS layer applied in a worker (starts one if none ran yet)."""
        if self.layers is None:
            self.run(CANARY)
        return dict(self.layers or {})

    def _note_layers(self, layers: Dict[str, Any]) -> None:
        self.layers = layers
        missing = tuple(str(m) for m in layers.get("missing", ()))
        if missing and missing not in _LOGGED_MISSING:
            _LOGGED_MISSING.add(missing)
            log.warning(
                "sandbox: OS layer incomplete, running without: %s; the AST check and rlimits still apply",
                "; ".join(missing),
            )

    def run_many(
        self, codes: Iterable[str], progress: bool = False, *, answer_reader: Optional[str] = None
    ) -> List[ExecResult]:
        """Run programs in parallel across the workers; results in input order. ``answer_reader``:
        the source of the ``read_answer`` function that picks each program's answer
        (fdd/sandbox/worker.py); None reads the variable ``answer``.

        Raises :class:`SandboxUnavailableError` when the sandbox itself is broken (see the module
        docstring), so that good programs are not rejected for an outage."""
        codes = [c if isinstance(c, str) else str(c) for c in codes]
        results: List[Optional[ExecResult]] = [None] * len(codes)
        if not codes:
            return []
        bar = None
        if progress:
            from tqdm.auto import tqdm  # the parent's only; workers never show a bar

            bar = tqdm(total=len(codes), desc="sandbox", unit="prog")
        with self._lock:
            if self._closed:
                raise RuntimeError("Sandbox is closed")
            try:
                self._dispatch(codes, results, bar, answer_reader)
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
        self._dispatch([CANARY], canary, None, None)
        probe = canary[0] or ExecResult(None, "crashed", "lost")
        if probe.value == 42.0:
            return  # the programs are bad, not the sandbox
        first = results[0]
        raise SandboxUnavailableError(
            f"sandbox unavailable: all {len(results)} programs failed with {first.error} ({first.detail}) and so did "
            f"a trivial program ({probe.error}: {probe.detail}); check sandbox.timeout_s, cpu_s and memory_mb, and "
            f"that worker processes can start"
        )

    def _dispatch(
        self, codes: List[str], results: List[Optional[ExecResult]], bar, answer_reader: Optional[str]
    ) -> None:
        timeout_s, grace_s = self.limits.timeout_s, self.grace_s
        todo: deque = deque(enumerate(codes))
        n_active = min(self.limits.workers, len(codes))
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
                        send(w.conn, {"reader": answer_reader, "programs": batch})
                        w.deadline = time.monotonic() + timeout_s + grace_s
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
            handles: Dict[Any, int] = {}
            for i, w in busy:
                handles[w.conn] = i
                if w.sentinel is not None:
                    handles[w.sentinel] = i
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
                gone = broken = False
                try:
                    while w.pending and w.conn.poll():
                        message = recv(w.conn, _MAX_MESSAGE)
                        if isinstance(message, list) and len(message) == 2 and message[0] == "ready":
                            if isinstance(message[1], dict):  # the worker's OS layer, once at start
                                self._note_layers(message[1])
                            continue
                        report = _parse_report(message)
                        if report is None or report[0] != w.pending[0][0]:  # only the program in flight
                            broken = True
                            break
                        idx, kind, payload, convention = report
                        w.pending.popleft()
                        finish(idx, result_from_report(kind, payload, convention))
                        w.done += 1
                        w.deadline = time.monotonic() + timeout_s + grace_s
                except (EOFError, OSError):
                    gone = True
                except ValueError:  # not JSON
                    broken = True
                if broken:
                    seen.add(i)
                    fail_worker(i, ExecResult(None, "crashed", "the worker sent a malformed message"))
                elif w.pending and (gone or not w.alive()):
                    seen.add(i)
                    code = w.exit_code()
                    if code == -signal.SIGXCPU:
                        fail_worker(
                            i,
                            ExecResult(
                                None, "cpu_limit", f"worker killed by SIGXCPU (over {self.limits.cpu_s}s of CPU)"
                            ),
                        )
                    elif code == 3 and self.layers and not self.layers.get("landlock_fs"):
                        fail_worker(
                            i,
                            ExecResult(None, "crashed", "os_layer=require: " + "; ".join(self.layers["missing"])),
                        )
                    else:
                        fail_worker(i, ExecResult(None, "crashed", f"worker died (exit code {code})"))
            now = time.monotonic()
            for i, w in busy:
                if self._pool[i] is w and w.pending and now >= w.deadline:
                    fail_worker(
                        i,
                        ExecResult(None, "timeout", f"killed after {timeout_s + grace_s:.1f}s wall clock (parent)"),
                    )


_LOGGED_MISSING: set = set()  # OS-layer gaps already logged by this process
