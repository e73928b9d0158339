"""Atomic JSON / JSON-lines files: a killed run never leaves a half-written output behind."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator

_UMASK_LOCK = threading.Lock()


class MalformedFileError(ValueError):
    """A file of the run (or given to it) that is not valid JSON / JSON lines; names the file."""


def file_mode() -> int:
    """The mode ``open()`` would give a new file (0644 under the usual umask 022): ``mkstemp``
    makes 0600 files, which collaborators could not read."""
    with _UMASK_LOCK:  # os.umask can only be read by setting it; restore it at once
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, obj) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    """Parsed JSON; a malformed file is a ``ValueError`` naming it."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise MalformedFileError(f"{path}: not valid JSON ({e})") from e


def write_jsonl(path, rows: Iterable) -> None:
    """Write records (dataclasses with ``to_dict`` or plain dicts) atomically."""
    lines = [json.dumps(r.to_dict() if hasattr(r, "to_dict") else r, default=str) for r in rows]
    atomic_write_text(Path(path), "".join(line + "\n" for line in lines))


def read_jsonl(path, cls=None) -> list:
    return list(iter_jsonl(path, cls))


def iter_jsonl(path, cls=None) -> Iterator:
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise MalformedFileError(f"{path}:{i}: not valid JSON ({e})") from e
                yield cls.from_dict(d) if cls is not None else d
