"""Fewer teacher requests for the same data: screening speed and adaptive agreement sampling.

1. Near-duplicate screening (``fdd.method.verify.screen``) of N candidates against GSM8K train (the
   original file when ../shared/data exists, else the synthetic world): the prefix-filtered
   ``DedupIndex`` against the previous index (number blocks compared pairwise), same candidates,
   same decisions checked (both on the index's hashed 3-grams). Candidates are word-level edits of training questions, so many are
   near-duplicates and the blocks grow with N, as they do over a long run. Rates are candidates
   per second of this process's CPU time: screening is single-threaded, and CPU time keeps the
   figure honest on a shared machine.
2. Rationale requests per accepted item on the synthetic world (oracle teacher, error rate
   0.1 and 0.3): adaptive agreement sampling against fixed ``samples=3, min_agree=2``.

    python benchmarks/teacher_savings.py [--sizes 10000 160000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fdd.method.verify import Candidate, DedupIndex, NgramIndex, accept_by_agreement, screen  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


class BlockedDedupIndex(DedupIndex):
    """The previous index, kept as the baseline: every problem of the same number block compared."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.blocks: Dict[Tuple[str, ...], List[frozenset]] = {}

    def is_duplicate(self, text: str) -> bool:
        sh = self._shingles(text)
        for other in self.blocks.get(self._key(text), ()):
            union = len(sh | other)
            if union and len(sh & other) / union >= self.threshold:
                return True
        return False

    def add(self, text: str) -> None:
        self.blocks.setdefault(self._key(text), []).append(self._shingles(text))


def seed_questions() -> Tuple[List[str], str]:
    path = DATA / "gsm8k" / "train.jsonl"
    if path.is_file():
        return [json.loads(line)["question"] for line in path.open()], "GSM8K train"
    from fdd.sim import world as synthetic

    return [p.question for p in synthetic.generate(7000, 0, "train")], "synthetic world (no ../shared/data)"


def candidates(questions: List[str], n: int, seed: int = 0) -> List[Candidate]:
    rng = random.Random(seed)
    vocab = [w for q in questions[:500] for w in q.split()]
    out = []
    for i in range(n):
        w = rng.choice(questions).split()
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
            j = rng.randrange(len(w))
            w[j] = rng.choice(vocab) if rng.random() < 0.7 else w[j] + " " + rng.choice(vocab)
        out.append(Candidate(" ".join(w), f"p{i}", "hard-similar", "bench"))
    return out


def time_screen(index_cls, questions, cands) -> Tuple[float, List[str]]:
    index = index_cls(0.9)
    for q in questions:
        index.add(q)
    contamination = NgramIndex(questions[:1000], 13)
    t0 = time.process_time()
    kept, _rejected = screen(cands, index, contamination)
    return len(cands) / (time.process_time() - t0), [c.question for c in kept]


def agreement_rows():
    from fdd.method.agreement import collect_rationales
    from fdd.reasoning.formats import get_format
    from fdd.sandbox import Sandbox
    from fdd.sim import world as synthetic
    from fdd.sim.oracle import OracleTeacher

    ps = synthetic.generate(400, seed=1, split="train")
    cands = [Candidate(p.question, p.id, "hard-similar", p.source, dict(p.meta)) for p in ps]
    fmt, rows = get_format("pot"), []
    with Sandbox(workers=2, timeout_s=2.0, memory_mb=256) as sandbox:

        def extract(replies):
            return fmt.extract_replies(replies, sandbox)

        for error_rate in (0.1, 0.3):
            res = {}
            for adaptive in (False, True):
                teacher = OracleTeacher(SimpleNamespace(error_rate=error_rate), seed=0)
                replies, answers = collect_rationales(
                    teacher.write_rationales, [c.problem() for c in cands], 3, 2, "pot", extract, adaptive
                )
                items, _ = accept_by_agreement(cands, replies, answers, 2, 1)
                res[adaptive] = (teacher.usage.total("requests"), [(i.question, i.answer) for i in items])
            (fr, fi), (ar, ai) = res[False], res[True]
            rows.append((error_rate, fr / len(fi), ar / len(ai), len(fi), len(ai), fi == ai))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 160000])
    args = ap.parse_args()
    questions, source = seed_questions()
    print(f"Near-duplicate screening against {source} ({len(questions)} problems), threshold 0.9")
    print(f"{'candidates':>10} | {'blocked (before)':>16} | {'prefix-filtered':>15} | {'ratio':>6} | same decisions")
    for n in args.sizes:
        cands = candidates(questions, n)
        old, kept_old = time_screen(BlockedDedupIndex, questions, cands)
        new, kept_new = time_screen(DedupIndex, questions, cands)
        print(
            f"{n:>10} | {old:>12.0f} c/s | {new:>11.0f} c/s | {new / old:>5.2f}x | "
            f"{kept_old == kept_new} ({len(kept_new)} kept)"
        )
    print("\nRationale requests per accepted item, synthetic world, samples=3, min_agree=2")
    print(f"{'error rate':>10} | {'fixed':>6} | {'adaptive':>8} | {'saved':>6} | accepted fixed/adaptive | same items")
    for er, fixed, adaptive, nf, na, same in agreement_rows():
        print(
            f"{er:>10.1f} | {fixed:>6.2f} | {adaptive:>8.2f} | {1 - adaptive / fixed:>6.1%} | {nf:>11}/{na:<11} | {same}"
        )


if __name__ == "__main__":
    main()
