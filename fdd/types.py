"""The records that flow through an FDD run: problems, distillation items, predictions.

Every record is a plain dataclass that round-trips through JSON lines (``to_dict`` /
``from_dict``), so each stage's output under the run directory is readable by people and tools.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

BRANCH_SEED = "seed"
BRANCH_HARDER = "easy-harder"
BRANCH_SIMILAR = "hard-similar"
BRANCHES = (BRANCH_SEED, BRANCH_HARDER, BRANCH_SIMILAR)


def content_id(*parts: Any, prefix: str = "") -> str:
    """A stable id derived from content, never from list positions."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:16]
    return f"{prefix}{h}"


class _Record:
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Problem(_Record):
    """A math word problem with a numeric gold answer.

    ``meta`` carries source-specific extras (e.g. the synthetic world's structured spec,
    or a gold equation) that loaders want to keep; it is never shown to the student.
    """

    id: str
    question: str
    answer: Optional[float]
    source: str
    meta: dict = field(default_factory=dict)


@dataclass
class Item(_Record):
    """One example of the distillation set: a problem plus a verified teacher rationale."""

    id: str
    question: str
    answer: float
    source: str
    rationale: str
    parent_id: Optional[str] = None
    round: int = 0
    branch: str = BRANCH_SEED
    meta: dict = field(default_factory=dict)

    @property
    def problem_id(self) -> str:
        """The problem's id: items holding several rationales of one problem are ``<id>#<j>``."""
        return self.id.split("#", 1)[0]

    def problem(self) -> Problem:
        return Problem(self.problem_id, self.question, self.answer, self.source, dict(self.meta))


@dataclass
class Prediction(_Record):
    """What the student wrote for a problem, and whether its answer was right."""

    id: str
    output: str
    predicted: Optional[float]
    gold: Optional[float]
    correct: bool
    error: Optional[str] = None  # why no answer could be extracted (parse error, timeout, ...)


@dataclass
class Rejection(_Record):
    """A candidate that did not enter the distillation set, and why."""

    id: str
    reason: str
    parent_id: Optional[str] = None
    branch: Optional[str] = None
    question: Optional[str] = None
    detail: Optional[str] = None
