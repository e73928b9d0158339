"""Failed teacher requests are never frozen into a finished run: a stage records them in
``failed_requests.jsonl``; more than ``teacher.max_failed_share`` of them keeps the stage from
being marked done; a rerun (or ``teacher.retry_failed=true``) asks again for exactly those."""

from __future__ import annotations

import pytest

from fdd.main import run
from fdd.runtime.failures import FAILED_REQUESTS, TeacherUnavailableError, reopen_failed
from fdd.runtime.io import read_json, read_jsonl, write_json, write_jsonl
from fdd.runtime.stages import StageRunner
from tests.conftest import TINY, compose_cfg
from tests.fake_openai_server import FakeOpenAIServer
from tests.test_item_accounting_and_outages import competent_teacher, sums_run_overrides

SUMS = [(2, 3), (4, 4), (7, 1), (5, 6), (9, 2), (3, 8), (6, 6), (1, 9)]
FLAKY = ("What is 2 plus 3", "What is 4 plus 4")  # the teacher fails these until it is healed


def setup(tmp_path, srv, *extra):
    return sums_run_overrides(tmp_path, srv, SUMS, *extra)


def flaky_server(healthy: dict) -> FakeOpenAIServer:
    def fault_fn(body, attempt):
        user = body["messages"][-1]["content"]
        return None if healthy["now"] or not any(q in user for q in FLAKY) else "500"

    return FakeOpenAIServer(competent_teacher, fault_fn=fault_fn)


def test_a_stage_over_the_failed_share_is_not_done_and_a_rerun_recovers(tmp_path, one_thread):
    run_dir, healthy = tmp_path / "run", {"now": False}
    with flaky_server(healthy) as srv:
        overrides = setup(tmp_path, srv)  # max_failed_share: the default 0.1 < 2 of 8
        with pytest.raises(
            TeacherUnavailableError, match=r"init: 2 of 8 teacher requests failed .*max_failed_share=0.1"
        ):
            run(compose_cfg(overrides, run_dir))
        assert not (run_dir / "round_0" / "DONE.init").exists()
        failed = read_jsonl(run_dir / "round_0" / FAILED_REQUESTS)
        assert [(f["stage"], f["job"], f["sample_index"], f["reason"]) for f in failed] == [
            ("init", "rationale", 0, "request_failed: HTTP 500")
        ] * 2
        healthy["now"] = True
        srv.reset_stats()
        rows = run(compose_cfg(overrides, run_dir))
        assert srv.requests == 2  # only the lost ones; the other 6 came from the cache
    assert rows[0]["distill_size"] == 8 and rows[0]["teacher"]["rationale"]["cached"] == 6
    assert not (run_dir / "round_0" / FAILED_REQUESTS).exists()
    assert read_json(run_dir / "round_0" / "DONE.init")["failed_requests"] == 0


def test_retry_failed_asks_again_and_redoes_what_depends_on_them(tmp_path, one_thread):
    run_dir, healthy = tmp_path / "run", {"now": False}
    with flaky_server(healthy) as srv:
        overrides = setup(tmp_path, srv, "teacher.max_failed_share=0.5")
        rows = run(compose_cfg(overrides, run_dir))  # 2 of 8 failed: under the share, the run finishes
        assert rows[0]["distill_size"] == 6 and read_json(run_dir / "round_1" / "DONE.train")["distill_size"] == 6
        assert rows[0]["teacher"]["rationale"]["failed_http_5xx"] == 2
        assert len(read_jsonl(run_dir / "round_0" / FAILED_REQUESTS)) == 2
        assert read_json(run_dir / "round_0" / "DONE.init")["failed_requests"] == 2

        healthy["now"] = True
        srv.reset_stats()
        run(compose_cfg(overrides, run_dir))  # a plain rerun of a finished run changes nothing
        assert srv.requests == 0 and read_json(run_dir / "round_1" / "DONE.train")["distill_size"] == 6

        rows = run(compose_cfg(overrides + ["teacher.retry_failed=true"], run_dir))
        assert srv.requests == 2
    assert rows[0]["distill_size"] == 8 and len(read_jsonl(run_dir / "round_0" / "distill.jsonl")) == 8
    assert read_json(run_dir / "round_1" / "DONE.train")["distill_size"] == 8  # retrained on the recovered set
    assert rows[1]["trained_on"] == 8
    assert not (run_dir / "round_0" / FAILED_REQUESTS).exists()


def test_reopen_failed_reopens_the_stage_and_everything_after_it(tmp_path):
    stages = StageRunner(tmp_path)
    done = {0: ["init"], 1: ["train", "evaluate", "feedback", "augment", "metrics"], 2: ["train", "evaluate"]}
    for r, names in done.items():
        for name in names:
            write_json(stages.marker(r, name), {})
    assert reopen_failed(tmp_path, stages) == []  # nothing failed: nothing reopened
    write_jsonl(
        tmp_path / "round_1" / FAILED_REQUESTS,
        [{"stage": "augment", "job": "harder", "id": "p1", "sample_index": 0, "reason": "request_failed: timeout"}],
    )
    assert reopen_failed(tmp_path, stages) == [
        "round_1/DONE.augment",
        "round_1/DONE.metrics",
        "round_2/DONE.evaluate",
        "round_2/DONE.train",
    ]
    left = sorted(f"{m.parent.name}/{m.name}" for m in tmp_path.glob("round_*/DONE.*"))
    assert left == ["round_0/DONE.init", "round_1/DONE.evaluate", "round_1/DONE.feedback", "round_1/DONE.train"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("teacher.max_failed_share=1.5", "max_failed_share must be in"),
        ("teacher.cache_on_corrupt=ignore", "cache_on_corrupt must be"),
    ],
)
def test_failure_options_are_validated(tmp_path, override, message):
    from fdd.config import ConfigError, validate

    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg(TINY + ["teacher=openai", override], tmp_path / "run"))
