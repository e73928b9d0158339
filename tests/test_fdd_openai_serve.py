"""Initialization plus one FDD round with ``teacher=openai`` against a real OpenAI-compatible
server (``transformers serve`` over the embedded SmolLM2 weights); repeating it sends nothing."""

from __future__ import annotations

import pytest

from fdd.main import run
from fdd.runtime.io import read_jsonl
from tests.conftest import ROOT, TINY, compose_cfg
from tests.serve_fixtures import serve_smollm2, smollm2_folder  # noqa: F401  (pytest fixtures)

# A 135M model rarely writes a runnable program, but it can add small numbers in words (CoT):
# the point here is the OpenAI path, the cache and the loop, not the teacher's quality.
PROBLEMS = ROOT / "tests" / "fixtures" / "trivial_problems.jsonl"


def _cfg(overrides, run_dir):
    return compose_cfg([a for a in TINY if not a.startswith("dataset.")] + overrides, run_dir)


@pytest.mark.slow
def test_init_and_one_round_with_a_served_model_then_zero_requests(serve_smollm2, tmp_path):
    served = serve_smollm2
    overrides = [
        "teacher=openai",
        f"teacher.base_urls=[{served.url}]",
        f"teacher.model={served.model}",
        "rationale=cot",
        "teacher.max_tokens=48",
        "teacher.concurrency=4",
        "teacher.timeout_s=300",
        "dataset=local",
        f"dataset.train.path={PROBLEMS}",
        "augmentation.seed_samples=2",
        "augmentation.samples=2",
        "augmentation.decontam_ngram=50",
        "augmentation.min_agree=1",
        "rounds=2",
        "student.epochs=3",
    ]
    overrides.append(f"teacher.cache_dir={tmp_path / 'teacher-cache'}")
    before = served.proxy.requests
    try:
        run(_cfg(overrides, tmp_path / "first"))
    except Exception as exc:  # a 135M teacher may solve none of the seed problems: say so, don't hide it
        if "distillation set is empty" in str(exc):
            pytest.fail(f"SmolLM2 solved none of the trivial seed problems: {exc}")
        raise
    sent = served.proxy.requests - before
    first = tmp_path / "first"
    assert (first / "round_1" / "DONE.augment").is_file() and (first / "round_2" / "DONE.metrics").is_file()
    usage = read_jsonl(first / "metrics.jsonl")
    asked = usage[0]["teacher"]["rationale"]["requests"] + sum(
        v.get("requests", 0) for row in usage[1:] for v in row.get("teacher", {}).values()
    )
    assert sent == asked > 0  # every request the run counted reached the server, once

    # the same run again (resumes: all done) and the same config in a new run directory sharing the cache
    mark = served.proxy.requests
    run(_cfg(overrides, first))
    run(_cfg(overrides, tmp_path / "second"))
    assert served.proxy.requests == mark
    assert read_jsonl(tmp_path / "second" / "round_1" / "distill.jsonl") == read_jsonl(
        first / "round_1" / "distill.jsonl"
    )
