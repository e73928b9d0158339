"""Shared helpers for the dataset loaders: locating files, reading JSON/JSONL/CSV/XML, the Hub.

Errors are meant to be read by a user: a missing file names the paths that were tried, a missing
field names the file and the field, and a Hub failure says what to do offline (``dataset.path=``).
"""

from __future__ import annotations

import csv
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from fdd.runtime import io

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "DataUnavailableError",
    "DataFormatError",
    "resolve_file",
    "read_json",
    "read_jsonl",
    "read_csv",
    "read_xml",
    "read_records",
    "require",
    "load_hub",
    "spec_get",
]


class DataUnavailableError(RuntimeError):
    """A data set could not be obtained (Hub unreachable, file missing)."""


class DataFormatError(ValueError):
    """A data file does not have the expected shape (missing field, wrong JSON type)."""


def spec_get(spec: Any, name: str, default: Any = None) -> Any:
    """A field of a SourceConfig dataclass, an OmegaConf DictConfig or a plain dict."""
    if isinstance(spec, dict):
        return spec.get(name, default)
    try:
        v = getattr(spec, name)
    except Exception:  # noqa: BLE001 - DictConfig raises its own errors for unknown keys
        return default
    return default if v is None and default is not None else v


def resolve_file(path: str | Path, candidates: Sequence[str], dataset: str) -> Path:
    """The data file that ``path`` designates: the file itself, or ``candidates`` inside a folder.

    ``path`` may be relative to the working directory or to the repository root (so that
    ``../shared/data`` works from both the repo and a Hydra run directory).
    """
    raw = Path(path).expanduser()
    bases = [raw] if raw.is_absolute() else [Path.cwd() / raw, REPO_ROOT / raw]
    tried: List[str] = []
    for base in bases:
        if base.is_file():
            return base
        if base.is_dir():
            for c in candidates:
                p = base / c
                tried.append(str(p))
                if p.is_file():
                    return p
        else:
            tried.append(str(base))
    hint = f" (e.g. a folder holding {candidates[0]})" if candidates else ""
    raise DataUnavailableError(
        f"{dataset}: no data file at {str(path)!r}; looked for: {', '.join(dict.fromkeys(tried))}. "
        f"Point the path at the original file or a folder holding it{hint}."
    )


# Leading bytes of files that are not text: a compressed or archived copy of a data file
# (a .jsonl.gz renamed .jsonl, a zip downloaded in place of the file) is named, not parsed.
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed data; decompress it first (gunzip)",
    b"PK\x03\x04": "a zip archive; extract the file from it",
    b"BZh": "bzip2-compressed data; decompress it first (bunzip2)",
    b"\xfd7zXZ\x00": "xz-compressed data; decompress it first (unxz)",
    b"(\xb5/\xfd": "zstd-compressed data; decompress it first (unzstd)",
    b"PAR1": "a Parquet file; convert it to JSON lines or CSV",
    b"SQLite format 3\x00": "an SQLite database",
}


def check_text(path: Path, fmt: str) -> None:
    """Raise ``DataFormatError`` naming ``path`` when it is not a UTF-8 text file (compressed,
    archived or other binary data), before a parser fails on it with an error naming no file."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    why = next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)
    nul = head.find(b"\x00")
    if why is None and nul >= 0:
        why = f"binary data: a NUL byte at offset {nul}"
    if why is None:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.end < len(head) - 3:  # not a multi-byte character cut by the 64 KiB window
                why = f"not UTF-8: byte 0x{head[e.start]:02x} at offset {e.start}; save it as UTF-8"
    if why:
        raise DataFormatError(f"{path}: not a text {fmt} file ({why})")


def _decode_error(path: Path, fmt: str, e: UnicodeDecodeError) -> DataFormatError:
    """A byte that is not UTF-8 past the part ``check_text`` looked at."""
    return DataFormatError(
        f"{path}: not a text {fmt} file (not UTF-8 after the first 64 KiB: {e.reason}); save it as UTF-8"
    )


def read_json(path: Path) -> Any:
    check_text(path, "JSON")
    try:
        return io.read_json(path)
    except ValueError as e:  # names the file (bytes past check_text's look too); a data-format error
        raise DataFormatError(str(e)) from e


def read_jsonl(path: Path) -> List[dict]:
    check_text(path, "JSON lines")
    try:
        return io.read_jsonl(path)
    except ValueError as e:  # names the file and line
        raise DataFormatError(str(e)) from e


def read_csv(path: Path) -> List[dict]:
    check_text(path, "CSV")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: Excel writes a BOM
            return [dict(r) for r in csv.DictReader(f)]
    except UnicodeDecodeError as e:
        raise _decode_error(path, "CSV", e) from e
    except csv.Error as e:  # e.g. a NUL byte past the bytes check_text looked at
        raise DataFormatError(f"{path}: not a valid CSV file ({e})") from e


def read_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataFormatError(f"{path}: not valid XML ({e})") from e


def read_records(path: Path, fmt: Optional[str] = None) -> List[dict]:
    """Rows of a .jsonl / .json / .csv file as dicts (``fmt`` overrides the suffix)."""
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt in ("jsonl", "ndjson"):
        rows = read_jsonl(path)
    elif fmt == "json":
        data = read_json(path)
        if isinstance(data, dict):  # {"data": [...]} and similar wrappers
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataFormatError(f"{path}: expected a JSON array of objects (or one object holding one)")
            data = lists[0]
        if not isinstance(data, list):
            raise DataFormatError(f"{path}: expected a JSON array of objects")
        rows = data
    elif fmt == "csv":
        rows = read_csv(path)
    else:
        raise DataFormatError(f"{path}: unknown format {fmt!r} (use jsonl, json or csv)")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise DataFormatError(f"{path}: row {i} is a {type(r).__name__}, expected an object")
    return rows


def require(row: Dict[str, Any], fields: Iterable[str], where: str, row_ref: Any = None) -> List[Any]:
    """The values of ``fields`` in ``row``; a clear error naming the file and the field if absent."""
    out = []
    for name in fields:
        if name not in row:
            at = f" (row {row_ref})" if row_ref is not None else ""
            raise DataFormatError(f"{where}{at}: missing field {name!r}; fields present: {sorted(row)}")
        out.append(row[name])
    return out


def load_hub(name: str, config: Optional[str], split: str, dataset: str) -> List[dict]:
    """Rows of a Hugging Face Hub data set split; ``split='all'`` concatenates every split.

    When the requested split does not exist and the set has exactly one split (ASDiv publishes
    only ``validation``), that split is used.
    """
    try:
        import datasets

        dd = datasets.load_dataset(name, config) if config else datasets.load_dataset(name)
    except Exception as e:  # noqa: BLE001 - network, auth, missing repo: all mean "not available"
        raise DataUnavailableError(
            f"{dataset}: could not download {name!r}{f' (config {config!r})' if config else ''} from the "
            f"Hugging Face Hub ({type(e).__name__}: {str(e)[:200]}). Offline? Point dataset.path= "
            f"(or the source's path=) at a local copy of the original files, e.g. dataset.path=../shared/data"
        ) from e
    splits = list(dd.keys())
    if split == "all":
        chosen = splits
    elif split in dd:
        chosen = [split]
    elif len(splits) == 1:
        log.info("%s: %s has no split %r; using its only split %r", dataset, name, split, splits[0])
        chosen = splits
    else:
        raise DataUnavailableError(f"{dataset}: {name!r} has no split {split!r}; available: {splits} (or 'all')")
    rows: List[dict] = []
    for s in chosen:
        rows.extend(dict(r) for r in dd[s])
    return rows
