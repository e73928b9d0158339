"""End to end: OpenAITeacher against a real LLM served by ``transformers serve`` (the embedded
SmolLM2-135M-Instruct), requests counted by a proxy in front of the server.

Run: ``pytest tests/test_teacher_serve.py -m slow -v`` (about 1-2 minutes on 2 CPU cores).
"""

from __future__ import annotations

import pytest

from fdd.config import TeacherConfig
from fdd.teachers import build_teacher
from fdd.types import Problem

try:
    from tests.serve_fixtures import serve_smollm2, smollm2_folder  # noqa: F401 - pytest fixtures
except ImportError:
    from serve_fixtures import serve_smollm2, smollm2_folder  # noqa: F401

pytestmark = pytest.mark.slow

PROBLEMS = [
    Problem("s1", "Tom has 3 apples and buys 5 more. How many apples does he have now?", 8.0, "test"),
    Problem("s2", "A box holds 4 rows of 6 eggs. How many eggs are in the box?", 24.0, "test"),
]


def _teacher(served, cache_dir):
    cfg = TeacherConfig(
        backend="openai",
        model=served.model,
        base_urls=[served.url],
        max_tokens=48,
        temperature=0.7,
        top_p=0.95,
        concurrency=4,
        timeout_s=300,
        max_retries=2,
    )
    t = build_teacher(cfg, cache_dir=str(cache_dir), seed=0)
    t.show_progress = False
    return t


def _run_all(t):
    return (t.write_rationales(PROBLEMS, 2, "pot"), t.write_harder(PROBLEMS, 1), t.write_similar(PROBLEMS, 1))


def test_openai_teacher_against_transformers_serve(serve_smollm2, tmp_path):
    served = serve_smollm2
    before = served.proxy.requests
    with _teacher(served, tmp_path) as t:
        rat, harder, similar = _run_all(t)
        sent = served.proxy.requests - before
        assert sent == 2 * 2 + 2 + 2, served.proxy.statuses
        assert set(served.proxy.statuses) == {200}, served.proxy.statuses
        for group in (rat, harder, similar):
            assert len(group) == len(PROBLEMS)
            for replies in group:
                for r in replies:
                    # a 135M model may ignore the reply format, but every reply is text or a reason
                    assert r.ok or r.error in ("unparseable", "empty_reply"), r
        assert all(r.ok for replies in rat for r in replies)  # raw rationale text, whatever it says
        u = t.usage.snapshot()
        assert u["rationale"]["requests"] == 4 and u["harder"]["requests"] == 2 and u["similar"]["requests"] == 2
        assert u["rationale"]["prompt_tokens"] > 0 and u["rationale"]["completion_tokens"] > 0
        # per-request seeds + sampling: the two samples of a problem are (almost surely) different
        assert any(rs[0].text != rs[1].text for rs in rat)

    # Only completed, non-empty replies are cached (failures are retried by a rerun).
    not_cached = sum(
        1
        for g in (rat, harder, similar)
        for rs in g
        for r in rs
        if r.error == "empty_reply" or (r.error or "").startswith("request_failed")
    )
    assert not_cached == 0

    # A second teacher on the same cache (a rerun) sends nothing to the server.
    before = served.proxy.requests
    with _teacher(served, tmp_path) as t2:
        rat2, harder2, similar2 = _run_all(t2)
        assert served.proxy.requests == before
        assert [[r.text for r in rs] for rs in rat2] == [[r.text for r in rs] for rs in rat]
        assert [[r.text for r in rs] for rs in harder2] == [[r.text for r in rs] for rs in harder]
        assert t2.usage.total("requests") == 0 and t2.usage.total("cached") == 8
