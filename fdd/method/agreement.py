"""Buying rationales for a new problem until its answer is settled (adaptive agreement sampling).

A new problem is accepted when ``min_agree`` of up to ``samples`` teacher rationales agree on
its answer (``fdd.method.verify.accept_by_agreement``). Asking for all ``samples`` up front pays for
rationales whose vote cannot change the outcome. Here each problem first gets ``min_agree``
rationales; more are asked only while no answer has ``min_agree`` votes and one still can
reach it with the samples left, and only as many as the leading answer still needs.

The decision is the one fixed sampling makes on the same samples: sample ``j`` of a problem is
the same request either way (``first=`` keeps indices), votes only grow, and a problem is
dropped only when no answer can reach ``min_agree`` within ``samples``. Where several answers
could reach ``min_agree`` (``samples >= 2 * min_agree``), the first one to get there wins.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, List, Sequence, Tuple

from fdd.method.verify import vote
from fdd.types import Problem

Extract = Callable[[List[List]], List[List]]


def collect_rationales(
    write,
    problems: Sequence[Problem],
    samples: int,
    min_agree: int,
    fmt: str,
    extract: Extract,
    adaptive: bool = True,
    distinct: bool = False,
) -> Tuple[List[List], List[List]]:
    """``(replies, answers)`` per problem, as ``write`` (a teacher's ``write_rationales`` or
    ``write_new_rationales``) and ``extract`` give them. With ``adaptive`` off every problem gets
    ``samples`` rationales in one batch. ``distinct``: votes as ``fdd.method.verify.vote`` counts them."""
    if not problems:
        return [], []
    if not adaptive or min_agree >= samples:
        replies = write(list(problems), samples, fmt)
        return replies, extract(replies)
    replies: List[List] = [[] for _ in problems]
    answers: List[List] = [[] for _ in problems]
    need: Dict[int, int] = {i: min_agree for i in range(len(problems))}
    while need:
        # One teacher batch per (samples already asked, samples to ask): few batches, full concurrency.
        waves: Dict[Tuple[int, int], List[int]] = defaultdict(list)
        for i, k in need.items():
            waves[(len(replies[i]), k)].append(i)
        for (first, k), idx in sorted(waves.items()):
            new = write([problems[i] for i in idx], k, fmt, first=first)
            for i, reps, ans in zip(idx, new, extract(new)):
                replies[i].extend(reps)
                answers[i].extend(ans)
        asked, need = need, {}
        for i in asked:
            lead = max((len(texts) for _, texts in vote(replies[i], answers[i], distinct)[0]), default=0)
            left = samples - len(replies[i])
            if lead < min_agree and lead + left >= min_agree:
                need[i] = min(min_agree - lead, left)
    return replies, answers


def collect_seed_rationales(
    write, problems: Sequence[Problem], samples: int, retries: int, fmt: str, extract: Extract
) -> Tuple[List[List], List[List]]:
    """``(replies, answers)`` per seed problem: ``samples`` rationales each, then one more at a time
    (at most ``retries``) for the problems none of whose rationales gives the gold answer yet. Sample
    ``j`` is the same request whatever the retries, so a rerun with more retries reuses the cache."""
    from fdd.reasoning.answer import answers_match

    def solved(i: int) -> bool:
        return any(res is not None and res.ok and answers_match(res.value, problems[i].answer) for res in answers[i])

    replies = write(list(problems), samples, fmt) if problems else []
    answers = extract(replies) if problems else []
    replies, answers = [list(r) for r in replies], [list(a) for a in answers]
    for _ in range(retries):
        idx = [i for i in range(len(problems)) if problems[i].answer is not None and not solved(i)]
        if not idx:
            break
        new = write([problems[i] for i in idx], 1, fmt, first=len(replies[idx[0]]))
        for i, reps, ans in zip(idx, new, extract(new)):
            replies[i].extend(reps)
            answers[i].extend(ans)
        if all(not rep.ok for reps in new for rep in reps):  # an outage, not hard problems: the stage's check says so
            break
    return replies, answers
