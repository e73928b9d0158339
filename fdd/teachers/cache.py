"""A content-addressed cache of every teacher call, in one sqlite file shared across runs.

The key is the sha256 of the canonical JSON of everything that determines a reply (backend,
model, chat messages, sampling parameters incl. the per-request seed, sample index), so a rerun
of the same config replays its calls for free and a changed prompt or temperature misses.

* ``on``: read and write; ``off``: no file at all; ``readonly``: replay a recorded run exactly
  (a miss is reported to the caller, who turns it into a failed reply without sending anything).
* Writes go through one writer thread per cache (a queue), committed in small batches as they
  arrive: the teacher's asyncio event loop never waits on sqlite, even while another process
  of a sweep holds the file's write lock. A run killed mid-batch keeps everything that had
  reached the writer; failed requests are never stored, so a rerun retries them.
* Several processes may share the file: WAL journal (readers never block the writer) and a
  ``busy_timeout`` so a writer waits for another process's commit instead of failing.
* Health is checked at open (``PRAGMA quick_check``, under a lock file so concurrent openers do
  not race): a garbage or truncated file is moved aside to ``<name>.corrupt-<UTC time>`` with a
  loud warning and a fresh cache is started (``on_corrupt="recreate"``), or
  :class:`CacheCorruptError` is raised (``on_corrupt="error"``; always for ``readonly``, whose
  whole point is to replay that file). A zero-byte file is, to sqlite, a valid empty database:
  it used to be silently reused as an empty cache (so every call was paid for again), and sqlite
  also silently *deletes* a ``-wal`` sidecar next to it, which may hold the lost calls. Now a
  zero-byte file is reported with a warning and started afresh; a non-empty ``-wal`` beside it
  is moved aside first (kept for recovery) instead of being deleted by sqlite.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

log = logging.getLogger(__name__)

CACHE_MODES = ("on", "off", "readonly")
ON_CORRUPT = ("recreate", "error")
DB_NAME = "teacher_calls.sqlite"
_SIDECARS = ("-wal", "-shm")
_BATCH = 256  # rows per write transaction: one fsync-free commit per batch under WAL+NORMAL
_STOP = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT,
    job TEXT,
    request TEXT NOT NULL,
    text TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""
_INSERT = (
    "INSERT OR REPLACE INTO calls (key, backend, model, job, request, text, prompt_tokens, "
    "completion_tokens, created) VALUES (?,?,?,?,?,?,?,?,?)"
)


class CacheCorruptError(RuntimeError):
    """The cache file is not a usable sqlite database (and the configuration says not to replace it)."""


def canonical_json(obj: Any) -> str:
    """JSON that is byte-identical for equal content (sorted keys, no whitespace, UTF-8 kept)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(payload: Dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload`` (backend, model, messages, sampling, sample_index)."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass
class CachedCall:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")  # other processes writing the same file
    return conn


@contextlib.contextmanager
def _open_lock(path: Path):
    """An exclusive lock on ``<db>.lock`` while one process checks (and maybe replaces) the file,
    so that two openers never both move it aside, nor one see another's half-created file."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # e.g. a read-only folder (readonly replay): nothing to guard against
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_health(path: Path, readonly: bool = False) -> Optional[str]:
    """Why the sqlite file at ``path`` is damaged, or None when it is fine (or absent).

    Only sqlite's own verdicts count as damage (SQLITE_CORRUPT, SQLITE_NOTADB, a failed
    ``quick_check``): a busy or unreadable file is an operational problem, reported by the
    normal path, and never a reason to move a shared cache aside."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return "zero-byte file"
    conn = _connect(path, readonly=readonly)  # read-write lets sqlite recover a killed writer's log first
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            return "failed integrity check: " + "; ".join(str(r[0]) for r in rows[:3])
        return None
    except sqlite3.DatabaseError as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or (
            not name and not isinstance(exc, sqlite3.OperationalError)
        ):
            return str(exc)  # "file is not a database", "database disk image is malformed"
        log.warning("could not check teacher cache %s (%s); using it as it is", path, exc)
        return None
    finally:
        conn.close()


