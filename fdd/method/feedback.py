"""The feedback signal: which problems of the pool the student finds easy, which hard.

- ``trained`` (the paper): the student answers the problems it was just trained on. After a
  round or two it has memorised them, so "easy" drifts towards "seen".
- ``probe``: a seeded slice of the pool (``probe_fraction``) is held out of the round's
  training and only that slice is answered, so easy/hard measures generalisation. Cost: every
  round, the last included, trains on ``1 - probe_fraction`` of the set (the slice rotates
  between rounds), and only the slice can be expanded.

With ``samples > 1`` each problem gets ``samples`` sampled answers (``temperature``) and is easy
when its solve rate reaches ``easy_threshold``, instead of one greedy answer: ``samples`` times
the generation cost of the feedback stage.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence, Set, Tuple

from fdd.runtime.seeding import rng
from fdd.types import Prediction, Problem


def probe_ids(pool: Sequence[Problem], fraction: float, seed: int, round_idx: int) -> Set[str]:
    """Round ``round_idx``'s probe slice: a seeded ``fraction`` of the pool (at least one)."""
    ids = sorted({p.id for p in pool})
    if not ids:
        return set()
    k = max(1, round(fraction * len(ids)))
    return set(rng(seed, "probe", round_idx).sample(ids, min(k, len(ids))))


def split(
    problems: Sequence[Problem], preds: Sequence[Prediction], samples: int, threshold: float
) -> Tuple[List[str], List[str], Dict[str, float]]:
    """``(easy ids, hard ids, solve rate per id)`` from ``samples`` predictions per problem
    (``preds`` holds them problem by problem). One sample: solved = easy."""
    solved: Dict[str, List[bool]] = defaultdict(list)
    for p, pred in zip((p for p in problems for _ in range(samples)), preds):
        solved[p.id].append(bool(pred.correct))
    rate = {pid: sum(v) / len(v) for pid, v in solved.items()}
    cut = 1.0 if samples == 1 else threshold
    easy = [p.id for p in problems if rate[p.id] >= cut]
    hard = [p.id for p in problems if rate[p.id] < cut]
    return easy, hard, rate
