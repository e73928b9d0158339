"""SVAMP (arkilpatel/SVAMP): ``ID``, ``Body``, ``Question``, ``Equation``, ``Answer``, ``Type``.

The question the student sees is ``Body + " " + Question``. The Hub copy (``ChilleD/SVAMP``) has
the same fields (plus ``question_concat``) split 700 train / 300 test; the original file is one
set of 1000, which is what the literature evaluates on (``split`` is ignored for the file;
``split=all`` gives the 1000 from the Hub).
"""

from __future__ import annotations

from typing import Any

from fdd.data.base import LoadResult
from fdd.data.files import DataFormatError, load_hub, read_json, require, resolve_file, spec_get
from fdd.reasoning.answer import parse_number
from fdd.types import content_id

HUB_NAME = "ChilleD/SVAMP"


def join_question(body: str, question: str) -> str:
    body, question = body.strip(), question.strip()
    return f"{body} {question}" if body else question


def load(spec: Any, seed: int = 0) -> LoadResult:
    path = spec_get(spec, "path")
    if path:
        f = resolve_file(path, ["svamp/SVAMP.json", "SVAMP.json"], "svamp")
        rows, where = read_json(f), str(f)
        if not isinstance(rows, list):
            raise DataFormatError(f"{f}: expected a JSON array of problems")
    else:
        name = spec_get(spec, "hub_name") or HUB_NAME
        rows = load_hub(name, spec_get(spec, "hub_config"), spec_get(spec, "split", "test"), "svamp")
        where = name
    result = LoadResult(problems=[], source="svamp")
    for i, row in enumerate(rows):
        body, question, answer = require(row, ("Body", "Question", "Answer"), where, i)
        text = join_question(str(body), str(question))
        pid = f"svamp-{row['ID']}" if row.get("ID") else content_id(text, prefix="svamp-")
        meta = {"equation": row.get("Equation"), "type": row.get("Type")}
        result.add(pid, text, parse_number(answer), "svamp", meta)
    return result
