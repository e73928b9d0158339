"""The FDD algorithm (arXiv 2411.14698), top to bottom.

    round 0   init      the teacher writes rationales for the seed problems; wrong ones are dropped -> D0
    round r   train     fine-tune the student on D_{r-1}                                  -> checkpoint/
              evaluate  answer every held-out set                                         -> eval_<set>.jsonl
              feedback  answer the problems of D_{r-1}: solved = easy, unsolved = hard    -> split.json
              augment   harder variations of easy problems, similar problems for hard ones,
                        verified and merged (skipped after the last round: nothing trains on it)
                                                                                          -> distill.jsonl
              metrics   per-round numbers to metrics.jsonl, wandb and rounds.png

Every stage writes under ``<run_dir>/round_<r>/`` and is skipped when already done, so a rerun
of the same command resumes a killed run. The loop knows backends only through their
interfaces (Teacher, Student, Sandbox, Tracker).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fdd.method.agreement import collect_rationales, collect_seed_rationales
from fdd.method.feedback import probe_ids
from fdd.method.feedback import split as feedback_split
from fdd.method.grading import grade
from fdd.method.verify import Candidate, DedupIndex, NgramIndex, accept_by_agreement, conventions, screen, verify_seed
from fdd.reporting.tracking import curve_loggers
from fdd.runtime import gpu_plan
from fdd.runtime.failures import FailedRequests, reopen_failed
from fdd.runtime.io import read_json, read_jsonl, write_json, write_jsonl
from fdd.runtime.progress import StagePlan
from fdd.runtime.seeding import rng
from fdd.runtime.stages import StageRunner
from fdd.types import BRANCH_HARDER, BRANCH_SIMILAR, Item, Prediction, Problem, Rejection, RoundMetrics

log = logging.getLogger(__name__)


# Train-stage numbers on what the student's tokenizer and length limits did to its set.
FIDELITY_KEYS = (
    "unrepresentable",
    "unrepresentable_by_reason",
    "lossy_prompts",
    "overlong",
    "overlong_by_kind",
    "overlong_dropped",
    "token_lengths",
)


class EmptyDistillationSetError(RuntimeError):
    """Nothing survived verification, so there is nothing to train the student on."""


@dataclass(frozen=True)
class CallPlan:
    """The most teacher calls a config can make, from the settings the loop obeys. The feedback
    split is unknown before training, so an augmenting round is counted as if it expanded every
    problem it may (its pool grows by the problems earlier rounds may have added). The loop checks
    each round against it; ``dry_run`` and the cost estimate print it."""

    seed_problems: int
    seed_samples: int  # the most rationales per seed problem (retries included)
    targets: Tuple[int, ...]  # per augmenting round 1..: the most problems it expands
    per_target: int  # new problems asked per expanded problem: max(per_easy, per_hard)
    samples: int  # the most rationales asked per new problem (adaptive agreement may stop earlier)

    @property
    def init_calls(self) -> int:
        return self.seed_problems * self.seed_samples

    @property
    def augmenting_rounds(self) -> int:
        return len(self.targets)

    def problem_calls(self, r: int) -> int:
        """Round ``r``'s most new-problem requests (0 for a round that does not augment)."""
        return self.targets[r - 1] * self.per_target if 1 <= r <= len(self.targets) else 0

    def rationale_calls(self, r: int) -> int:
        return self.problem_calls(r) * self.samples

    def calls(self, r: int) -> int:
        """Round ``r``'s most teacher requests (round 0: the seed rationales)."""
        return self.init_calls if r == 0 else self.problem_calls(r) + self.rationale_calls(r)

    @property
    def total_calls(self) -> int:
        return sum(self.calls(r) for r in range(len(self.targets) + 1))


