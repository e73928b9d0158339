"""Throughput of the Sandbox vs. one fresh ``python -c`` process per program.

Runs the same ~300 programs (gold SVAMP programs when ../shared/data exists, synthetic
arithmetic programs otherwise) through (a) the sandbox as the PoT format runs them
(``fdd.reasoning.programs.run_programs``: ``Sandbox.run_many`` with the PoT answer reader) and (b) one
``subprocess.run([sys.executable, "-c", code])`` per program, with the same parallelism, and
prints programs/s for each and the ratio.

    python benchmarks/sandbox_throughput.py [--n 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fdd.reasoning.answer import answers_match, parse_number  # noqa: E402
from fdd.reasoning.programs import run_programs  # noqa: E402
from fdd.sandbox import Sandbox, SandboxLimits  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def programs(n: int):
    """(code, expected answer) pairs."""
    if (DATA / "svamp").is_dir():
        from fdd.config import SourceConfig
        from fdd.data import load_source
        from fdd.reasoning.gold_programs import gold_program

        probs = load_source(SourceConfig(loader="svamp", path=str(DATA))).problems
        out = [(gold_program(p)[0], p.answer) for p in probs]
        return [(c, a) for c, a in out if c][:n], "gold SVAMP programs"
    rng = random.Random(0)
    out = []
    for _ in range(n):
        a, b, c = rng.randint(1, 99), rng.randint(1, 99), rng.randint(1, 9)
        out.append((f"def solution():\n    total = {a} + {b}\n    return total * {c}\n", (a + b) * c))
    return out, "synthetic programs"


def run_subprocess(code: str, timeout: float = 10.0):
    # The same convention as the sandbox: solution() if defined, else the variable answer.
    wrapped = code + "\nprint(solution() if 'solution' in globals() else answer)\n"
    try:
        out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return parse_number(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    progs, kind = programs(args.n)
    codes = [c for c, _ in progs]

    with Sandbox(SandboxLimits(workers=args.workers)) as sb:
        run_programs(sb, codes[: args.workers * 2])  # start the workers: steady-state throughput is what we report
        t0 = time.perf_counter()
        sres = run_programs(sb, codes)
        t_sb = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as ex:
        pres = list(ex.map(run_subprocess, codes))
    t_sp = time.perf_counter() - t0

    ok_sb = sum(answers_match(r.value, a) for r, (_, a) in zip(sres, progs))
    ok_sp = sum(answers_match(v, a) for v, (_, a) in zip(pres, progs))
    n = len(codes)
    print(f"{n} {kind}, {args.workers} parallel workers each, Python {sys.version.split()[0]}")
    print(f"{'method':<34}{'seconds':>9}{'programs/s':>12}{'correct':>10}")
    print(f"{'Sandbox (run_programs)':<34}{t_sb:>9.2f}{n / t_sb:>12.1f}{ok_sb:>10}")
    print(f"{'subprocess python -c per program':<34}{t_sp:>9.2f}{n / t_sp:>12.1f}{ok_sp:>10}")
    print(f"ratio (sandbox / subprocess): {t_sp / t_sb:.1f}x")


if __name__ == "__main__":
    main()
