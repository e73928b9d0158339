"""The teacher's three jobs in FDD, independent of any backend.

1. ``write_rationales``: k independent rationales (PoT program or CoT text) per problem.
2. ``write_harder``: a more complex variation of each (easy) problem.
3. ``write_similar``: a new problem of similar complexity to each (hard) problem.

Replies are raw text plus a reason when a call failed; parsing answers out of rationales and
deciding what to accept belongs to ``fdd.method.verify``, so every backend is judged the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from fdd.types import Problem

JOBS = ("rationale", "harder", "similar")


@dataclass
class Reply:
    """One teacher output: ``text`` or, when the call failed, ``error`` (a short reason)."""

    text: Optional[str]
    error: Optional[str] = None
    meta: dict = field(default_factory=dict)  # facts about the problem, e.g. the simulator's structured spec
    call: dict = field(default_factory=dict)  # facts about the request: sample_index, cached, raw reply

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text and self.text.strip())


FAILURE_KINDS = (
    "empty",
    "http_429",
    "http_5xx",
    "http_4xx",
    "timeout",
    "connection",
    "malformed",
    "cancelled",
    "cache_miss",
    "other",
)


def failure_kind(reason: Optional[str]) -> str:
    """The kind of a failed request, from its reason (``request_failed: HTTP 503``, ``cache_miss``,
    ...): one of :data:`FAILURE_KINDS`, so usage can count failures by kind for every backend."""
    r = (reason or "").lower()
    if r.startswith("request_failed:"):
        r = r[len("request_failed:") :].strip()
    if r == "cache_miss":
        return "cache_miss"
    if r.startswith("empty"):
        return "empty"
    if r.startswith("http "):
        code = r[5:8]
        if code == "429":
            return "http_429"
        return "http_5xx" if code.startswith("5") else "http_4xx"
    for kind in ("timeout", "connection", "malformed", "cancelled"):
        if r.startswith(kind):
            return kind
    return "other"


@dataclass
class Usage:
    """Teacher accounting per job: requests sent, cache hits, tokens, failures.

    ``failed`` counts requests that ended without a reply, ``failed_<kind>`` the same by
    :func:`failure_kind`; ``retries`` counts attempts that failed and were tried again, and
    ``retried_<kind>`` the same by kind (so an empty 200 reply shows up even when a retry fixed it).
    """

    counts: Dict[str, Dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def add(self, job: str, **kw: int) -> None:
        for k, v in kw.items():
            self.counts[job][k] += int(v)

    def snapshot(self) -> Dict[str, Dict[str, int]]:
        return {j: dict(c) for j, c in self.counts.items()}

    def reset(self) -> None:
        self.counts.clear()

    def total(self, key: str) -> int:
        return sum(c.get(key, 0) for c in self.counts.values())

    def add_failure(self, job: str, reason: str) -> None:
        """One request that ended failed, counted in total and by kind."""
        self.add(job, failed=1, **{f"failed_{failure_kind(reason)}": 1})

    def add_retries(self, job: str, kinds: Dict[str, int]) -> None:
        """Failed attempts that were retried, by kind."""
        if kinds:
            self.add(job, retries=sum(kinds.values()), **{f"retried_{k}": n for k, n in kinds.items()})


class Teacher(ABC):
    """What the FDD loop needs from a teacher. Backends are chosen by config (Hydra ``_target_``)."""

    writes_problems = True  # can do write_harder / write_similar (the gold teacher cannot)
    writes_new_rationales = True  # can write rationales for generated problems (which have no gold)
    # A teacher that writes by rule (the simulator): its k samples of a rationale are one text by
    # design (votes cannot be required to differ) and its problems are well-formed by construction
    # (nothing to screen). LLM teachers write free text: both checks apply (fdd/method/loop.py).
    writes_by_rule = False

    def by_rule(self, role: str) -> bool:
        """Whether the backend doing ``role`` (rationale, new_rationale, harder, similar) writes by rule."""
        return self.writes_by_rule

    def __init__(self) -> None:
        self.usage = Usage()

    @abstractmethod
    def write_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        """``k`` independent rationales in format ``fmt`` (``pot``/``cot``) for each problem: samples
        ``first .. first+k-1``, so asking for more samples later never repeats an earlier one."""

    @abstractmethod
    def write_harder(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        """``n`` more complex variations of each problem (reply text = the new question)."""

    @abstractmethod
    def write_similar(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        """``n`` new problems of similar complexity to each problem (reply text = the new question)."""

    def write_new_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        """Rationales for problems the teacher generated (no gold); the same job as
        ``write_rationales`` unless the jobs are split over backends (``RoleTeacher``)."""
        return self.write_rationales(problems, k, fmt, first=first)

    def close(self) -> None:
        """Release servers, engines, pools."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