def plan_calls(cfg, n_train: int) -> CallPlan:
    """The call plan of ``cfg`` for ``n_train`` seed problems (see CallPlan): rounds 1..rounds-1
    augment (the last round's new problems would train nothing)."""
    a = cfg.augmentation
    per_target = max(a.per_easy, a.per_hard)
    targets, pool = [], n_train
    for _ in range(max(0, cfg.rounds - 1)):
        answered = min(pool, cfg.train_subset) if cfg.train_subset else pool
        t = 0 if a.mode == "none" else (answered if a.budget is None else min(answered, a.budget))
        targets.append(t)
        pool += t * per_target  # the most problems this round can add to the next round's pool
    return CallPlan(n_train, a.seed_samples + a.seed_retries, tuple(targets), per_target, a.samples)


class FDDLoop:
    def __init__(
        self,
        cfg,
        run_dir,
        teacher,
        student,
        fmt,
        sandbox,
        tracker,
        train_problems: Sequence[Problem],
        eval_sets: Dict[str, Sequence[Problem]],
    ) -> None:
        self.cfg, self.aug = cfg, cfg.augmentation
        self.run_dir = Path(run_dir)
        self.stages = StageRunner(self.run_dir)
        self.teacher, self.student, self.fmt, self.sandbox, self.tracker = teacher, student, fmt, sandbox, tracker
        self.train_problems, self.eval_sets = list(train_problems), {k: list(v) for k, v in eval_sets.items()}
        self.plan = plan_calls(cfg, len(self.train_problems))

    # ------------------------------------------------------------------ the algorithm
    @staticmethod
    def stage_order(cfg) -> List[Tuple[int, str]]:
        """Every stage ``run`` goes through, in order (the progress lines count them)."""
        order = [(0, "init")] + ([(0, "evaluate")] if cfg.student.evaluates_base() else [])
        for r in range(1, cfg.rounds + 1):
            order += [(r, "train"), (r, "evaluate"), (r, "feedback")]
            order += [(r, "augment")] if r < cfg.rounds else []
            order.append((r, "metrics"))
        return order

    def run(self) -> List[Dict]:
        self.stages.plan = StagePlan(self.stage_order(self.cfg))  # a progress line per stage, with the time left
        if self.cfg.teacher.retry_failed:
            reopen_failed(self.run_dir, self.stages)
        init = self.stages.run(0, "init", self.initialize)
        round0 = {"init": init}
        if self.cfg.student.evaluates_base():
            round0["evaluate"] = self.stages.run(0, "evaluate", self.evaluate_base)
        self.tracker.log_round(0, self._metrics(0, round0))
        for r in range(1, self.cfg.rounds + 1):
            summaries = {
                "train": self.stages.run(r, "train", lambda d, r=r: self.train(r, d)),
                "evaluate": self.stages.run(r, "evaluate", lambda d, r=r: self.evaluate(r, d)),
                "feedback": self.stages.run(r, "feedback", lambda d, r=r: self.feedback(r, d)),
            }
            if r < self.cfg.rounds:  # the last round's new problems would train nothing
                summaries["augment"] = self.stages.run(r, "augment", lambda d, r=r: self.augment(r, d))
            metrics = self.stages.run(r, "metrics", lambda d, r=r, s=summaries: self._metrics(r, s))
            self.tracker.log_round(r, metrics)
        return self.tracker.rows

    def initialize(self, out: Path) -> Dict:
        """D0: teacher rationales for the seed problems, kept where the answer matches gold."""
        self.teacher.usage.reset()
        problems = self.train_problems
        replies, answers = collect_seed_rationales(
            self.teacher.write_rationales,
            problems,
            self.aug.seed_samples,
            self.aug.seed_retries,
            self.cfg.rationale,
            self._extract,
        )
        failures = self._failures(out, "init")
        failures.check("init", "rationale", [p.id for p in problems], replies)
        items, rejected = verify_seed(problems, replies, answers, max_keep=self.aug.seed_samples)
        write_jsonl(out / "rejected.jsonl", rejected)
        write_jsonl(out / "distill.jsonl", items)
        reasons = dict(Counter(r.reason for r in rejected))
        read_as = conventions(answers)
        log.info(
            "init: %d of %d seed problems kept (%s); answers read as %s",
            len({i.question for i in items}),
            len(problems),
            reasons,
            read_as,
        )
        return {
            "answer_conventions": read_as,
            "rationale_requests": sum(len(r) for r in replies),
            "seed_problems": len(problems),
            "distill_size": len(items),
            "rejected": len(rejected),
            "rejected_by_reason": reasons,
            "teacher": self.teacher.usage.snapshot(),
            "failed_requests": failures.finish("init"),
            **({"teacher_roles": self.teacher.backends} if hasattr(self.teacher, "backends") else {}),
        }

    def train(self, r: int, out: Path) -> Dict:
        """Fine-tune on D_{r-1}, from round r-1's weights or from the base model (config)."""
        items = full = self.distill_set(r - 1)
        if self.cfg.feedback.signal == "probe":  # every round alike: a round never depends on how many follow
            probe = self.probe_ids(r)
            items = [it for it in items if it.problem_id not in probe]
        if not items:
            reasons = Counter(x["reason"] for x in read_jsonl(self.run_dir / f"round_{r - 1}" / "rejected.jsonl"))
            raise EmptyDistillationSetError(
                f"round {r}: the distillation set is empty, every teacher rationale was rejected ({dict(reasons)}); "
                f"see {self.run_dir / f'round_{r - 1}' / 'rejected.jsonl'}"
            )
        prev = self.run_dir / f"round_{r - 1}" / "checkpoint"
        init_from = str(prev) if self.cfg.student.continue_from_previous and prev.is_dir() else None
        gpu_plan.release_all(f"round {r} fit")  # the fit has the GPU to itself (fdd/runtime/gpu_plan.py)
        info = self.student.fit(
            items,
            out_dir=str(out / "checkpoint"),
            state_dir=str(out / "train_state"),
            init_from=init_from,
            round_idx=r,
            loggers=curve_loggers(r),  # per-step loss and lr into the run's wandb run, when there is one
        )
        gpu_plan.free_device_cache()  # the fit's cached blocks back to the driver, for the engines that follow
        for ckpt in (out / "train_state").glob("*.ckpt"):  # the resumable state is no longer needed
            ckpt.unlink()
        return {**info, "distill_size": len(full), "trained_on": len(items)}

    def answer(
        self, problems: Sequence[Problem], ckpt_dir: Optional[str], desc: str, sampling: Optional[Dict] = None
    ) -> List[Prediction]:
        """The student's rationales for ``problems`` (``ckpt_dir=None``: the base student), graded."""
        texts = self.student.rationales(problems, ckpt_dir, desc=desc, sampling=sampling)
        return grade(problems, texts, self.fmt, self.sandbox)

    def evaluate(self, r: int, out: Path) -> Dict:
        acc = {}
        for name, problems in self.eval_sets.items():
            preds = self.answer(problems, str(out / "checkpoint"), desc=f"eval {name}")
            write_jsonl(out / f"eval_{name}.jsonl", preds)
            acc[name] = sum(p.correct for p in preds) / max(1, len(preds))
            log.info("round %d: accuracy on %s = %.3f (%d problems)", r, name, acc[name], len(preds))
        return {"accuracy": acc}

    def evaluate_base(self, out: Path) -> Dict:
        """Round 0: the base student (before any fine-tuning) on every held-out set."""
        # Pin the tokenizer to round 1's corpus first (a word-level one is trained on it).
        self.student.tokenizer(
            [t for it in self.distill_set(0) for t in (self.fmt.student_prompt(it.question), it.rationale)]
        )
        acc = {}
        for name, problems in self.eval_sets.items():
            preds = self.answer(problems, None, desc=f"eval {name} (base)")
            write_jsonl(out / f"eval_{name}.jsonl", preds)
            acc[name] = sum(p.correct for p in preds) / max(1, len(preds))
            log.info("round 0 (base student): accuracy on %s = %.3f (%d problems)", name, acc[name], len(preds))
        return {"accuracy": acc}

    def feedback(self, r: int, out: Path) -> Dict:
        """The student answers the pool: solved = easy, unsolved = hard (fdd/method/feedback.py says which
        problems it answers, and how many times)."""
        fb = self.cfg.feedback
        pool = self.feedback_pool(r)
        if fb.signal == "probe":
            probe = self.probe_ids(r)
            pool = [p for p in pool if p.id in probe]
        sampling = {"temperature": fb.temperature, "seed": self.cfg.seed * 1000 + r} if fb.samples > 1 else None
        asked = [p for p in pool for _ in range(fb.samples)]
        preds = self.answer(asked, str(out / "checkpoint"), desc="feedback", sampling=sampling)
        gpu_plan.release_all(f"round {r} student generation done")
        write_jsonl(out / "train_predictions.jsonl", preds)
        easy, hard, rate = feedback_split(pool, preds, fb.samples, fb.easy_threshold)
        write_json(out / "split.json", {"easy": easy, "hard": hard, "solve_rate": rate})
        n = max(1, len(pool))
        return {
            "answered": len(pool),
            "easy": len(easy),
            "hard": len(hard),
            "easy_ratio": len(easy) / n,
            "hard_ratio": len(hard) / n,
            "train_accuracy": sum(p.correct for p in preds) / max(1, len(preds)),
            "signal": fb.signal,
            "student_errors": dict(Counter(p.error for p in preds if p.error)),
        }

    def probe_ids(self, r: int) -> set:
        """Round r's probe slice (feedback.signal=probe): held out of r's training, answered at feedback."""
        return probe_ids(self._pool_problems(r), self.cfg.feedback.probe_fraction, self.cfg.seed, r)

    def augment(self, r: int, out: Path) -> Dict:
        """New problems from the teacher, verified and merged: D_r = D_{r-1} + accepted."""
        self.teacher.usage.reset()
        items = self.distill_set(r - 1)
        by_id = {p.id: p for p in self.feedback_pool(r)}
        split = read_json(out / "split.json")
        to_harder, to_similar = self.choose_targets(
            r, [by_id[i] for i in split["easy"] if i in by_id], [by_id[i] for i in split["hard"] if i in by_id]
        )
        candidates, rejected = [], []
        failures = self._failures(out, "augment")
        for branch, targets, job, n in (
            (BRANCH_HARDER, to_harder, self.teacher.write_harder, self.aug.per_easy),
            (BRANCH_SIMILAR, to_similar, self.teacher.write_similar, self.aug.per_hard),
        ):
            if not targets or n == 0:
                continue
            written = job(targets, n)
            failures.check(
                f"round {r} augment ({branch})",
                "harder" if branch == BRANCH_HARDER else "similar",
                [p.id for p in targets],
                written,
            )
            for parent, replies in zip(targets, written):
                for rep in replies:
                    if rep.ok:
                        candidates.append(
                            Candidate(
                                rep.text.strip(), parent.id, branch, parent.source, dict(rep.meta), parent.question
                            )
                        )
                    else:
                        rejected.append(
                            Rejection(
                                id=f"{parent.id}/{branch}",
                                reason=rep.error or "empty_reply",
                                parent_id=parent.id,
                                branch=branch,
                            )
                        )
        write_jsonl(
            out / "generated.jsonl",
            [
                {"id": c.id, "question": c.question, "parent_id": c.parent_id, "branch": c.branch, "round": r}
                for c in candidates
            ],
        )
        dedup = DedupIndex(self.aug.dedup_threshold)
        for q in {p.question for p in self.train_problems} | {i.question for i in items}:
            dedup.add(q)
        contamination = NgramIndex((p.question for ps in self.eval_sets.values() for p in ps), self.aug.decontam_ngram)
        survivors, screened_out = screen(
            candidates, dedup, contamination, self.aug.max_parent_overlap, self.screen_problems
        )
        distinct = self.distinct_votes
        replies, answers = collect_rationales(
            self.teacher.write_new_rationales,
            [c.problem() for c in survivors],
            self.aug.samples,
            self.aug.min_agree,
            self.cfg.rationale,
            self._extract,
            self.aug.adaptive,
            distinct,
        )
        failures.check(f"round {r} augment (rationales)", "rationale", [c.id for c in survivors], replies)
        accepted, disagreed = accept_by_agreement(survivors, replies, answers, self.aug.min_agree, r, distinct)
        rejected += screened_out + disagreed
        write_jsonl(out / "rejected.jsonl", rejected)
        write_jsonl(out / "distill.jsonl", list(items) + accepted)
        reasons = dict(Counter(x.reason for x in rejected))
        asked = sum(len(x) for x in replies)
        self._check_plan(r, len(to_harder) * self.aug.per_easy + len(to_similar) * self.aug.per_hard, asked)
        log.info(
            "round %d: asked %d harder + %d similar; %d candidates, %d accepted (%d rationale requests), rejected %s",
            r,
            len(to_harder),
            len(to_similar),
            len(candidates),
            len(accepted),
            asked,
            reasons,
        )
        return {
            "asked_harder": len(to_harder),
            "asked_similar": len(to_similar),
            "generated": len(candidates),
            "accepted": len(accepted),
            "accepted_by_branch": dict(Counter(i.branch for i in accepted)),
            "rejected": len(rejected),
            "rejected_by_reason": reasons,
            "distill_size": len(items) + len(accepted),
            "teacher": self.teacher.usage.snapshot(),
            "rationale_requests": asked,
            "rationale_requests_per_accepted": asked / max(1, len(accepted)),
            "answer_conventions": conventions(answers),
            "distinct_votes": distinct,
            "failed_requests": failures.finish(f"round {r} augment"),
        }

    # ------------------------------------------------------------------ choices of the method
    @property
    def distinct_votes(self) -> bool:
        """augmentation.distinct_votes, where null: on unless the new problems' rationales are
        written by rule (fdd.method.verify.vote)."""
        if self.aug.distinct_votes is not None:
            return bool(self.aug.distinct_votes)
        return not self.teacher.by_rule("new_rationale")

    @property
    def screen_problems(self) -> bool:
        """augmentation.screen_problems, where null: on unless the problems are written by rule
        (fdd.method.verify.problem_defect)."""
        if self.aug.screen_problems is not None:
            return bool(self.aug.screen_problems)
        return not (self.teacher.by_rule("harder") and self.teacher.by_rule("similar"))

    def choose_targets(self, r: int, easy: List[Problem], hard: List[Problem]) -> Tuple[List[Problem], List[Problem]]:
        """Which problems to expand, by ablation mode. A problem is expanded at most once per
        branch over a run (its children carry the chain on); ``random`` spends the same budget
        as ``fdd`` on problems picked without looking at the feedback."""
        mode = self.aug.mode
        done_h, done_s = self._expanded(r)
        if mode == "random":
            # Same counts as fdd would ask for, drawn from the whole pool without the labels.
            n_easy = sum(p.id not in done_h for p in easy)
            n_hard = sum(p.id not in done_s for p in hard)
            pool = easy + hard
            rng(self.cfg.seed, "random-targets", r).shuffle(pool)
            easy = [p for p in pool if p.id not in done_h][:n_easy]
            taken = {p.id for p in easy}
            hard = [p for p in pool if p.id not in taken and p.id not in done_s][:n_hard]
        else:
            easy = [p for p in easy if p.id not in done_h] if mode in ("fdd", "easy_only") else []
            hard = [p for p in hard if p.id not in done_s] if mode in ("fdd", "hard_only") else []
        budget = self.aug.budget
        if budget is not None and len(easy) + len(hard) > budget:
            g = rng(self.cfg.seed, "budget", r)
            n_easy = round(budget * len(easy) / (len(easy) + len(hard)))
            easy = g.sample(easy, n_easy)
            hard = g.sample(hard, budget - n_easy)
        return easy, hard

    def _expanded(self, r: int) -> Tuple[set, set]:
        """Ids already expanded (harder, similar) in earlier rounds, read from their outputs."""
        harder, similar = set(), set()
        for q in range(1, r):
            path = self.run_dir / f"round_{q}" / "generated.jsonl"
            if path.is_file():
                for row in read_jsonl(path):
                    (harder if row["branch"] == BRANCH_HARDER else similar).add(row["parent_id"])
        return harder, similar

    def _pool_problems(self, r: int) -> List[Problem]:
        """The problems of D_{r-1}, one per question."""
        seen, pool = set(), []
        for it in self.distill_set(r - 1):
            if it.question not in seen:
                seen.add(it.question)
                pool.append(it.problem())
        return pool

    def feedback_pool(self, r: int) -> List[Problem]:
        """The problems of D_{r-1} (one per question), optionally a seeded subset."""
        pool = self._pool_problems(r)
        if self.cfg.train_subset and len(pool) > self.cfg.train_subset:
            pool = rng(self.cfg.seed, "feedback-subset", r).sample(pool, self.cfg.train_subset)
        return pool

    # ------------------------------------------------------------------ helpers
    def _check_plan(self, r: int, problem_requests: int, rationale_requests: int) -> None:
        """The round asked no more than the plan that dry_run printed (a larger number is a bug)."""
        most = self.plan.problem_calls(r) + self.plan.rationale_calls(r)
        used = problem_requests + rationale_requests
        if problem_requests > self.plan.problem_calls(r) or rationale_requests > self.plan.rationale_calls(r):
            log.warning("round %d: %d teacher requests, more than the %d the call plan allows", r, used, most)
        else:
            log.info("round %d: %d of at most %d planned teacher requests", r, used, most)

    def _failures(self, out: Path, stage: str) -> FailedRequests:
        return FailedRequests(out, stage, float(self.cfg.teacher.max_failed_share))

    def distill_set(self, r: int) -> List[Item]:
        """D_r: round r's distill.jsonl, or D_{r-1} where round r did not augment."""
        for q in range(r, -1, -1):
            path = self.run_dir / f"round_{q}" / "distill.jsonl"
            if path.is_file():
                return read_jsonl(path, Item)
        raise FileNotFoundError(f"no distillation set under {self.run_dir} for round {r}")

    def _extract(self, replies) -> List[List]:
        """Answers of all usable replies in one sandbox batch; failed replies get None."""
        return self.fmt.extract_replies(replies, self.sandbox)

    def _metrics(self, r: int, s: Dict) -> Dict:
        """One row per round for metrics.jsonl, wandb and the plot (its schema: RoundMetrics)."""
        if r == 0:
            init = s["init"]
            return RoundMetrics(
                round=0,
                accuracy=s["evaluate"]["accuracy"] if "evaluate" in s else None,  # the zero-shot starting point
                distill_size=init["distill_size"],
                seed_problems=init["seed_problems"],
                seed_rejected=init["rejected"],
                answer_conventions=init.get("answer_conventions"),
                teacher=init.get("teacher", {}),
                teacher_roles=init.get("teacher_roles"),
                failed_requests=init.get("failed_requests"),
            ).to_row()
        tr, ev, fb, a = s["train"], s["evaluate"], s["feedback"], s.get("augment") or {}
        m = RoundMetrics(
            round=r,
            accuracy=ev["accuracy"],
            trained_on=tr.get("trained_on", tr["distill_size"]),
            train_loss=tr.get("train_loss"),
            train_seconds=tr.get("train_seconds"),
            train_steps=tr.get("train_steps"),
            train_examples=tr.get("train_examples"),
            easy=fb["easy"],
            hard=fb["hard"],
            easy_ratio=fb["easy_ratio"],
            hard_ratio=fb["hard_ratio"],
            distill_size=a.get("distill_size", tr["distill_size"]),
        )
        for name in FIDELITY_KEYS:  # what the student's tokenizer and length limits did to its set
            if name in tr:
                setattr(m, name, tr[name])
        if a:
            m.asked_harder, m.asked_similar = a.get("asked_harder"), a.get("asked_similar")
            m.generated, m.accepted, m.rejected = a["generated"], a["accepted"], a["rejected"]
            m.rejected_by_reason, m.accepted_by_branch = a["rejected_by_reason"], a["accepted_by_branch"]
            m.teacher = a.get("teacher", {})
            m.rationale_requests_per_accepted = a.get("rationale_requests_per_accepted")
            m.answer_conventions = a.get("answer_conventions")
            m.failed_requests = a.get("failed_requests")
        return m.to_row()
