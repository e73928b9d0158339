"""The paper's experiment configs compose and, on the original files, count the paper's data."""

from __future__ import annotations

import pytest

from fdd.config import validate
from fdd.data import load_problems
from fdd.main import dry_run
from tests.conftest import CONF, compose_cfg

PAPER = sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml"))


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_experiment_dry_run_on_the_original_files(experiment, shared_data, tmp_path, capsys):
    cfg = compose_cfg(
        [
            f"experiment={experiment}",
            f"dataset.path={shared_data}",
            "teacher.base_urls=[http://127.0.0.1:9/v1]",
            "teacher.model=teacher",
        ],
        tmp_path,
    )
    obj = validate(cfg)
    assert obj.rounds == 4 and obj.teacher.backend == "openai"
    train, evals = load_problems(obj)
    assert len(train) == 7473
    assert {k: len(v) for k, v in evals.items()} == {"gsm8k": 1319, "svamp": 1000, "asdiv": 2093, "multiarith": 600}
    counts = dry_run(obj, train, evals)
    assert counts["init_rationale_calls"] == 7473 * obj.augmentation.seed_samples
    assert counts["augmenting_rounds"] == 3


def test_real_cpu_experiment_sizes_on_the_original_files(shared_data, tmp_path):
    """experiments/real_data.sh and real_teacher.sh share experiment=real_cpu: 40 seeds, 12 per
    held-out set, limits that hold real rationales (p95 216 SmolLM2 tokens, issue 22)."""
    obj = validate(compose_cfg(["experiment=real_cpu", f"dataset.path={shared_data}", "teacher=embedded"], tmp_path))
    train, evals = load_problems(obj)
    assert len(train) == 40 and {k: len(v) for k, v in evals.items()} == dict.fromkeys(evals, 12)
    assert set(evals) == {"gsm8k", "svamp", "asdiv", "multiarith"} and obj.rounds == 2
    assert obj.student.max_target_len >= 256 and obj.student.generation.max_new_tokens >= 216
    assert obj.teacher.concurrency is None and obj.teacher.stream  # the local-server preset
