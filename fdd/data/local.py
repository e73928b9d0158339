"""Any local .jsonl / .json / .csv file of problems, with configurable field names.

``question_field`` / ``answer_field`` / ``id_field`` name the columns; answers go through the
project's one normaliser (``parse_number``), and a GSM8K-style rationale ending in ``#### N`` is
accepted as an answer, and so is a one-element list (AddSub / SingleEq / MultiArith keep their
answer in ``lSolutions: [N]``); a list of several answers is skipped and counted, as it names no one
answer. Without ``id_field``, ids are content hashes of the question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fdd.data.base import LoadResult
from fdd.data.files import DataUnavailableError, read_records, require, resolve_file, spec_get
from fdd.reasoning.answer import parse_number
from fdd.types import content_id


def _answer(raw: Any) -> float | None:
    if isinstance(raw, (list, tuple)) and len(raw) == 1:  # lSolutions: [39.0]
        raw = raw[0]
    if isinstance(raw, str) and "####" in raw:
        raw = raw.rsplit("####", 1)[1]
    return parse_number(raw)


def _list_defect(raw: Any, field: str) -> str | None:
    """Why a list-valued answer names no one answer (None: not a list, or one element)."""
    if not isinstance(raw, (list, tuple)) or len(raw) == 1:
        return None
    if not raw:
        return f"empty {field} list (expected one answer)"
    return f"{field} is a list of several answers (expected one)"


def load(spec: Any, seed: int = 0) -> LoadResult:
    path = spec_get(spec, "path")
    if not path:
        raise DataUnavailableError("local: set path= to a .jsonl, .json or .csv file of problems")
    f = _locate(path)
    qf, af = spec_get(spec, "question_field", "question"), spec_get(spec, "answer_field", "answer")
    idf = spec_get(spec, "id_field")
    rows = read_records(f, spec_get(spec, "format"))
    source = f"local-{f.stem}"
    result = LoadResult(problems=[], source=source)
    for i, row in enumerate(rows):
        question, raw = require(row, (qf, af), str(f), i)
        question = str(question).strip()
        if idf:
            (rid,) = require(row, (idf,), str(f), i)
            pid = f"{source}-{rid}"
        else:
            pid = content_id(question, prefix=f"{source}-")
        if not question:
            result.skip("empty question", pid)
            continue
        defect = _list_defect(raw, af)
        if defect:
            result.skip(defect, pid)
            continue
        meta = {k: v for k, v in row.items() if k not in (qf, af, idf)}
        result.add(pid, question, _answer(raw), source, meta)
    return result


def _locate(path: str) -> Path:
    """The file ``path`` names; a folder is accepted when it holds exactly one data file."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(x for x in p.iterdir() if x.suffix in (".jsonl", ".json", ".csv"))
        if len(files) == 1:
            return files[0]
        raise DataUnavailableError(f"local: {path!r} is a folder with {len(files)} data files; name one file")
    return resolve_file(path, [], "local")
