"""A content-addressed cache of every teacher call, in one sqlite file shared across runs.

The key is the sha256 of the canonical JSON of everything that determines a reply (backend,
model, chat messages, sampling parameters incl. the per-request seed, sample index), so a rerun
of the same config replays its calls for free and a changed prompt or temperature misses.

* ``on``: read and write; ``off``: no file at all; ``readonly``: replay a recorded run exactly
  (a miss is reported to the caller, who turns it into a failed reply without sending anything).
* Every completed request is committed on its own (autocommit, WAL journal), so a run that is
  killed mid-batch keeps everything that had finished; failed requests are never stored, so a
  rerun retries them.
* Safe with concurrent writers: one connection per thread, WAL + ``busy_timeout`` across
  processes, and an in-process lock around writes so threads never fight over the write lock.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

log = logging.getLogger(__name__)

CACHE_MODES = ("on", "off", "readonly")
DB_NAME = "teacher_calls.sqlite"

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


class TeacherCache:
    """sqlite-backed store of completed teacher calls; see the module docstring for the modes."""

    def __init__(self, cache_dir: Optional[str], mode: str = "on") -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"teacher cache mode must be one of {CACHE_MODES}, got {mode!r}")
        self.mode = mode
        self.path: Optional[Path] = None
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._conns: list = []
        self._conns_lock = threading.Lock()
        if mode == "off":
            return
        if not cache_dir:
            raise ValueError(f"teacher cache mode {mode!r} needs a cache_dir")
        self.path = Path(cache_dir).expanduser() / DB_NAME
        if mode == "readonly" and not self.path.is_file():
            # Not fatal: every lookup misses, which is what "replay of nothing" means.
            log.warning("teacher cache %s does not exist; readonly replay will miss every call", self.path)
        if mode == "on":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn()  # create the schema now, not in the middle of a batch

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
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, and vice versa
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            conn.execute(_SCHEMA)
        conn.execute("PRAGMA busy_timeout=30000")  # other processes writing the same file
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def get_many(self, keys: Iterable[str]) -> Dict[str, CachedCall]:
        """The stored calls among ``keys`` (absent keys are simply missing from the result)."""
        keys = list(dict.fromkeys(keys))
        if not self.readable or not keys:
            return {}
        conn = self._conn()
        if conn is None:
            return {}
        found: Dict[str, CachedCall] = {}
        for i in range(0, len(keys), 500):  # stay below sqlite's host-parameter limit
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            try:
                rows = conn.execute(
                    f"SELECT key, text, prompt_tokens, completion_tokens FROM calls WHERE key IN ({marks})",
                    chunk).fetchall()
            except sqlite3.OperationalError as exc:  # e.g. a readonly replay of an empty file
                log.warning("teacher cache lookup failed (%s); treating as misses", exc)
                return found
            for key, text, pt, ct in rows:
                found[key] = CachedCall(text, int(pt or 0), int(ct or 0))
        return found

    def get(self, key: str) -> Optional[CachedCall]:
        return self.get_many([key]).get(key)

    def put(self, key: str, *, backend: str, model: Optional[str], job: str, request: Dict[str, Any],
            text: str, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Store one completed call, committed immediately. A no-op unless the mode is ``on``."""
        if not self.writable:
            return
        conn = self._conn()
        row = (key, backend, model, job, canonical_json(request), text, int(prompt_tokens),
               int(completion_tokens), time.time())
        try:
            with self._write_lock:
                conn.execute("INSERT OR REPLACE INTO calls (key, backend, model, job, request, text, "
                             "prompt_tokens, completion_tokens, created) VALUES (?,?,?,?,?,?,?,?,?)", row)
        except sqlite3.Error as exc:
            # Losing one cache entry costs one repeated request later; never a round.
            log.warning("could not write teacher cache entry %s: %s", key[:12], exc)

    def __len__(self) -> int:
        conn = self._conn() if self.readable else None
        if conn is None:
            return 0
        try:
            return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    def close(self) -> None:
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
