"""MultiArith (as published with zero_shot_cot): ``iIndex``, ``sQuestion``, ``lEquations``, ``lSolutions``.

The Hub copy (``ChilleD/MultiArith``, 420 train / 180 test) has ``question`` and ``final_ans``
instead and no equations; ids are then content hashes.
"""

from __future__ import annotations

from typing import Any

from fdd.data.base import LoadResult
from fdd.data.files import DataFormatError, load_hub, read_json, require, resolve_file, spec_get
from fdd.reasoning.answer import parse_number
from fdd.types import content_id

HUB_NAME = "ChilleD/MultiArith"


def load(spec: Any, seed: int = 0) -> LoadResult:
    path = spec_get(spec, "path")
    result = LoadResult(problems=[], source="multiarith")
    if path:
        f = resolve_file(path, ["multiarith/MultiArith.json", "MultiArith.json"], "multiarith")
        rows = read_json(f)
        if not isinstance(rows, list):
            raise DataFormatError(f"{f}: expected a JSON array of problems")
        for i, row in enumerate(rows):
            question, solutions = require(row, ("sQuestion", "lSolutions"), str(f), i)
            question = " ".join(str(question).split())
            pid = f"multiarith-{row['iIndex']}" if "iIndex" in row else content_id(question, prefix="multiarith-")
            sols = solutions if isinstance(solutions, list) else [solutions]
            if len(sols) != 1:
                result.skip("not exactly one solution", pid)
                continue
            result.add(
                pid, question, parse_number(sols[0]), "multiarith", {"equations": list(row.get("lEquations") or [])}
            )
        return result
    name = spec_get(spec, "hub_name") or HUB_NAME
    rows = load_hub(name, spec_get(spec, "hub_config"), spec_get(spec, "split", "test"), "multiarith")
    for i, row in enumerate(rows):
        question, answer = require(row, ("question", "final_ans"), name, i)
        question = " ".join(str(question).split())
        pid = content_id(question, prefix="multiarith-")
        result.add(pid, question, parse_number(answer), "multiarith", duplicate="duplicate question")
    return result
