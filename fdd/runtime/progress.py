"""One progress line per finished stage, with an estimate of the time left.

The estimate is plain arithmetic over the run's own record: each stage still to run is expected to
take as long as the same stage took last (in this process, or as its DONE marker records when a
resumed run skips it). Training grows with the distillation set, so the estimate is a floor more
than a forecast; a stage never timed yet is named rather than guessed."""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple


def duration(seconds: float) -> str:
    """``42 s``, ``3m05s``, ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class StagePlan:
    """The stages a run will go through, in order, and what the finished ones took."""

    def __init__(self, stages: Sequence[Tuple[int, str]], clock=time.monotonic) -> None:
        self.stages: List[Tuple[int, str]] = list(stages)
        self.last: Dict[str, float] = {}  # stage name -> seconds it took last
        self.finished: set = set()
        self.clock = clock
        self.t0 = clock()
        self.rounds = max((r for r, _ in self.stages), default=0)

    def record(self, r: int, stage: str, seconds: Optional[float]) -> None:
        """A stage is finished (run now or read back from its marker)."""
        self.finished.add((r, stage))
        if seconds is not None:
            self.last[stage] = float(seconds)

    def left(self) -> Tuple[float, List[str]]:
        """Seconds the remaining stages are expected to take, and the stages with no timing yet."""
        todo = [(r, s) for r, s in self.stages if (r, s) not in self.finished]
        unknown = sorted({s for _, s in todo if s not in self.last})
        return sum(self.last.get(s, 0.0) for _, s in todo), unknown

    def line(self, r: int, stage: str, seconds: float) -> str:
        """``round 2/3 train: 86 s | 7/16 stages, 3m12s elapsed | about 2m10s left``."""
        done = sum(1 for x in self.stages if x in self.finished)
        eta, unknown = self.left()
        if done == len(self.stages):
            tail = "all stages done"
        else:
            tail = f"about {duration(eta)} left" + (f" (+ {', '.join(unknown)}: not timed yet)" if unknown else "")
        return (
            f"round {r}/{self.rounds} {stage}: {duration(seconds)} | {done}/{len(self.stages)} stages, "
            f"{duration(self.clock() - self.t0)} elapsed | {tail}"
        )
