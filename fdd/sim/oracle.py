"""An offline teacher that *simulates* an LLM over the synthetic world (``fdd.sim.world``).

It is not a language model: it reads the structured spec that every synthetic problem carries
in ``Problem.meta["world"]`` and writes the exact rationale, a harder variation (one more step)
or a similar problem (same structure, fresh entities and numbers). With ``error_rate > 0`` it
writes a wrong rationale that often (a perturbed number), so verification has real work to do.
Problems from outside the world (e.g. GSM8K) get a failed reply, never a made-up answer.
Everything is a pure function of (seed, problem id, sample index): reruns are identical.
"""

from __future__ import annotations

import random
from typing import List, Optional, Sequence

from fdd.runtime.seeding import rng
from fdd.sim import world
from fdd.teachers.base import Reply, Teacher
from fdd.types import Problem


class OracleTeacher(Teacher):
    writes_by_rule = True  # one rendered rationale per problem (or a perturbation); problems from the world

    def __init__(self, cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__()
        self.error_rate = float(cfg.error_rate)
        self.seed = seed

    def _rng(self, *parts) -> random.Random:
        return rng(self.seed, *parts)

    @staticmethod
    def _spec(problem: Problem) -> Optional[dict]:
        spec = (problem.meta or {}).get("world")
        return spec if isinstance(spec, dict) else None

    def _rationale(self, problem: Problem, k: int, fmt: str) -> Reply:
        spec = self._spec(problem)
        if spec is None:
            return Reply(None, error="unsolvable: not a synthetic-world problem")
        _q, program, cot, _answer = world.render(spec)
        text = program if fmt == "pot" else cot
        rng = self._rng("rationale", problem.id, k)
        if rng.random() < self.error_rate:
            text = _perturb(text, rng)
        return Reply(text)

    def write_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        out = [[self._rationale(p, i, fmt) for i in range(first, first + k)] for p in problems]
        self.usage.add("rationale", requests=len(problems) * k, failed=sum(not r.ok for rs in out for r in rs))
        return out

    def _new(self, problems: Sequence[Problem], n: int, job: str, make) -> List[List[Reply]]:
        out: List[List[Reply]] = []
        for p in problems:
            spec = self._spec(p)
            replies = []
            for i in range(n):
                new = make(spec, self._rng(job, p.id, i)) if spec is not None else None
                if new is None:
                    reason = "unsolvable: not a synthetic-world problem" if spec is None else "no_variation"
                    replies.append(Reply(None, error=reason))
                else:
                    replies.append(Reply(world.render(new)[0], meta={"world": new}))
            out.append(replies)
        self.usage.add(job, requests=len(problems) * n, failed=sum(not r.ok for rs in out for r in rs))
        return out

    def write_harder(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        return self._new(problems, n, "harder", world.harder)

    def write_similar(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        return self._new(problems, n, "similar", world.similar)


def _perturb(text: str, rng: random.Random) -> str:
    """Change one number of a rationale: a plausible, wrong answer."""
    import re

    nums = list(re.finditer(r"(?<![x\w])\d+", text))
    if not nums:
        return text
    m = rng.choice(nums)
    new = str(int(m.group()) + rng.choice([-2, -1, 1, 2, 3]))
    return text[: m.start()] + new + text[m.end() :]
