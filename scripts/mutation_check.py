#!/usr/bin/env python
"""Mutation check of the method's core: plant one plausible bug at a time, run the tests, count
how many bugs the tests catch.

Each mutant (scripts/mutants.yaml) is a list of exact-string replacements in one module. A replacement whose text is not
found exactly once fails the whole check at once (the code moved on and the mutant must be
updated), so a stale list can never pass by mutating nothing. Mutants are applied to a scratch
copy of the tree, never to the working tree, so an interrupted check leaves nothing behind.

    python scripts/mutation_check.py                 # the relevant fast test files per module
    python scripts/mutation_check.py --full          # the whole fast subset (-m "not slow") per mutant
    python scripts/mutation_check.py --only verify   # mutants whose id contains "verify"
    python scripts/mutation_check.py --list          # the mutants, without running anything

Exit status: 0 when the kill rate reaches ``--min-rate`` (default 0.9), 1 below it, 2 when a
mutant no longer applies or the unmutated tests fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
# what the fast tests read besides the package: scripts, experiments and docs they check
COPY = (
    "fdd",
    "tests",
    "scripts",
    "experiments",
    "benchmarks",
    "notebooks",
    "docs",
    "README.md",
    "setup.cfg",
    "pyproject.toml",
)

MUTANTS_FILE = ROOT / "scripts" / "mutants.yaml"  # the mutant list is data: edit it, not this script


@dataclass
class Mutant:
    id: str
    path: str
    edits: Sequence[Tuple[str, str]]  # (exact text, replacement), each must occur exactly once
    what: str

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


def load_mutants(path: Path = MUTANTS_FILE) -> Tuple[Dict[str, Tuple[str, ...]], List[Mutant]]:
    """The test files per module group and the mutants, from ``path``; a malformed entry names itself."""
    data = yaml.safe_load(path.read_text())
    tests = {group: tuple(files) for group, files in data["tests"].items()}
    mutants, seen = [], set()
    for i, entry in enumerate(data["mutants"]):
        try:
            m = Mutant(
                id=entry["id"],
                path=entry["path"],
                edits=[(e["find"], e["replace"]) for e in entry["edits"]],
                what=entry["what"],
            )
        except (KeyError, TypeError) as e:
            raise SystemExit(
                f"{path}: mutant #{i + 1} lacks {e} (needs id, path, what, edits of find/replace)"
            ) from None
        if m.id in seen or m.group not in tests or not m.edits:
            why = "is listed twice" if m.id in seen else "has no edits" if not m.edits else "has no group in tests:"
            raise SystemExit(f"{path}: mutant {m.id} {why}")
        seen.add(m.id)
        mutants.append(m)
    return tests, mutants


def apply(root: Path, m: Mutant) -> str:
    """Write the mutant into ``root``; returns the original text (to restore)."""
    path = root / m.path
    original = path.read_text()
    text = original
    for old, new in m.edits:
        n = text.count(old)
        if n != 1:
            raise SystemExit(
                f"mutant {m.id}: {old!r} occurs {n} times in {m.path} (expected once); "
                f"update the mutant to the current code"
            )
        text = text.replace(old, new)
    path.write_text(text)
    return original


def run_tests(root: Path, files: Sequence[str], timeout: float) -> Tuple[str, float, str]:
    """'pass', 'fail' or 'timeout', the seconds taken and the end of pytest's output."""
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")  # no stale .pyc between mutants
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *files]
    t0 = time.monotonic()
    # Its own process group, so a timeout also ends what the tests started (e.g. a sandbox worker
    # stuck in C code once a mutant removed the parent's wall clock).
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", time.monotonic() - t0, ""
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of a finished run
        except ProcessLookupError:
            pass
    tail = "\n".join(out.splitlines()[-25:])
    return ("pass" if proc.returncode == 0 else "fail"), time.monotonic() - t0, tail


def scratch_copy() -> Path:
    root = Path(tempfile.mkdtemp(prefix="fdd-mutants-"))
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, root / name)
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="run the whole fast subset per mutant")
    ap.add_argument("--only", default="", help="run the mutants whose id contains one of these (comma-separated)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--min-rate", type=float, default=0.9)
    ap.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="most seconds per mutant; each gets 3x its unmutated tests' time, at least 60 (a timeout counts as killed)",
    )
    args = ap.parse_args(argv)

    tests_of, all_mutants = load_mutants()
    mutants = [m for m in all_mutants if any(part in m.id for part in args.only.split(","))]
    if args.list:
        for m in mutants:
            print(f"{m.id:32s} {m.path:28s} {m.what}")
        return 0
    if not mutants:
        raise SystemExit(f"no mutant id contains {args.only!r}")
    root = scratch_copy()
    try:
        for m in mutants:  # every target must still be found before anything runs
            (root / m.path).write_text(apply(root, m))
        files_of = (lambda m: ["tests"]) if args.full else (lambda m: list(tests_of[m.group]))
        groups = sorted({tuple(files_of(m)) for m in mutants})
        budget: Dict[Tuple[str, ...], float] = {}  # a mutant that hangs the tests is killed, not waited on
        for files in groups:
            status, secs, tail = run_tests(root, files, args.timeout)
            if status != "pass":
                print(f"{tail}\nthe unmutated tests do not pass ({' '.join(files)}: {status}); fix them first")
                return 2
            budget[files] = min(args.timeout, max(60.0, 3 * secs))
            print(f"baseline passes: {' '.join(files)} ({secs:.1f}s)", flush=True)
        killed, survivors = 0, []
        for m in mutants:
            original = apply(root, m)
            try:
                status, secs, _ = run_tests(root, files_of(m), budget[tuple(files_of(m))])
            finally:
                (root / m.path).write_text(original)
            caught = status != "pass"
            killed += caught
            if not caught:
                survivors.append(m)
            print(
                f"{'killed  ' if caught else 'SURVIVED'} {m.id:32s} {secs:6.1f}s  {m.what}"
                + (" (timeout)" if status == "timeout" else ""),
                flush=True,
            )
        rate = killed / len(mutants)
        print(
            f"\nkill rate: {killed}/{len(mutants)} = {rate:.1%} ({'full fast subset' if args.full else 'relevant test files'})"
        )
        for m in survivors:
            print(f"  survivor: {m.id} ({m.path}): {m.what}")
        return 0 if rate >= args.min_rate else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