def move_aside(path: Path, tag: str = "corrupt") -> Path:
    """Rename ``path`` (and its -wal/-shm sidecars) to ``<name>.<tag>-<UTC time>``; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = path.with_name(f"{path.name}.{tag}-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
    if path.exists():
        os.replace(path, dest)
    for suffix in _SIDECARS:
        side = path.with_name(path.name + suffix)
        if side.exists():
            if suffix == "-wal" and side.stat().st_size > 0:
                os.replace(side, dest.with_name(dest.name + suffix))
            else:
                side.unlink()
    return dest


class TeacherCache:
    """sqlite-backed store of completed teacher calls; see the module docstring for the modes."""

    def __init__(self, cache_dir: Optional[str], mode: str = "on", on_corrupt: str = "recreate") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"teacher cache mode must be one of {CACHE_MODES}, got {mode!r}")
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f"teacher cache on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}")
        self.mode = mode
        self.on_corrupt = on_corrupt
        self.path: Optional[Path] = None
        self.moved_aside: Optional[Path] = None  # where a corrupt file went, when one was found
        self._local = threading.local()
        self._conns: list = []
        self._conns_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._writer: Optional[threading.Thread] = None
        self._writer_lock = threading.Lock()
        if mode == "off":
            return
        if not cache_dir:
            raise ValueError(f"teacher cache mode {mode!r} needs a cache_dir")
        self.path = Path(cache_dir).expanduser() / DB_NAME
        if mode == "readonly":
            if not self.path.is_file():
                # Not fatal: every lookup misses, which is what "replay of nothing" means.
                log.warning("teacher cache %s does not exist; readonly replay will miss every call", self.path)
                return
            problem = check_health(self.path, readonly=True)
            if problem is not None:
                raise CacheCorruptError(
                    f"teacher cache {self.path} is unusable ({problem}); a readonly replay "
                    f"needs the recorded file intact: restore it, or use teacher.cache=on"
                )
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _open_lock(self.path):
            self._repair()
            self._conn()  # create the schema now, not in the middle of a batch

    def _repair(self) -> None:
        """Detect a damaged file and replace it (or refuse), before any connection touches it."""
        problem = check_health(self.path)
        if problem is None:
            return
        wal = self.path.with_name(self.path.name + "-wal")
        if problem == "zero-byte file" and not (wal.is_file() and wal.stat().st_size > 0):
            log.warning(
                "teacher cache %s is an empty (zero-byte) file: its earlier contents, if any, are lost and "
                "every teacher call will be paid for again; starting a fresh cache in it",
                self.path,
            )
            return
        if problem == "zero-byte file":
            problem = "zero-byte file beside a non-empty write-ahead log (sqlite would delete the log)"
        if self.on_corrupt == "error":
            raise CacheCorruptError(
                f"teacher cache {self.path} is corrupt ({problem}); move it away or set "
                f"teacher.cache_on_corrupt=recreate"
            )
        self.moved_aside = move_aside(self.path)
        log.warning(
            "TEACHER CACHE CORRUPT: %s (%s) was moved aside to %s; starting a fresh, empty cache, so "
            "earlier teacher calls will be paid for again",
            self.path,
            problem,
            self.moved_aside,
        )

    @property
    def readable(self) -> bool:
        return self.mode in ("on", "readonly") and self.path is not None

    @property
    def writable(self) -> bool:
        return self.mode == "on"

    def _conn(self) -> Optional[sqlite3.Connection]:
        """This thread's connection (sqlite connections must not be shared between threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.path is None:
            return None
        if self.mode == "readonly":
            if not self.path.is_file():
                return None
            conn = _connect(self.path, readonly=True)
        else:
            conn = _connect(self.path, readonly=False)
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, and vice versa
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            conn.execute(_SCHEMA)
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def get_many(self, keys: Iterable[str]) -> Dict[str, CachedCall]:
        """The stored calls among ``keys`` (absent keys are simply missing from the result)."""
        keys = list(dict.fromkeys(keys))
        if not self.readable or not keys:
            return {}
        self.flush()  # read this process's own queued writes
        conn = self._conn()
        if conn is None:
            return {}
        found: Dict[str, CachedCall] = {}
        for i in range(0, len(keys), 500):  # stay below sqlite's host-parameter limit
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            try:
                rows = conn.execute(
                    f"SELECT key, text, prompt_tokens, completion_tokens FROM calls WHERE key IN ({marks})", chunk
                ).fetchall()
            except sqlite3.DatabaseError as exc:  # e.g. damaged after open: misses cost requests, not the run
                log.warning("teacher cache %s lookup failed (%s); treating as misses", self.path, exc)
                return found
            for key, text, pt, ct in rows:
                found[key] = CachedCall(text, int(pt or 0), int(ct or 0))
        return found

    def get(self, key: str) -> Optional[CachedCall]:
        return self.get_many([key]).get(key)

    def put(
        self,
        key: str,
        *,
        backend: str,
        model: Optional[str],
        job: str,
        request: Dict[str, Any],
        text: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        """Queue one completed call for the writer thread (returns at once; never touches sqlite).
        A no-op unless the mode is ``on``."""
        if not self.writable:
            return
        row = (
            key,
            backend,
            model,
            job,
            canonical_json(request),
            text,
            int(prompt_tokens),
            int(completion_tokens),
            time.time(),
        )
        self._ensure_writer()
        self._queue.put(row)

    def _ensure_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="fdd-teacher-cache-writer", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        try:
            conn: Optional[sqlite3.Connection] = _connect(self.path, readonly=False)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:  # keep draining the queue (dropping rows) so flush() never hangs
            log.warning("teacher cache %s cannot be written (%s); teacher calls will not be cached", self.path, exc)
            conn = None
        try:
            while True:
                item = self._queue.get()
                batch: List[Tuple] = []
                stop = item is _STOP
                if not stop:
                    batch.append(item)
                while len(batch) < _BATCH and not stop:  # whatever else is already waiting
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                    else:
                        batch.append(item)
                try:
                    if batch:
                        self._commit(conn, batch)
                finally:
                    for _ in range(len(batch) + int(stop)):
                        self._queue.task_done()
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn: Optional[sqlite3.Connection], batch: List[Tuple]) -> None:
        if conn is None:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another process's commit
            conn.executemany(_INSERT, batch)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # Losing cache entries costs repeated requests later; never a round.
            log.warning("could not write %d teacher cache entries to %s: %s", len(batch), self.path, exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def flush(self) -> None:
        """Wait until every queued write is committed (or has failed with a warning)."""
        if self._writer is not None and threading.current_thread() is not self._writer:
            self._queue.join()

    def __len__(self) -> int:
        conn = self._conn() if self.readable else None
        if conn is None:
            return 0
        self.flush()
        try:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        except sqlite3.DatabaseError:
            return 0

    def close(self) -> None:
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None and writer.is_alive():
            self._queue.put(_STOP)
            writer.join()
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:  # pragma: no cover - closing from another thread
                pass
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"TeacherCache(mode={self.mode!r}, path={os.fspath(self.path) if self.path else None!r})"
