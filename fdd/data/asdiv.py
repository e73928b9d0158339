"""ASDiv (chaochun/nlu-asdiv-dataset): XML ``<Problem ID>`` with ``Body``, ``Question``, ``Answer``.

Answers carry units (``9 (apples)``) and some are not one number at all: ratios and clock times
(``3:4``, ``3:30 p.m.``), several answers (``8; 40``), names or yes/no. Those rows are skipped
with a reason, never a crash. The Hub copy (``EleutherAI/asdiv``, one ``validation`` split) has
lower-case fields ``body``, ``question``, ``answer``, ``formula``, ``solution_type`` and no id.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, Optional, Tuple

from fdd.data.base import LoadResult
from fdd.data.files import DataFormatError, load_hub, read_xml, resolve_file, spec_get
from fdd.reasoning.answer import parse_number
from fdd.types import content_id

HUB_NAME = "EleutherAI/asdiv"


def parse_answer(text: str) -> Tuple[Optional[float], Optional[str]]:
    """(value, None) for a single numeric answer, else (None, reason)."""
    s = " ".join(str(text).split())
    if ";" in s:
        return None, "multiple answers"
    if re.search(r"\d\s*:\s*\d", s):
        return None, "ratio or clock time"
    v = parse_number(s, strict=True)
    if v is None:
        return None, "non-numeric answer"
    return v, None


def _xml_rows(f) -> Iterator[Dict[str, Any]]:
    root = read_xml(f)
    for i, p in enumerate(root.iter("Problem")):
        row = {"id": p.get("ID"), "grade": p.get("Grade")}
        for tag in ("Body", "Question", "Answer", "Formula", "Solution-Type"):
            el = p.find(tag)
            row[tag] = el.text if el is not None else None
        for tag in ("Body", "Question", "Answer"):
            if row[tag] is None:
                raise DataFormatError(f"{f} (problem {row['id'] or i}): missing <{tag}>")
        yield row


def load(spec: Any, seed: int = 0) -> LoadResult:
    path = spec_get(spec, "path")
    if path:
        f = resolve_file(path, ["asdiv/ASDiv.xml", "ASDiv.xml", "dataset/ASDiv.xml"], "asdiv")
        rows = list(_xml_rows(f))
    else:
        name = spec_get(spec, "hub_name") or HUB_NAME
        hub = load_hub(name, spec_get(spec, "hub_config"), spec_get(spec, "split", "validation"), "asdiv")
        rows = []
        for i, r in enumerate(hub):
            missing = [k for k in ("body", "question", "answer") if k not in r]
            if missing:
                raise DataFormatError(f"{name} (row {i}): missing field {missing[0]!r}; fields present: {sorted(r)}")
            rows.append(
                {
                    "id": None,
                    "grade": None,
                    "Body": r["body"],
                    "Question": r["question"],
                    "Answer": r["answer"],
                    "Formula": r.get("formula"),
                    "Solution-Type": r.get("solution_type"),
                }
            )
    result = LoadResult(problems=[], source="asdiv")
    for row in rows:
        body, question = " ".join(row["Body"].split()), " ".join(row["Question"].split())
        text = f"{body} {question}".strip()
        pid = f"asdiv-{row['id']}" if row["id"] else content_id(text, prefix="asdiv-")
        value, reason = parse_answer(row["Answer"])
        meta = {
            "formula": row.get("Formula"),
            "solution_type": row.get("Solution-Type"),
            "grade": row.get("grade"),
            "raw_answer": row["Answer"],
        }
        result.add(pid, text, value, "asdiv", meta, no_value=reason or "non-numeric answer")
    return result
