"""experiments/real_data_table.py: the README table from a run's metrics.jsonl."""

from __future__ import annotations

import importlib.util

from fdd.runtime.io import write_jsonl
from tests.conftest import ROOT


def test_table_puts_zero_shot_first_and_reports_acceptance(tmp_path):
    spec = importlib.util.spec_from_file_location("real_data_table", ROOT / "experiments" / "real_data_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    write_jsonl(
        tmp_path / "metrics.jsonl",
        [
            {
                "round": 0,
                "distill_size": 38,
                "seed_problems": 40,
                "seed_rejected": 2,
                "answer_conventions": {"solution": 30, "print": 8},
                "accuracy": {"gsm8k": 0.0, "svamp": 0.25},
            },
            {
                "round": 1,
                "trained_on": 38,
                "accuracy": {"gsm8k": 0.125, "svamp": 0.5},
                "generated": 4,
                "accepted": 1,
                "rejected_by_reason": {"disagree": 3},
                "teacher": {"similar": {"requests": 5}, "new_rationale": {"requests": 8}},
                "rationale_requests_per_accepted": 8.0,
            },
        ],
    )
    lines = mod.table(tmp_path).splitlines()
    assert lines[0] == "| round | gsm8k | svamp | trained on |"
    assert lines[2] == "| 0 (zero-shot) | 0.000 | 0.250 | - |"
    assert lines[3] == "| 1 | 0.125 | 0.500 | 38 |"
    text = mod.table(tmp_path)
    assert "5 new problems asked of the served teacher, 4 written (parseable), 1 accepted (20.0% of asked)" in text
    assert "D0: 38 rationales for 38 of 40 seed problems (2 rejected); answers read as {'solution': 30" in text
    assert "8.0 rationale requests per accepted problem" in text
