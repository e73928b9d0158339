"""The records that flow through an FDD run: problems, distillation items, predictions.

Every record is a plain dataclass that round-trips through JSON lines (``to_dict`` /
``from_dict``), so each stage's output under the run directory is readable by people and tools.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Dict, Optional, Tuple

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


# RoundMetrics' field types: None when the round did not measure the number.
Count = Optional[int]
Number = Optional[float]
Counts = Optional[Dict[str, int]]  # per reason, kind or branch


@dataclass
class RoundMetrics:
    """One round's numbers: the contract between the loop (which writes them to metrics.jsonl)
    and everything that reads them (tracker, plots, report, model card).

    Round 0 has the seed numbers (and ``accuracy`` when the base student was evaluated); a
    trained round has the train/evaluate/feedback numbers, and the augment numbers when it
    augmented. A field left ``None`` is not in the row. Keys a backend adds that are not fields
    here travel in ``extra`` and come back as top-level keys of the row.
    """

    round: int
    accuracy: Optional[Dict[str, float]] = None  # held-out set -> share of problems solved
    # round 0: the seed set
    seed_problems: Count = None
    seed_rejected: Count = None
    teacher_roles: Optional[Dict[str, Any]] = None  # which backend did each teacher job
    # train
    trained_on: Count = None
    train_loss: Number = None
    train_seconds: Number = None
    train_steps: Count = None
    train_examples: Count = None
    # what the student's tokenizer and length limits did to the set it trained on
    unrepresentable: Count = None
    unrepresentable_by_reason: Counts = None
    lossy_prompts: Count = None
    overlong: Count = None
    overlong_by_kind: Counts = None
    overlong_dropped: Count = None
    token_lengths: Optional[Dict[str, Any]] = None
    # feedback: the student on its training problems
    easy: Count = None
    hard: Count = None
    easy_ratio: Number = None
    hard_ratio: Number = None
    # augment
    asked_harder: Count = None
    asked_similar: Count = None
    generated: Count = None
    accepted: Count = None
    rejected: Count = None
    rejected_by_reason: Counts = None
    accepted_by_branch: Counts = None
    rationale_requests_per_accepted: Number = None
    # how the teacher's usable rationales stated their answers (solution, answer, print,
    # module_return for programs; answer_is, boxed, last_number for text): round 0 at init
    answer_conventions: Counts = None
    # the distillation set after the round, and what the teacher was asked for it
    distill_size: Count = None
    teacher: Optional[Dict[str, Dict[str, Any]]] = None  # job -> usage counters (requests, cached, ...)
    failed_requests: Count = None
    extra: Dict[str, Any] = field(default_factory=dict)

    # The one place a metric key is renamed: field name -> key in metrics.jsonl (and wandb).
    ROW_KEYS: ClassVar[Dict[str, str]] = {}
    # Keys older metrics.jsonl files used for a field (still read).
    OLD_KEYS: ClassVar[Dict[str, Tuple[str, ...]]] = {}

    @classmethod
    def row_key(cls, name: str) -> str:
        return cls.ROW_KEYS.get(name, name)

    def to_row(self) -> Dict[str, Any]:
        """The flat row of metrics.jsonl: every field that is set, then ``extra``."""
        row = {self.row_key(f.name): getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**{k: v for k, v in row.items() if v is not None}, **self.extra}

    @classmethod
    def from_row(cls, row: Dict[str, Any]) -> RoundMetrics:
        """Read a row of metrics.jsonl (today's or an older one); unknown keys go to ``extra``."""
        if "round" not in row and cls.row_key("round") not in row:
            raise ValueError(f"a metrics row without a round: {sorted(row)}")
        names = [f.name for f in fields(cls) if f.name != "extra"]
        taken, values = set(), {}
        for name in names:
            for key in (cls.row_key(name), name, *cls.OLD_KEYS.get(name, ())):
                if key in row:
                    values[name] = row[key]
                    break
            taken.update((cls.row_key(name), name, *cls.OLD_KEYS.get(name, ())))
        return cls(**values, extra={k: v for k, v in row.items() if k not in taken})

    # ------------------------------------------------------------------ derived numbers
    def mean_accuracy(self) -> Optional[float]:
        """Mean held-out accuracy over the sets, None without any."""
        acc = self.accuracy or {}
        return sum(acc.values()) / len(acc) if acc else None

    def teacher_requests(self) -> int:
        """Teacher requests of the round, over all jobs."""
        return sum(int(u.get("requests", 0)) for u in (self.teacher or {}).values())

    def requests_per_accepted(self) -> Optional[float]:
        """All teacher requests of the round per accepted new problem (None when none was accepted)."""
        return self.teacher_requests() / self.accepted if self.accepted else None
