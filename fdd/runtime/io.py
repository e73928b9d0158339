"""Atomic JSON / JSON-lines files: a killed run never leaves a half-written output behind.

A file that cannot be written (disk full, read-only folder, no permission) is a ``WriteError``
naming it, and the file it would have replaced is left as it was; ``check_writable_dir`` and
``RunDirCallback`` refuse a run directory that cannot be written before any work starts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

_UMASK_LOCK = threading.Lock()


class MalformedFileError(ValueError):
    """A file of the run (or given to it) that is not valid JSON / JSON lines; names the file."""


class WriteError(OSError):
    """A file that could not be written (no space, read-only, no permission); ``filename`` names it."""


class RunDirError(OSError):
    """A run directory that cannot be made or written; the message says which and what to do."""


# What a user fixes on their side (free space, permissions, another folder), not a bug of fdd.
DISK_ERRNOS = frozenset(
    e
    for e in (
        errno.ENOSPC,
        getattr(errno, "EDQUOT", None),
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EFBIG,
    )
    if e is not None
)


def file_mode() -> int:
    """The mode ``open()`` would give a new file (0644 under the usual umask 022): ``mkstemp``
    makes 0600 files, which collaborators could not read."""
    with _UMASK_LOCK:  # os.umask can only be read by setting it; restore it at once
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all; a failed write (disk full, ...) is a ``WriteError``
    naming ``path``, and the file it would have replaced is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise _write_error(path, e) from e
        raise


def _write_error(path: Path, e: OSError) -> WriteError:
    return WriteError(e.errno, e.strerror or str(e), str(path))


def check_writable_dir(path, what: str = "run directory", key: str = "hydra.run.dir") -> Path:
    """Make ``path`` (and its parents) and check a file can be created in it; a ``RunDirError``
    naming the folder, the reason and the ``key`` that chooses another one otherwise."""
    p = Path(path)
    hint = f"choose another with {key}=..."
    in_the_way = next((a for a in (p, *p.parents) if a.exists() and not a.is_dir()), None)
    if in_the_way is not None:
        where = "it is" if in_the_way == p else f"{in_the_way} is"
        raise RunDirError(
            errno.EEXIST, f"cannot write the {what} {p}: {where} a file, not a folder; remove it or {hint}"
        )
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".fdd-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or str(e)
        if e.filename and not _inside(Path(e.filename), p):  # a folder above it
            reason = f"{reason} ({e.filename})"
        fix = "make it writable or " if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
        raise RunDirError(e.errno, f"cannot write the {what} {p}: {reason}; {fix}{hint}") from e
    return p


_NO_SPACE = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
_READ_ONLY = frozenset((errno.EACCES, errno.EPERM, errno.EROFS))
LOW_SPACE_BYTES = 1 << 20  # a run directory's file system with less free space than this is full
RESUME_HINT = "free some space, then rerun the same command: finished stages are kept and the run resumes"


def disk_error_message(exc: BaseException, run_dir=None) -> str | None:
    """One line for an error a user fixes on their side -- disk full, read-only folder, no
    permission -- naming the run directory when the file is in it; None for any other error.
    Writers that fail on a full disk with an error of their own (``torch.save``'s RuntimeError)
    count as "disk full" when the run directory's file system has (almost) no space left."""
    if isinstance(exc, RunDirError):
        return exc.strerror
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        reason, name = exc.strerror or str(exc), exc.filename
        if name is None and exc.errno not in _NO_SPACE | {errno.EROFS}:
            return None  # a permission error on no file: not about the disk
        if run_dir is not None and (name is None or _inside(Path(name), Path(run_dir))):
            fix = RESUME_HINT if exc.errno in _NO_SPACE else "make it writable or choose another with hydra.run.dir=..."
            return f"cannot write the run directory {run_dir}: {reason}{f' ({name})' if name else ''}; {fix}"
        if exc.errno in _NO_SPACE:
            return f"cannot write {name or 'a file'}: {reason}; free some space, then rerun the same command"
        if exc.errno == errno.EROFS:
            return f"cannot write {name or 'a file'}: {reason}"
        return f"{name}: {reason}"  # EACCES / EPERM: reading or writing, the file names the fix
    if run_dir is not None and _free_bytes(Path(run_dir)) < LOW_SPACE_BYTES:
        what = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return f"cannot write the run directory {run_dir}: no space left on device ({what[:200]}); {RESUME_HINT}"
    return None


def _free_bytes(folder: Path) -> int:
    """Free bytes of the file system holding ``folder`` (or its nearest existing parent)."""
    for p in (folder, *folder.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return LOW_SPACE_BYTES  # unknown: not "full"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover -- Hydra is a dependency; keeps this module importable alone
    _HydraCallback = object  # type: ignore[misc,assignment]


class RunDirCallback(_HydraCallback):
    """Refuses a run (or sweep) directory that cannot be written -- a file in its place, a
    read-only folder -- with one ``fdd: error:`` line and exit status 2, before Hydra makes it
    and writes its own files there (which would fail with a traceback)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir", "run directory")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir", "sweep directory")

    @staticmethod
    def _check(config: Any, key: str, what: str) -> None:
        from omegaconf import OmegaConf

        try:
            folder = OmegaConf.select(config, key)
        except Exception:  # noqa: BLE001 -- an unresolvable name: Hydra reports it itself
            return
        if not folder:
            return
        try:
            check_writable_dir(str(folder), what, key)
        except RunDirError as e:
            print(f"fdd: error: {e.strerror}", file=sys.stderr)
            sys.exit(2)


def write_json(path, obj) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    """Parsed JSON; a malformed file is a ``ValueError`` naming it."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise MalformedFileError(f"{path}: not valid JSON ({e})") from e
        except UnicodeDecodeError as e:
            raise MalformedFileError(f"{path}: not a text JSON file (not UTF-8: {e.reason})") from e


def write_jsonl(path, rows: Iterable) -> None:
    """Write records (dataclasses with ``to_dict`` or plain dicts) atomically."""
    lines = [json.dumps(r.to_dict() if hasattr(r, "to_dict") else r, default=str) for r in rows]
    atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def read_jsonl(path, cls=None) -> list:
    return list(iter_jsonl(path, cls))


def iter_jsonl(path, cls=None) -> Iterator:
    with open(path, encoding="utf-8") as f:
        lines = enumerate(f, 1)
        while True:
            try:
                i, line = next(lines)
            except StopIteration:
                return
            except UnicodeDecodeError as e:
                raise MalformedFileError(f"{path}: not a text JSON lines file (not UTF-8: {e.reason})") from e
            if line.strip():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise MalformedFileError(f"{path}:{i}: not valid JSON ({e})") from e
                yield cls.from_dict(d) if cls is not None else d
