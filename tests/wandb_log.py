"""Reads back what an offline wandb run wrote (test-only): the records of a ``.wandb``
transaction log and the history rows logged to it."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Dict, Iterator, List

_LOG_HEADER = struct.Struct("<4sHB")  # ":W&B", magic 0xBEE1, version
_BLOCK, _REC_HEADER = 32768, 7  # leveldb-log blocks; record header = crc32c(4) length(2) type(1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_wandb_records(path, timeout_s: float = 30.0) -> Iterator:
    """The ``wandb_internal_pb2.Record`` messages of a ``.wandb`` transaction log.

    wandb >= 0.19 has no Python reader any more (the Go core writes the file), so this decodes
    its leveldb-log framing here and parses each payload with wandb's own protobuf schema.

    ``run.finish()`` can return before wandb's core has written the log's last records, so the
    file is read again until it parses to its ``exit`` record (or ``timeout_s`` passes: then what
    is there, or the error reading it)."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            records = list(_records(Path(path).read_bytes(), path))
        except DecodeError:  # a record still being written at the end of the file
            if time.monotonic() > deadline:
                raise
        else:
            if (records and records[-1].WhichOneof("record_type") == "exit") or time.monotonic() > deadline:
                return iter(records)
        time.sleep(0.2)


def _records(data: bytes, path) -> Iterator:
    from wandb.proto import wandb_internal_pb2

    ident, magic, _version = _LOG_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a wandb transaction log")
    pos, pending = _LOG_HEADER.size, b""
    while pos + _REC_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _REC_HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        payload = data[pos + _REC_HEADER : pos + _REC_HEADER + length]
        pos += _REC_HEADER + length
        if kind == 0 and length == 0:  # zero padding
            continue
        if kind == _FULL:
            pending = payload
        elif kind == _FIRST:
            pending = payload
            continue
        elif kind == _MIDDLE:
            pending += payload
            continue
        elif kind == _LAST:
            pending += payload
        else:
            raise ValueError(f"{path}: bad record type {kind} at byte {pos}")
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(pending)
        pending = b""
        yield rec


def wandb_history(path) -> List[Dict]:
    """History rows (``{key: value}``) logged to an offline run's ``.wandb`` file."""
    rows = []
    for rec in iter_wandb_records(path):
        if rec.WhichOneof("record_type") == "history":
            row = {}
            for item in rec.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
    return rows


def wandb_summary(path) -> Dict:
    """The final summary (``{key: value}``) of an offline run's ``.wandb`` file: its summary records
    applied in order (updates, then removals)."""
    out: Dict = {}
    for rec in iter_wandb_records(path):
        if rec.WhichOneof("record_type") != "summary":
            continue
        for item in rec.summary.update:
            out["/".join(item.nested_key) if item.nested_key else item.key] = json.loads(item.value_json)
        for item in rec.summary.remove:
            out.pop("/".join(item.nested_key) if item.nested_key else item.key, None)
    return out
