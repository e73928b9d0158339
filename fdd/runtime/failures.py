"""When the teacher (or the sandbox) fails: what a stage records, when it refuses to finish.

Single failed requests are counted rejections. A stage whose every request failed, or more than
``teacher.max_failed_share`` of them, is an outage: it is not marked done, so a rerun retries it
(requests that succeeded replay from the cache). Failed requests are listed in
``<round_dir>/failed_requests.jsonl``; ``teacher.retry_failed=true`` reopens a finished stage that
lost some, and every stage after it.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

from fdd.runtime.io import read_jsonl, write_jsonl
from fdd.runtime.stages import StageRunner

log = logging.getLogger(__name__)


class TeacherUnavailableError(RuntimeError):
    """Every teacher request of a stage failed: the stage is not marked done, so a rerun retries
    it (calls that did succeed are replayed from the cache)."""


# SandboxUnavailableError (raised by Sandbox.run_many) is the sandbox's outage: like a teacher
# outage it propagates out of the stage, which is therefore not marked done, and the rerun retries.


def fail_on_outage(stage: str, replies, max_share: float = 1.0) -> None:
    """Single failed requests are counted rejections; a stage whose every request failed, or more
    than ``max_share`` of them (``teacher.max_failed_share``), is an outage, and finishing it
    would freeze the lost items into the run."""
    flat = [rep for reps in replies for rep in reps]
    _raise_on_outage(stage, [rep.error for rep in flat if _request_failed(rep)], len(flat), max_share)


def _raise_on_outage(stage: str, failed: List[str], asked: int, max_share: float) -> None:
    if asked and len(failed) == asked:
        raise TeacherUnavailableError(
            f"{stage}: all {asked} teacher requests failed (e.g. {failed[0]}); "
            f"rerun the same command when the teacher is reachable"
        )
    if asked and len(failed) > max_share * asked:
        raise TeacherUnavailableError(
            f"{stage}: {len(failed)} of {asked} teacher requests failed (e.g. {failed[0]}), more than "
            f"teacher.max_failed_share={max_share:g}; the stage is not marked done: rerun the same command when the "
            f"teacher is healthy (requests that succeeded are replayed from the cache)"
        )


def _request_failed(rep) -> bool:
    """A request that got no reply (transient: a rerun may succeed), unlike a reply we rejected."""
    return (rep.error or "").startswith("request_failed")


FAILED_REQUESTS = "failed_requests.jsonl"
TEACHER_STAGES = ("init", "augment")  # the stages that ask the teacher, and may record failed requests
ROUND_STAGES = ("train", "evaluate", "feedback", "augment", "metrics")


class FailedRequests:
    """The failed teacher requests of one stage, kept in ``<round_dir>/failed_requests.jsonl``
    (stage, job, problem id, sample index, reason) so a user sees what a stage lost and
    ``teacher.retry_failed=true`` can ask for exactly those again."""

    def __init__(self, out: Path, stage: str, max_share: float) -> None:
        self.path, self.stage, self.max_share = Path(out) / FAILED_REQUESTS, stage, max_share
        self.rows: List[Dict] = []
        self.asked = 0

    def check(self, label: str, job: str, ids: Sequence[str], replies) -> None:
        """Record a batch's failures; an outage of the whole batch ends the stage at once."""
        for pid, reps in zip(ids, replies):
            self.asked += len(reps)
            self.rows += [
                {
                    "stage": self.stage,
                    "job": job,
                    "id": pid,
                    "sample_index": rep.call.get("sample_index", k),
                    "reason": rep.error,
                }
                for k, rep in enumerate(reps)
                if _request_failed(rep)
            ]
        self.write()  # before a possible raise: a failed stage still names what it lost
        fail_on_outage(label, replies)

    def finish(self, label: str) -> int:
        """Refuse to mark the stage done when more than ``max_share`` of its requests failed."""
        self.write()
        _raise_on_outage(label, [r["reason"] for r in self.rows], self.asked, self.max_share)
        if self.rows:
            log.warning(
                "%s: %d of %d teacher requests failed (%s); listed in %s, asked again by a rerun with "
                "teacher.retry_failed=true",
                label,
                len(self.rows),
                self.asked,
                dict(Counter(r["job"] for r in self.rows)),
                self.path,
            )
        return len(self.rows)

    def write(self) -> None:
        if self.rows:
            write_jsonl(self.path, self.rows)
        elif self.path.is_file():
            self.path.unlink()  # a stale list from an earlier attempt of this stage


def reopen_failed(run_dir: Path, stages: StageRunner) -> List[str]:
    """``teacher.retry_failed``: the earliest finished stage that recorded failed requests is
    reopened, with every stage after it (they were computed from the incomplete result). The
    rerun then replays its successful calls from the cache and asks only for the failed ones."""
    rounds = sorted((int(d.name[6:]), d) for d in Path(run_dir).glob("round_*") if d.name[6:].isdigit())
    for r, round_dir in rounds:
        path = round_dir / FAILED_REQUESTS
        rows = read_jsonl(path) if path.is_file() else []
        stage = next((x["stage"] for x in rows if x.get("stage") in TEACHER_STAGES), None)
        if stage is None or not stages.done(r, stage):
            continue
        later = ROUND_STAGES[ROUND_STAGES.index(stage) + 1 :] if stage in ROUND_STAGES else ()
        markers = [stages.marker(r, s) for s in (stage, *later)]
        markers += [m for q, d in rounds if q > r for m in sorted(d.glob("DONE.*"))]
        reopened = [f"{m.parent.name}/{m.name}" for m in markers if m.is_file()]
        for m in markers:
            m.unlink(missing_ok=True)
        log.warning(
            "teacher.retry_failed: round %d %s had %d failed teacher requests; reopening %s",
            r,
            stage,
            len(rows),
            ", ".join(reopened),
        )
        return reopened
    return []
