#!/usr/bin/env python
"""Mutation check of the method's core: plant one plausible bug at a time, run the tests, count
how many bugs the tests catch.

Each mutant is a list of exact-string replacements in one module. A replacement whose text is not
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

ROOT = Path(__file__).resolve().parents[1]
COPY = ("fdd", "tests", "setup.cfg", "pyproject.toml")

# module group -> the fast test files that pin it
TESTS: Dict[str, Tuple[str, ...]] = {
    "verify": ("tests/test_verify.py", "tests/test_dedup_index.py", "tests/test_loop_method.py"),
    "decode": ("tests/test_fast_paths.py",),
    "stages": ("tests/test_stages.py",),
    "loop": ("tests/test_loop_method.py",),
    "feedback": ("tests/test_feedback.py",),
    "agreement": ("tests/test_agreement.py",),
    "data": ("tests/test_label_masking.py", "tests/test_students.py"),
    "answer": ("tests/test_answer.py", "tests/test_answer_pins.py"),
    "sandbox": ("tests/test_sandbox.py", "tests/test_sandbox_layers.py"),
    "cache": ("tests/test_teacher_openai.py", "tests/test_cache_keys.py"),
}


@dataclass
class Mutant:
    id: str
    path: str
    edits: Sequence[Tuple[str, str]]  # (exact text, replacement), each must occur exactly once
    what: str

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


V, S, L = "fdd/method/verify.py", "fdd/runtime/stages.py", "fdd/method/loop.py"
FB, AG = "fdd/method/feedback.py", "fdd/method/agreement.py"
D, A, X = "fdd/students/data.py", "fdd/reasoning/answer.py", "fdd/sandbox/pool.py"
LLM, CACHE = "fdd/teachers/llm.py", "fdd/teachers/cache.py"
DEC, FDROP = "fdd/students/decode.py", "fdd/students/fastdrop.py"

MUTANTS: List[Mutant] = [
    # ---------------------------------------------------------------- verify.py
    Mutant(
        "verify.agree_strict",
        V,
        [("len(best[1]) >= min_agree", "len(best[1]) > min_agree")],
        "demand one more agreeing rationale than min_agree",
    ),
    Mutant(
        "verify.agree_loose",
        V,
        [("len(best[1]) >= min_agree", "len(best[1]) >= min_agree - 1")],
        "accept one agreeing rationale short of min_agree",
    ),
    Mutant(
        "verify.agree_minority",
        V,
        [
            (
                "best = max(groups, key=lambda g: len(g[1]), default=None)",
                "best = min(groups, key=lambda g: len(g[1]), default=None)",
            )
        ],
        "take the least-voted answer",
    ),
    Mutant(
        "verify.agree_round",
        V,
        [("                    round=round_idx,\n", "                    round=0,\n")],
        "accepted items lose their round",
    ),
    Mutant(
        "verify.dedup_flipped",
        V,
        [
            (
                "inter / (len(sh) + len(other) - inter) >= self.threshold",
                "inter / (len(sh) + len(other) - inter) < self.threshold",
            )
        ],
        "near-duplicate comparison flipped",
    ),
    Mutant(
        "verify.dedup_strict",
        V,
        [
            (
                "inter / (len(sh) + len(other) - inter) >= self.threshold",
                "inter / (len(sh) + len(other) - inter) > self.threshold",
            )
        ],
        "threshold no longer inclusive",
    ),
    Mutant(
        "verify.ngram_off_by_one",
        V,
        [("zip(*(tokens[i:] for i in range(n)))", "zip(*(tokens[i:-1] for i in range(n)))")],
        "the last n-gram of every text is skipped",
    ),
    Mutant(
        "verify.ngram_length",
        V,
        [("ngrams(words(text), self.n))", "ngrams(words(text), self.n + 1))")],
        "candidates compared with (n+1)-grams: decontamination silently off",
    ),
    Mutant(
        "verify.screen_no_index",
        V,
        [("            dedup.add(c.question)\n", "            pass\n")],
        "survivors of screening not added to the dedup index",
    ),
    Mutant(
        "verify.screen_no_contamination",
        V,
        [("if contamination is not None and contamination.overlaps(c.question):", "if False:")],
        "decontamination skipped",
    ),
    Mutant(
        "verify.seed_gold_flipped",
        V,
        [("not answers_match(res.value, p.answer)", "answers_match(res.value, p.answer)")],
        "seed keeps the wrong rationales",
    ),
    Mutant(
        "verify.seed_max_keep",
        V,
        [("len(kept) < max_keep", "len(kept) <= max_keep")],
        "seed keeps one rationale too many",
    ),
    # ---------------------------------------------------------------- stages.py
    Mutant(
        "stages.skip_flipped",
        S,
        [("        if m.is_file():\n", "        if not m.is_file():\n")],
        "runs done stages, skips new ones",
    ),
    Mutant(
        "stages.marker_first",
        S,
        [
            (
                "        summary = dict(fn(d) or {})\n",
                "        write_json(m, {})\n        summary = dict(fn(d) or {})\n",
            )
        ],
        "marker written before the stage body",
    ),
    Mutant(
        "stages.done_any",
        S,
        [("return self.marker(r, stage).is_file()", "return self.round_dir(r).is_dir()")],
        "a round with any output counts as done",
    ),
    Mutant("stages.one_marker", S, [('f"DONE.{stage}"', '"DONE"')], "one marker shared by every stage"),
    # ---------------------------------------------------------------- loop.py: feedback, targets, bookkeeping
    Mutant(
        "feedback.swapped",
        FB,
        [
            (
                "easy = [p.id for p in problems if rate[p.id] >= cut]",
                "easy = [p.id for p in problems if rate[p.id] < cut]",
            ),
            (
                "hard = [p.id for p in problems if rate[p.id] < cut]",
                "hard = [p.id for p in problems if rate[p.id] >= cut]",
            ),
        ],
        "solved problems called hard, unsolved easy",
    ),
    Mutant(
        "feedback.threshold_ignored",
        FB,
        [("cut = 1.0 if samples == 1 else threshold", "cut = 1.0")],
        "sampled feedback demands every sample right",
    ),
    Mutant(
        "feedback.probe_trained",
        L,
        [("items = [it for it in items if it.problem_id not in probe]", "items = list(items)")],
        "the probe slice is trained on (feedback is memorisation again)",
    ),
    Mutant(
        "feedback.probe_size",
        FB,
        [("k = max(1, round(fraction * len(ids)))", "k = max(1, int(fraction * len(ids)) - 1)")],
        "probe slice one short",
    ),
    Mutant(
        "agreement.stops_reachable",
        AG,
        [("if lead < min_agree and lead + left >= min_agree:", "if lead < min_agree and lead + left > min_agree:")],
        "adaptive sampling gives up while agreement is still reachable",
    ),
    Mutant(
        "agreement.asks_extra",
        AG,
        [("need[i] = min(min_agree - lead, left)", "need[i] = left")],
        "adaptive sampling asks every remaining sample at once",
    ),
    Mutant(
        "agreement.repeats_samples",
        AG,
        [("waves[(len(replies[i]), k)].append(i)", "waves[(0, k)].append(i)")],
        "later waves ask the first samples again",
    ),
    Mutant(
        "loop.branches_swapped",
        L,
        [
            (
                "(BRANCH_HARDER, to_harder, self.teacher.write_harder",
                "(BRANCH_HARDER, to_similar, self.teacher.write_harder",
            ),
            (
                "(BRANCH_SIMILAR, to_similar, self.teacher.write_similar",
                "(BRANCH_SIMILAR, to_harder, self.teacher.write_similar",
            ),
        ],
        "harder variants of hard problems, similar ones of easy problems",
    ),
    Mutant(
        "loop.targets_swapped",
        L,
        [("        return easy, hard\n", "        return hard, easy\n")],
        "choose_targets returns its lists swapped",
    ),
    Mutant(
        "loop.per_branch_counts",
        L,
        [("self.teacher.write_harder, self.aug.per_easy)", "self.teacher.write_harder, self.aug.per_hard)")],
        "harder branch asks per_hard problems",
    ),
    Mutant(
        "loop.mode_easy_only",
        L,
        [('if mode in ("fdd", "easy_only") else []', 'if mode in ("fdd", "hard_only") else []')],
        "easy_only/hard_only modes expand the wrong branch",
    ),
    Mutant(
        "loop.mode_none",
        L,
        [('if mode in ("fdd", "hard_only") else []', 'if mode != "easy_only" else []')],
        "mode none still expands hard problems",
    ),
    Mutant(
        "loop.random_unshuffled",
        L,
        [('            rng(self.cfg.seed, "random-targets", r).shuffle(pool)\n', "            pass\n")],
        "random mode follows the feedback labels",
    ),
    Mutant(
        "loop.random_count",
        L,
        [
            (
                "easy = [p for p in pool if p.id not in done_h][:n_easy]",
                "easy = [p for p in pool if p.id not in done_h][:n_easy + 1]",
            )
        ],
        "random mode spends one more than fdd",
    ),
    Mutant(
        "loop.budget_ignored",
        L,
        [("if budget is not None and len(easy) + len(hard) > budget:", "if False:")],
        "no budget cap",
    ),
    Mutant(
        "loop.budget_off_by_one",
        L,
        [("hard = g.sample(hard, budget - n_easy)", "hard = g.sample(hard, budget - n_easy - 1)")],
        "budget cap one short",
    ),
    Mutant(
        "loop.expanded_this_round",
        L,
        [("for q in range(1, r):", "for q in range(1, r + 1):")],
        "_expanded reads the current round too",
    ),
    Mutant(
        "loop.expanded_branches",
        L,
        [
            (
                '(harder if row["branch"] == BRANCH_HARDER else similar)',
                '(similar if row["branch"] == BRANCH_HARDER else harder)',
            )
        ],
        "_expanded files parents under the other branch",
    ),
    Mutant(
        "loop.expanded_ignored",
        L,
        [("easy = [p for p in easy if p.id not in done_h] if mode", "easy = [p for p in easy] if mode")],
        "a problem is expanded again every round",
    ),
    Mutant(
        "loop.distill_previous",
        L,
        [("for q in range(r, -1, -1):", "for q in range(r - 1, -1, -1):")],
        "distill_set(r) returns the previous round's set",
    ),
    Mutant(
        "loop.distill_only_new",
        L,
        [
            (
                'write_jsonl(out / "distill.jsonl", list(items) + accepted)',
                'write_jsonl(out / "distill.jsonl", accepted)',
            )
        ],
        "D_r = accepted instead of D_{r-1} + accepted",
    ),
    Mutant(
        "loop.pool_repeats",
        L,
        [("            if it.question not in seen:\n", "            if True:\n")],
        "feedback pool repeats a problem per rationale",
    ),
    Mutant(
        "loop.no_decontamination",
        L,
        [("screen(candidates, dedup, contamination)", "screen(candidates, dedup, None)")],
        "augment skips decontamination",
    ),
    Mutant(
        "loop.dedup_not_seeded",
        L,
        [("            dedup.add(q)\n", "            pass\n")],
        "dedup index not seeded with the known problems",
    ),
    # ---------------------------------------------------------------- students/data.py
    Mutant(
        "data.loss_on_prompt",
        D,
        [('"labels": [IGNORE] * len(p_ids) + t_ids}', '"labels": p_ids + t_ids}')],
        "causal loss taken on the prompt tokens",
    ),
    Mutant(
        "data.target_too_long",
        D,
        [("[: max_target - 1] + [tokenizer.eos_token_id]", "[: max_target] + [tokenizer.eos_token_id]")],
        "target one token over max_target",
    ),
    Mutant("data.prompt_head", D, [("[-max_source:]", "[:max_source]")], "truncation keeps the prompt's start"),
    Mutant("data.no_separator", D, [('"\\n" + target', "target")], "causal target not on its own line"),
    Mutant("data.no_eos", D, [("+ [tokenizer.eos_token_id]", "+ []")], "no eos: the student never learns to stop"),
    Mutant(
        "data.labels_padded_with_pad",
        D,
        [("labels = torch.full((len(rows), m), IGNORE", "labels = torch.full((len(rows), m), self.pad_id")],
        "padding counted in the loss",
    ),
    Mutant(
        "data.mask_all",
        D,
        [("mask = torch.zeros((len(rows), n)", "mask = torch.ones((len(rows), n)")],
        "attention on padding",
    ),
    # ---------------------------------------------------------------- reasoning/answer.py
    Mutant("answer.loose_tolerance", A, [("abs_tol: float = 5e-5", "abs_tol: float = 0.5")], "0.4 off still matches"),
    Mutant(
        "answer.sign_lost",
        A,
        [('return -v if g.get("sign") == "-" else v', 'return -v if g.get("sign") == "+" else v')],
        "negative answers parsed positive",
    ),
    Mutant(
        "answer.thousands", A, [('num = g["num"].replace(",", "")', 'num = g["num"].split(",")[0]')], "1,234 read as 1"
    ),
    Mutant(
        "answer.first_number",
        A,
        [
            (
                "    for m in _TOKEN.finditer(s):\n        last = m\n",
                "    for m in _TOKEN.finditer(s):\n        last = last or m\n",
            )
        ],
        "last_number returns the first number",
    ),
    Mutant(
        "answer.first_boxed",
        A,
        [("            last = s[m.end() : i - 1]", "            last = last or s[m.end() : i - 1]")],
        "the first \\boxed{} wins",
    ),
    Mutant(
        "answer.strict_off",
        A,
        [("if strict and not re.fullmatch", "if False and not re.fullmatch")],
        "strict parsing accepts trailing text",
    ),
    Mutant(
        "answer.zero_denominator",
        A,
        [('        if Fraction(g["d"]) == 0:\n            return None\n', "")],
        "x/0 raises",
    ),
    Mutant(
        "answer.bool_number",
        A,
        [
            (
                "    if value is None or isinstance(value, bool):\n        return None\n",
                "    if value is None:\n        return None\n",
            )
        ],
        "True counts as 1",
    ),
    # ---------------------------------------------------------------- sandbox limits
    Mutant(
        "sandbox.no_timer",
        X,
        [("    signal.setitimer(signal.ITIMER_REAL, timeout_s)\n    try:\n", "    try:\n")],
        "in-worker timer removed",
    ),
    Mutant("sandbox.no_nproc", X, [("    setl(resource.RLIMIT_NPROC, 0)\n", "")], "process limit removed"),
    Mutant(
        "sandbox.no_cpu_rearm",
        X,
        [("(int(used) + cpu_s + 1, resource.getrlimit", "(int(used) + 1000 * cpu_s, resource.getrlimit")],
        "CPU limit not re-armed per program",
    ),
    Mutant(
        "sandbox.no_memory",
        X,
        [("    setl(resource.RLIMIT_AS, base + memory_mb * 1024 * 1024)\n", "")],
        "memory limit removed",
    ),
    Mutant("sandbox.no_fsize", X, [("    setl(resource.RLIMIT_FSIZE, 1024 * 1024)\n", "")], "file-size limit removed"),
    Mutant(
        "sandbox.no_parent_clock",
        X,
        [
            (
                "            for i, w in busy:\n                if self._pool[i] is w and w.pending and now >= w.deadline:",
                "            for i, w in busy:\n                if False:",
            )
        ],
        "parent-side wall clock never kills",
    ),
    Mutant(
        "sandbox.stay_root",
        X,
        [("    if drop_privileges:\n        _drop_privileges()\n", "")],
        "workers keep root (which ignores RLIMIT_NPROC)",
    ),
    Mutant(
        "sandbox.import_whitelist",
        X,
        [("if level or name not in self._module_dicts:", "if level:")],
        "any module importable",
    ),
    # ---------------------------------------------------------------- teacher cache keys
    Mutant(
        "cache.no_sample_index",
        LLM,
        [('                "sample_index": req.sample_index,\n            }\n        )', "            }\n        )")],
        "k samples of one prompt share a cache entry",
    ),
    Mutant(
        "cache.no_model",
        LLM,
        [
            (
                '                "backend": self.backend,\n                "model": self.model_id,\n',
                '                "backend": self.backend,\n',
            )
        ],
        "two models share cache entries",
    ),
    Mutant("cache.no_messages", LLM, [('"messages": req.chat(),\n', "\n")], "every prompt shares one entry"),
    Mutant(
        "cache.no_sampling",
        LLM,
        [
            (
                '                "sampling": req.sampling(),\n                "sample_index": req.sample_index,\n',
                '                "sample_index": req.sample_index,\n',
            )
        ],
        "temperature/max_tokens not in the key",
    ),
    Mutant(
        "cache.unsorted_json",
        CACHE,
        [("json.dumps(obj, sort_keys=True,", "json.dumps(obj, sort_keys=False,")],
        "key depends on dict order",
    ),
    Mutant(
        "cache.seed_ignores_sample",
        LLM,
        [('content = f"{seed}:{sample_index}" + (f":{question}" if question else "")', 'content = f"{seed}"')],
        "every sample gets the same sampling seed",
    ),
    # ---------------------------------------------------------------- verify.py: the dedup index
    Mutant(
        "verify.dedup_prefix_short",
        V,
        [
            (
                "n = len(sh) - math.ceil(self.threshold * len(sh) - 1e-9) + 1",
                "n = len(sh) - math.ceil(self.threshold * len(sh) - 1e-9)",
            )
        ],
        "prefix one 3-gram short: some near-duplicates never meet",
    ),
    # ---------------------------------------------------------------- students/decode.py
    Mutant(
        "decode.t5_encoder_unmasked",
        DEC,
        [("merged = torch.where(kept, bias, torch.finfo(h.dtype).min) if padded else bias", "merged = bias")],
        "the T5 encoder attends to padding",
    ),
    Mutant(
        "decode.t5_cross_unmasked",
        DEC,
        [
            (
                "self.cross = torch.where(kept, zero, torch.finfo(qdtype).min).contiguous() if padded else zero",
                "self.cross = zero",
            )
        ],
        "the T5 decoder attends to the encoder's padding",
    ),
    Mutant(
        "decode.t5_bias_row",
        DEC,
        [("self.table[:, :, t : t + 1, : t + 1]", "self.table[:, :, 0:1, : t + 1]")],
        "every decoder step gets the first step's relative bias",
    ),
    Mutant(
        "decode.t5_cross_dtype",
        DEC,
        [("qdtype = self.encoded.dtype", "qdtype = h.dtype")],
        "the cross-attention mask in the fp32 residual's dtype, not the queries'",
    ),
    Mutant(
        "decode.causal_positions",
        DEC,
        [("        self.pos = self.pos + 1\n", "        self.pos = self.pos + 0\n")],
        "decoding steps reuse the last prompt position",
    ),
    Mutant(
        "decode.keep_no_cache",
        DEC,
        [
            (
                "    def keep(self, rows: torch.Tensor) -> None:\n        self.cache.batch_select_indices(rows)\n        self.mask, self.pos",
                "    def keep(self, rows: torch.Tensor) -> None:\n        self.mask, self.pos",
            )
        ],
        "finished rows leave the batch but not the causal cache",
    ),
    Mutant(
        "decode.no_ballast",
        DEC,
        [("    if short <= 0:\n        return live\n", "    if short <= 0 or True:\n        return live\n")],
        "the batch shrinks to its last live rows, whose products round differently",
    ),
    # ------------------------------------------------- students/fastdrop.py (same test file)
    Mutant(
        "decode.fastdrop_unscaled",
        FDROP,
        [("return keep.to(x.dtype).mul_(1.0 / (1.0 - cut / 2**32))", "return keep.to(x.dtype)")],
        "kept elements are not scaled by 1/(1-p): the mean shrinks",
    ),
    Mutant(
        "decode.fastdrop_flipped",
        FDROP,
        [("bits >= np.uint32(cut)", "bits < np.uint32(cut)")],
        "elements are kept with probability p instead of 1-p",
    ),
]


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

    mutants = [m for m in MUTANTS if any(part in m.id for part in args.only.split(","))]
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
        files_of = (lambda m: ["tests"]) if args.full else (lambda m: list(TESTS[m.group]))
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
