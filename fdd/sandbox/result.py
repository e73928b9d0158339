"""What running one program gave: :class:`ExecResult`, and the reasons a run can fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["ExecResult", "ERRORS", "INFRA_ERRORS", "result_from_report"]

ERRORS = ("timeout", "cpu_limit", "forbidden", "memory", "error", "no_answer", "non_numeric", "output_limit", "crashed")
# Reasons that, when every program of a batch shares one and a trivial program fails too, mean the
# sandbox (not the programs) is broken.
INFRA_ERRORS = frozenset({"crashed", "timeout", "cpu_limit", "memory"})


@dataclass
class ExecResult:
    """Outcome of one program: a finite float answer, or an error from :data:`ERRORS`."""

    value: Optional[float]
    error: Optional[str]
    detail: Optional[str] = None
    # How the answer was read (fdd.reasoning.programs.CONVENTIONS for programs; cot_answer's for text)
    convention: Optional[str] = None
    # The rationale as the student should learn it, where reading it changed it (a normalized program)
    text: Optional[str] = None
    # The answer as the program gave it where that was text (a string, or what it printed): the
    # sandbox reads no number out of text (error "non_numeric"); a caller's convention may
    # (fdd.reasoning.programs.read_result)
    answer_text: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.value is not None


def result_from_report(kind: str, payload: Any, convention: Optional[str] = None) -> ExecResult:
    """The result of one program from a worker's ``(kind, payload, convention)`` report: ``kind``
    is ``number`` (payload a finite float), ``text`` (payload a string) or one of :data:`ERRORS`
    (payload the detail)."""
    if kind == "number":
        return ExecResult(float(payload), None, convention=convention)
    if kind == "text":
        text = str(payload)
        return ExecResult(None, "non_numeric", f"string {text[:80]!r}", convention, answer_text=text)
    if kind not in ERRORS:
        return ExecResult(None, "error", f"{kind}: {payload}")
    return ExecResult(None, kind, None if payload is None else str(payload)[:300])
