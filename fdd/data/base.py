"""What every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from fdd.types import Problem


@dataclass
class LoadResult:
    """Problems in the common schema, plus the rows skipped and why (reason -> count)."""

    problems: List[Problem]
    source: str
    skipped: Dict[str, int] = field(default_factory=dict)
    examples: Dict[str, List[str]] = field(default_factory=dict)  # reason -> a few offending row ids
    _ids: Set[str] = field(default_factory=set, repr=False)

    def add(
        self,
        pid: str,
        question: str,
        value: Optional[float],
        source: str,
        meta: Optional[dict] = None,
        no_value: str = "non-numeric answer",
        duplicate: str = "duplicate id",
    ) -> None:
        """Append a problem, or count why not: no numeric answer, or an id seen before."""
        if value is None:
            self.skip(no_value, pid)
        elif pid in self._ids:
            self.skip(duplicate, pid)
        else:
            self._ids.add(pid)
            clean = {k: v for k, v in (meta or {}).items() if v is not None}
            self.problems.append(Problem(pid, question, value, source, clean))

    def skip(self, reason: str, row_id: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(str(row_id))
