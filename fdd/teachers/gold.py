"""The dataset's own solutions as the teacher (``teacher=gold``): the "fine-tune on human
rationales" baseline, offline.

* CoT: GSM8K's worked solution, calculator marks ``<<48/2=24>>`` removed and ``#### N`` written
  as the closing "The answer is N." the CoT format reads.
* PoT: the gold program built from the problem's annotations (``fdd.reasoning.gold_programs``).

A problem without usable gold (no worked solution, an annotation that is not arithmetic, a
generated problem) gets a failed reply whose error names why, so it is a counted rejection. It
cannot write problems: pair it with an LLM for the ``problems`` (and ``new_rationale``) roles.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

from fdd.reasoning.gold_programs import gold_program
from fdd.teachers.base import Reply, Teacher
from fdd.types import Problem

_CALC = re.compile(r"<<.*?>>")


def gold_cot(problem: Problem) -> tuple:
    """(chain-of-thought text, None) from a worked solution, or (None, reason)."""
    rationale = (problem.meta or {}).get("rationale")
    if not rationale or not str(rationale).strip():
        return None, f"no worked solution for source {problem.source!r}"
    body, sep, final = str(rationale).rpartition("####")
    if not sep or not final.strip():
        return None, "worked solution has no '#### N' final answer"
    steps = [line.strip() for line in _CALC.sub("", body).splitlines() if line.strip()]
    return "\n".join(steps + [f"The answer is {final.strip()}."]), None


class GoldTeacher(Teacher):
    """Rationales from the dataset's gold; every sample of a problem is the same text (the seed
    verifier keeps distinct texts only, so k samples still give one item)."""

    writes_problems = False
    writes_new_rationales = False  # generated problems carry no gold

    def __init__(self, cfg=None, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__()

    def write_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        make = gold_program if fmt == "pot" else gold_cot
        out = []
        for p in problems:
            text, why = make(p)
            out.append([Reply(text) if text else Reply(None, error=f"no_gold: {why}")] * k)
        failed = sum(not reps[0].ok for reps in out)
        self.usage.add("rationale", requests=len(problems) * k, failed=failed * k)
        return out

    def _cannot(self, job: str):
        raise NotImplementedError(
            f"the gold teacher cannot write problems ({job}); assign the problems role "
            f"to an LLM teacher, e.g. teacher.roles.problems=openai"
        )

    def write_harder(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        self._cannot("harder")

    def write_similar(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        self._cannot("similar")
