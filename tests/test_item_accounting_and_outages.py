"""A round of FDD with ``teacher=openai`` against a server that fails in every way it can
(429 with Retry-After, 500, hangs, malformed JSON, empty replies): the round completes, and every
seed problem and every new problem ends either in the distillation set or rejected with a reason."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from fdd.main import run
from fdd.runtime.failures import TeacherUnavailableError
from fdd.runtime.io import read_json, read_jsonl
from tests.conftest import TINY, compose_cfg
from tests.fake_openai_server import FakeOpenAIServer

FAULTS = {"429": 0.1, "500": 0.1, "hang": 0.05, "malformed": 0.1, "empty": 0.1}


def competent_teacher(body: dict) -> str:
    """Solves and writes "What is a plus b ...?" problems: sums, harder = one more term, similar = new
    numbers. Its samples differ as an LLM's do (a sum written two ways), so distinct votes can agree."""
    user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    question = user.rsplit("Question:", 1)[-1] if "Question:" in user else user.split("Given problem:", 1)[-1]
    nums = [int(n) for n in re.findall(r"\d+", question.split("\n\n")[0])]
    if "Python program" in user:
        if (body.get("seed") or 0) % 2:
            return "```python\ndef solution():\n    return sum([" + ", ".join(map(str, nums)) + "])\n```"
        return "```python\ndef solution():\n    return " + " + ".join(map(str, nums)) + "\n```"
    if "more complex version" in user:
        nums.append(1 + (body.get("seed") or 0) % 9)
    else:
        nums = [n + 1 + (body.get("seed") or 0) % 5 for n in nums]
    return "Problem: Sam adds up his savings. What is " + " plus ".join(map(str, nums)) + " in dollars?"


def test_a_round_completes_and_accounts_for_every_item(tmp_path):
    data = tmp_path / "sums.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"What is {a} plus {b}?", "answer": a + b}) + "\n"
            for a, b in [(2, 3), (4, 4), (7, 1), (5, 6), (9, 2), (3, 8), (6, 6), (1, 9)]
        )
    )
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(competent_teacher, faults=FAULTS, retry_after="0.05", hang_s=2.0, seed=3) as srv:
        cfg = compose_cfg(
            [a for a in TINY if not a.startswith("dataset.")]
            + [
                "teacher=openai",
                f"teacher.base_urls=[{srv.url}]",
                "teacher.model=fake-model",
                "teacher.timeout_s=0.5",
                "teacher.max_retries=1",
                "teacher.concurrency=8",
                "dataset=local",
                f"dataset.train.path={data}",
                "augmentation.seed_samples=2",
                "rounds=2",
                "teacher.max_failed_share=1.0",
            ],
            run_dir,
        )  # finish despite the losses: this test accounts for them
        run(cfg)
    assert set(srv.fault_counts) == set(FAULTS)  # every fault really happened

    # initialization: each seed problem is in D0 or rejected with its reason
    d0 = read_jsonl(run_dir / "round_0" / "distill.jsonl")
    rejected0 = read_jsonl(run_dir / "round_0" / "rejected.jsonl")
    seeds = {p.split("#")[0] for p in (r["id"] for r in d0)}
    assert len(seeds | {r["id"] for r in rejected0}) == 8 and not seeds & {r["id"] for r in rejected0}
    assert all(r["reason"] for r in rejected0)

    # round 1: every problem asked for is a candidate or a failed request; every candidate is accepted or rejected
    summary = read_json(run_dir / "round_1" / "DONE.augment")
    generated = read_jsonl(run_dir / "round_1" / "generated.jsonl")
    rejected = read_jsonl(run_dir / "round_1" / "rejected.jsonl")
    accepted = [i for i in read_jsonl(run_dir / "round_1" / "distill.jsonl") if i["round"] == 1]
    failed_asks = [r for r in rejected if r["id"].endswith(("/easy-harder", "/hard-similar"))]
    assert len(generated) + len(failed_asks) == summary["asked_harder"] + summary["asked_similar"] > 0
    verdicts = Counter([i["id"] for i in accepted] + [r["id"] for r in rejected if r not in failed_asks])
    assert set(verdicts) == {g["id"] for g in generated} and set(verdicts.values()) == {1}
    assert all(r["reason"] for r in rejected) and accepted  # the round produced data despite the faults
    assert summary["rejected"] == len(rejected) and summary["accepted"] == len(accepted)
    # every request that failed is listed for a rerun with teacher.retry_failed=true
    listed = read_jsonl(run_dir / "round_1" / "failed_requests.jsonl") if summary["failed_requests"] else []
    assert len(listed) == summary["failed_requests"]
    assert sorted(
        f"{f['id']}/{'easy-harder' if f['job'] == 'harder' else 'hard-similar'}"
        for f in listed
        if f["job"] != "rationale"
    ) == sorted(r["id"] for r in failed_asks)


def test_a_total_outage_fails_the_stage_and_a_rerun_recovers(tmp_path):
    """If every request of a stage fails, the stage is not marked done: rerunning once the teacher
    is back finishes the run (instead of freezing an empty distillation set into it)."""
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(competent_teacher, faults={"500": 1.0}) as srv:
        overrides = sums_run_overrides(tmp_path, srv, [(2, 3), (4, 4), (7, 1)])
        with pytest.raises(TeacherUnavailableError, match="init: all 3 teacher requests failed"):
            run(compose_cfg(overrides, run_dir))
        assert not (run_dir / "round_0" / "DONE.init").exists()
        srv.faults = {}  # the teacher is back
        rows = run(compose_cfg(overrides, run_dir))
    assert rows[0]["distill_size"] == 3 and (run_dir / "round_1" / "DONE.metrics").is_file()


def sums_run_overrides(tmp_path, srv, sums, *extra):
    """A one-round run whose seed problems are ``a plus b`` sums (a local data file) and whose
    teacher is the fake OpenAI-compatible server ``srv``, with no retries."""
    data = tmp_path / "sums.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"What is {a} plus {b}?", "answer": a + b}) + "\n" for a, b in sums)
    )
    return [a for a in TINY if not a.startswith("dataset.")] + [
        "teacher=openai",
        f"teacher.base_urls=[{srv.url}]",
        "teacher.model=fake-model",
        "teacher.max_retries=0",
        "dataset=local",
        f"dataset.train.path={data}",
        "rounds=1",
        *extra,
    ]
