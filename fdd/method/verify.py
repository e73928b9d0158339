"""What may enter the distillation set, and why the rest may not.

Seed problems keep the teacher rationales whose executed/parsed answer matches the gold answer.
New problems are screened before any rationale is bought (teacher failure, duplicate of a
known problem, overlap with a held-out test set) and then accepted only when at least
``min_agree`` of ``k`` independent teacher rationales agree on an answer. Every refusal is a
``Rejection`` with a reason, so nothing leaves silently.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from fdd.types import Item, Problem, Rejection

_WORD = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_NUM = re.compile(r"\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=64)
def words(text: str) -> Tuple[str, ...]:
    """Lower-case words and numbers. Memoized: screening reads each candidate's words twice
    (the contamination check, then the duplicate check)."""
    return tuple(_WORD.findall(text.lower()))


def ngrams(tokens: Sequence[str], n: int) -> Iterable[Tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)))


class NgramIndex:
    """Word n-grams of the held-out sets: a new problem sharing one of them is contaminated."""

    def __init__(self, texts: Iterable[str], n: int) -> None:
        self.n = n
        self.grams = {g for t in texts for g in ngrams(words(t), n)}

    def overlaps(self, text: str) -> bool:
        return not self.grams.isdisjoint(ngrams(words(text), self.n))  # the scan stays in C


class DedupIndex:
    """Near-duplicate detection: a problem is a near-duplicate of a known one when both hold the
    same multiset of numbers (near-duplicate math problems share their numbers) and their word
    3-gram sets have Jaccard similarity >= ``threshold``.

    Exact and near-linear in the number of problems: each 3-gram set is indexed by its *prefix*
    in one global order (the prefix filter of Bayardo et al., "Scaling up all pairs similarity
    search", 2007): two sets with Jaccard >= t always share a 3-gram among their first
    ``n - ceil(t * n) + 1``, so only problems sharing a prefix 3-gram within the same number
    block are compared. MinHash LSH (e.g. datasketch) would be approximate: it can miss a pair
    above the threshold, which would change decisions. The 3-grams are kept as their 64-bit
    hashes (exact but for a hash collision inside a compared pair)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.sets: List[frozenset] = []
        # number block -> prefix 3-gram -> problems (two levels: the block's key is hashed once
        # per lookup, not once per prefix 3-gram)
        self.postings: Dict[Tuple[str, ...], Dict[int, List[int]]] = defaultdict(lambda: defaultdict(list))
        self._last: Optional[Tuple[str, Tuple[str, ...], frozenset, List[int]]] = None

    @staticmethod
    def _key(text: str) -> Tuple[str, ...]:
        return tuple(sorted(_NUM.findall(text)))

    @staticmethod
    def _shingles(text: str) -> frozenset:
        w = words(text)
        # 64-bit hashes of the 3-grams, not the tuples: set intersections of ints skip rehashing
        # every tuple at every comparison (a collision between two of a pair's 3-grams, at odds
        # near 1e-16 a comparison, is the only way a decision could differ)
        return frozenset(map(hash, ngrams(w, 3))) if len(w) >= 3 else frozenset([hash(tuple(w))])

    def _prefix(self, sh: frozenset) -> List[int]:
        # Any fixed order is exact; the order of the hashes spreads prefixes over many postings.
        n = len(sh) - math.ceil(self.threshold * len(sh) - 1e-9) + 1
        return sorted(sh)[:n]

    def _features(self, text: str) -> Tuple[Tuple[str, ...], frozenset, List[int]]:
        # screen() asks is_duplicate, then add, for the same text: compute its features once.
        if self._last is None or self._last[0] != text:
            sh = self._shingles(text)
            self._last = (text, self._key(text), sh, self._prefix(sh))
        return self._last[1:]

    def is_duplicate(self, text: str) -> bool:
        key, sh, prefix = self._features(text)
        block = self.postings.get(key)
        if not block:
            return False
        seen = set()
        for g in prefix:
            for j in block.get(g, ()):
                if j in seen:
                    continue
                seen.add(j)
                other = self.sets[j]
                inter = len(sh & other)
                if inter / (len(sh) + len(other) - inter) >= self.threshold:
                    return True
        return False

    def add(self, text: str) -> None:
        key, sh, prefix = self._features(text)
        self.sets.append(sh)
        block = self.postings[key]
        for g in prefix:
            block[g].append(len(self.sets) - 1)


@dataclass
class Candidate:
    """A new problem written by the teacher, before verification."""

    question: str
    parent_id: str
    branch: str
    source: str
    meta: dict = field(default_factory=dict)
    parent_question: Optional[str] = None  # what the teacher was asked to vary (for the copy check)

    @property
    def id(self) -> str:
        from fdd.types import content_id

        return content_id(self.question, prefix="gen-")

    def problem(self) -> Problem:
        return Problem(self.id, self.question, None, self.source, dict(self.meta))


def _target(rep, res) -> str:
    """The rationale the student learns: the reply as its format read it (a normalized program)."""
    return res.text if res.text is not None else rep.text


def verify_seed(problems: Sequence[Problem], replies, answers, max_keep: int = 1) -> Tuple[List[Item], List[Rejection]]:
    """Keep up to ``max_keep`` distinct teacher rationales per seed problem whose answer equals gold.

    ``replies[i][j]`` is the j-th teacher reply for problem i; ``answers[i][j]`` its extracted
    ``ExecResult`` (or None where the reply failed). A kept item's ``meta["answer_convention"]``
    says how its answer was read."""
    from fdd.reasoning.answer import answers_match

    items, rejected = [], []
    for p, reps, ans in zip(problems, replies, answers):
        kept: Dict[str, Optional[str]] = {}  # target -> convention, in order
        reasons = Counter()
        for rep, res in zip(reps, ans):
            if not rep.ok:
                reasons[rep.error or "empty_reply"] += 1
            elif res.error is not None:
                reasons[f"rationale_{res.error}"] += 1
            elif p.answer is None or not answers_match(res.value, p.answer):
                reasons["wrong_answer"] += 1
            elif _target(rep, res) not in kept and len(kept) < max_keep:
                kept[_target(rep, res)] = res.convention
        for j, (text, convention) in enumerate(kept.items()):
            items.append(
                Item(
                    id=p.id if len(kept) == 1 else f"{p.id}#{j}",
                    question=p.question,
                    answer=float(p.answer),
                    source=p.source,
                    rationale=text,
                    parent_id=None,
                    round=0,
                    branch="seed",
                    meta={**p.meta, **({"answer_convention": convention} if convention else {})},
                )
            )
        if not kept:
            reason = reasons.most_common(1)[0][0] if reasons else "no_rationale"
            rejected.append(
                Rejection(
                    id=p.id,
                    reason=reason,
                    question=p.question,
                    branch="seed",
                    detail=", ".join(f"{k}={v}" for k, v in sorted(reasons.items())),
                )
            )
    return items, rejected


def conventions(answers) -> Dict[str, int]:
    """How many usable answers each convention read (``answers[i][j]``: ExecResult or None)."""
    return dict(Counter(res.convention for ans in answers for res in ans if res is not None and res.ok))


# Words a problem's overlap with its parent ignores: they say nothing about the scenario.
_STOP = frozenset(
    "a an and are as at be by did do does each for from had has have he her his how if in is it its many "
    "much of on or she so than that the their them then there they this to was were what will with".split()
)
_QUESTION = re.compile(r"\?|\b(?:how\s+(?:many|much|long|far|old|fast)|what|find|calculate|compute|determine)\b", re.I)


def _content_words(text: str) -> set:
    return {w for w in _WORD.findall(text.lower()) if w.isalpha() and w not in _STOP and len(w) > 1}


def parent_overlap(question: str, parent: str) -> float:
    """Jaccard similarity of the two problems' content words (0: nothing shared, 1: same words)."""
    a, b = _content_words(question), _content_words(parent)
    return len(a & b) / len(a | b) if a | b else 1.0


def problem_defect(c: Candidate, max_parent_overlap: Optional[float] = 0.5) -> Optional[Tuple[str, str]]:
    """``(reason, detail)`` when a new problem is not worth a rationale, else None.

    * ``ill_posed``: no number in it, no question in it, or under eight words: nothing to solve.
    * ``reworded_copy``: the teacher restated its parent instead of writing a new problem. A
      similar problem that keeps all of its parent's numbers, or keeps half of them with content-word
      overlap >= ``max_parent_overlap``; a harder one with no number of its own and either exactly
      the parent's numbers or that overlap.
      (Measured on Qwen2.5-Coder-1.5B, issue 22: restatements had overlap 0.45-0.88 and the
      parent's numbers; the simulator's similar problems share wording but never numbers.)"""
    q = c.question
    nums = _NUM.findall(q)
    if not nums:
        return "ill_posed", "no number in the problem"
    if not _QUESTION.search(q):
        return "ill_posed", "no question in the problem"
    if len(words(q)) < 8:
        return "ill_posed", f"only {len(words(q))} words"
    if not c.parent_question or max_parent_overlap is None:
        return None
    parent_nums = Counter(_NUM.findall(c.parent_question))
    own = Counter(nums)
    shared = sum((own & parent_nums).values()) / len(nums)
    overlap = parent_overlap(q, c.parent_question)
    detail = f"overlap {overlap:.2f}, {shared:.0%} of its numbers from the parent"
    if c.branch == "hard-similar":
        if own == parent_nums or (shared >= 0.5 and overlap >= max_parent_overlap):
            return "reworded_copy", detail
    elif shared == 1.0 and (own == parent_nums or overlap >= max_parent_overlap):
        return "reworded_copy", detail
    return None


def screen(
    candidates: Sequence[Candidate],
    dedup: DedupIndex,
    contamination: Optional[NgramIndex],
    max_parent_overlap: Optional[float] = None,
    check_problems: bool = False,
) -> Tuple[List[Candidate], List[Rejection]]:
    """Drop test-set overlaps, duplicates and (``check_problems``) defective problems
    (:func:`problem_defect`) before any rationale is bought. Survivors are added to ``dedup`` so
    two candidates of one round cannot duplicate each other."""
    kept, rejected = [], []
    for c in candidates:
        reason, detail = None, None
        if contamination is not None and contamination.overlaps(c.question):
            reason = "contaminated"
        elif dedup.is_duplicate(c.question):
            reason = "duplicate"
        elif check_problems:
            reason, detail = problem_defect(c, max_parent_overlap) or (None, None)
        if reason:
            rejected.append(
                Rejection(
                    id=c.id, reason=reason, parent_id=c.parent_id, branch=c.branch, question=c.question, detail=detail
                )
            )
        else:
            dedup.add(c.question)
            kept.append(c)
    return kept, rejected


def vote(replies, answers, distinct: bool = False) -> Tuple[List[Tuple[float, List[str]]], Counter]:
    """Group usable rationales by answer: ``([(answer, [texts in order]), ...], failure counts)``.

    With ``distinct`` a rationale that is the same program (or text) as one already in its group
    (``fdd.reasoning.programs.program_fingerprint``: names, comments and layout aside) adds no
    vote: two copies of one wrong program must not outvote the truth. Each copy is counted in
    the failures as ``duplicate_vote``."""
    from fdd.reasoning.answer import answers_match
    from fdd.reasoning.programs import program_fingerprint

    groups: List[Tuple[float, List[str]]] = []
    seen: List[set] = []
    failures = Counter()
    for rep, res in zip(replies, answers):
        if not rep.ok:
            failures[rep.error or "empty_reply"] += 1
            continue
        if res.error is not None:
            failures[f"rationale_{res.error}"] += 1
            continue
        text = _target(rep, res)
        key = program_fingerprint(text) if distinct else None  # parsing costs: only when it counts
        for (value, texts), prints in zip(groups, seen):
            if answers_match(res.value, value):
                if key is not None and key in prints:
                    failures["duplicate_vote"] += 1
                else:
                    texts.append(text)
                    prints.add(key)
                break
        else:
            groups.append((res.value, [text]))
            seen.append({key})
    return groups, failures


def accept_by_agreement(
    candidates: Sequence[Candidate], replies, answers, min_agree: int, round_idx: int, distinct: bool = False
) -> Tuple[List[Item], List[Rejection]]:
    """A candidate is accepted when >= ``min_agree`` of its rationales agree on one answer (with
    ``distinct``: distinct rationales, see :func:`vote`); its answer is that value and its rationale
    the first agreeing one."""
    items, rejected = [], []
    for c, reps, ans in zip(candidates, replies, answers):
        groups, failures = vote(reps, ans, distinct)
        best = max(groups, key=lambda g: len(g[1]), default=None)
        if best is not None and len(best[1]) >= min_agree:
            convention = next(
                (
                    res.convention
                    for rep, res in zip(reps, ans)
                    if rep.ok and res.ok and _target(rep, res) == best[1][0]
                ),
                None,
            )
            items.append(
                Item(
                    id=c.id,
                    question=c.question,
                    answer=float(best[0]),
                    source=c.source,
                    rationale=best[1][0],
                    parent_id=c.parent_id,
                    round=round_idx,
                    branch=c.branch,
                    meta={**c.meta, **({"answer_convention": convention} if convention else {})},
                )
            )
        else:
            if best is None:
                reason = failures.most_common(1)[0][0] if failures else "no_rationale"
            else:
                reason = "no_agreement"
            detail = ", ".join(
                [f"{k}={v}" for k, v in sorted(failures.items())] + [f"votes={[len(t) for _, t in groups]}"]
            )
            rejected.append(
                Rejection(
                    id=c.id, reason=reason, parent_id=c.parent_id, branch=c.branch, question=c.question, detail=detail
                )
            )
    return items, rejected
