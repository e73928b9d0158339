"""What every loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from fdd.types import Problem


@dataclass
class LoadResult:
    """Problems in the common schema, plus the rows skipped and why (reason -> count)."""

    problems: List[Problem]
    source: str
    skipped: Dict[str, int] = field(default_factory=dict)
    examples: Dict[str, List[str]] = field(default_factory=dict)  # reason -> a few offending row ids

    def skip(self, reason: str, row_id: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(str(row_id))
