"""GSM8K (openai/grade-school-math): ``question`` and a rationale ``answer`` ending in ``#### N``.

The Hub copy (``openai/gsm8k``, config ``main``) has the same field names as the original files.
The calculator annotations ``<<48/2=24>>`` are kept in ``meta["annotations"]`` for gold programs.
"""

from __future__ import annotations

import re
from typing import Any, List

from fdd.data.base import LoadResult
from fdd.data.files import load_hub, read_jsonl, require, resolve_file, spec_get
from fdd.reasoning.answer import parse_number
from fdd.types import content_id

HUB_NAME, HUB_CONFIG = "openai/gsm8k", "main"
_ANNOT = re.compile(r"<<(.*?)>>")


def final_answer(rationale: str) -> float | None:
    """The number after ``####`` (thousands commas removed), or None."""
    if "####" not in rationale:
        return None
    return parse_number(rationale.rsplit("####", 1)[1].strip().replace(",", ""))


def annotations(rationale: str) -> List[str]:
    """The calculator annotations of a rationale, in order (``48/2=24``)."""
    return _ANNOT.findall(rationale)


def load(spec: Any, seed: int = 0) -> LoadResult:
    split = spec_get(spec, "split", "train")
    path = spec_get(spec, "path")
    if path:
        f = resolve_file(
            path, [f"gsm8k/{split}.jsonl", f"{split}.jsonl", f"grade_school_math/data/{split}.jsonl"], "gsm8k"
        )
        rows, where = read_jsonl(f), str(f)
    else:
        name = spec_get(spec, "hub_name") or HUB_NAME
        rows, where = load_hub(name, spec_get(spec, "hub_config") or HUB_CONFIG, split, "gsm8k"), name
    source = f"gsm8k-{split}"
    result = LoadResult(problems=[], source=source)
    for i, row in enumerate(rows):
        question, rationale = require(row, ("question", "answer"), where, i)
        pid = content_id(question, prefix=f"{source}-")
        # ids hash the question, so the same question twice counts as a duplicate
        result.add(
            pid,
            question.strip(),
            final_answer(str(rationale)),
            source,
            {"rationale": rationale, "annotations": annotations(rationale)},
            no_value="no numeric answer after ####",
            duplicate="duplicate question",
        )
    return result
