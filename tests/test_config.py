"""Composition and validation: every group composes, bad values fail at start-up with a clear message."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from fdd.config import ConfigError, validate
from tests.conftest import CONF, ROOT, compose_cfg


def _options(group: str):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["teacher", "student", "dataset", "augmentation", "trainer", "logger"])
def test_every_option_of_every_group_composes_and_validates(group, tmp_path):
    for option in _options(group):
        extra = ["dataset.train.path=x.jsonl"] if (group, option) == ("dataset", "local") else []
        cfg = compose_cfg([f"{group}={option}", *extra], tmp_path)
        if group != "trainer":
            validate(cfg)


def test_paper_command_composes(tmp_path):
    cfg = compose_cfg(["student=flan-t5-base", "rounds=4"], tmp_path)
    obj = validate(cfg)
    assert obj.rounds == 4 and obj.student.pretrained == "google/flan-t5-base" and obj.student.arch == "seq2seq"


def test_cfg_job_from_the_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "fdd.main", "student=flan-t5-base", "rounds=4", "--cfg", "job"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "pretrained: google/flan-t5-base" in out.stdout and "rounds: 4" in out.stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("rounds=-1", r"rounds must be in \[0, 1000\]"),
        ("rounds=1000000000000", r"rounds must be in \[0, 1000\], got 1000000000000"),  # dry_run grew to 8 GB
        ("augmentation.min_agree=5", "min_agree"),
        ("rationale=tree", "rationale must be one of"),
        ("teacher.cache=sometimes", "teacher.cache"),
        ("augmentation.mode=magic", "augmentation.mode"),
        ("augmentation.budget=-1", "augmentation.budget"),
        ("augmentation.decontam_ngram=0", "decontam_ngram"),
        ("augmentation.dedup_threshold=0", "dedup_threshold"),
        ("train_subset=-5", "train_subset"),
    ],
)
def test_bad_values_are_refused(override, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate(compose_cfg([override], tmp_path))


@pytest.mark.parametrize(
    "override, message",
    [
        ("student.overlong=clip", "student.overlong must be one of drop|truncate|error, got 'clip'"),
        ("student.generation.backend=tgi", "student.generation.backend must be one of hf|vllm, got 'tgi'"),
        ("feedback.signal=oracle", "feedback.signal must be one of trained|probe, got 'oracle'"),
        ("final.select=first", "final.select must be one of last|best, got 'first'"),
        ("logger.mode=cloud", "logger.mode must be one of auto|offline|online|disabled, got 'cloud'"),
        ("resume=maybe", "resume must be one of auto|force|never, got 'maybe'"),
        ("+dataset.eval.mine={loader: csv, path: a.csv}", "dataset.eval.mine.loader must be one of gsm8k|"),
    ],
)
def test_a_value_outside_a_fields_choices_is_named_with_the_choices(override, message, tmp_path):
    """The choices are declared with the field (fdd.config._one_of) and checked in one place."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_cfg([override], tmp_path))


def test_every_closed_string_field_declares_its_choices():
    from dataclasses import fields

    from fdd import config

    declared = {
        (cls.__name__, f.name)
        for cls in (
            config.FDDConfig,
            config.StudentConfig,
            config.GenerationConfig,
            config.TeacherConfig,
            config.VLLMTeacherConfig,
            config.AugmentationConfig,
            config.FeedbackConfig,
            config.LoggerConfig,
            config.FinalConfig,
            config.SourceConfig,
        )
        for f in fields(cls)
        if f.metadata.get(config.CHOICES)
    }
    assert {
        ("FDDConfig", "rationale"),
        ("FDDConfig", "resume"),
        ("StudentConfig", "arch"),
        ("StudentConfig", "tokenizer"),
        ("StudentConfig", "overlong"),
        ("GenerationConfig", "backend"),
        ("TeacherConfig", "cache"),
        ("TeacherConfig", "cache_on_corrupt"),
        ("VLLMTeacherConfig", "engine_release"),
        ("AugmentationConfig", "mode"),
        ("FeedbackConfig", "signal"),
        ("LoggerConfig", "mode"),
        ("FinalConfig", "select"),
        ("SourceConfig", "loader"),
    } <= declared


def test_typo_and_wrong_type_fail_at_composition(tmp_path):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_cfg(["student.learning_rate=1e-3"], tmp_path)
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_cfg(["rounds=three"], tmp_path)
    with pytest.raises(ConfigCompositionException, match="student"):
        compose_cfg(["student=gpt-17"], tmp_path)


def _main(*args, env=None, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "fdd.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_bad_config_is_one_clear_line_before_any_work(tmp_path):
    out = _main("rounds=-1", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode == 2
    assert "fdd: error: rounds must be in [0, 1000]" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "round_0").exists()


def test_unreachable_hub_model_fails_with_a_clear_message(tmp_path):
    # HF_HUB_OFFLINE makes the failure immediate; without it the Hub client retries for ~40 s first.
    out = _main("student=flan-t5-base", "rounds=4", f"hydra.run.dir={tmp_path}/run", env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Could not download the model 'google/flan-t5-base'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "round_0").exists()  # refused before any work


def test_dry_run_counts_teacher_calls(tmp_path):
    out = _main("dry_run=true", "rounds=3", f"hydra.run.dir={tmp_path}/run", "logger=none")
    assert out.returncode == 0, out.stderr
    assert "init_rationale_calls: 300" in out.stdout and "augmenting_rounds: 2" in out.stdout


def test_ablation_variants_differ_only_in_mode(tmp_path):
    """Verification rules must be the same in every augmentation variant, or an ablation is confounded."""
    base = validate(compose_cfg(["augmentation=fdd"], tmp_path)).augmentation
    for option in ("none", "easy_only", "hard_only", "random"):
        other = validate(compose_cfg([f"augmentation={option}"], tmp_path)).augmentation
        assert {**vars(other), "mode": base.mode} == vars(base), option


def test_a_pretrained_student_with_the_simulator_says_so_in_one_line(tmp_path):
    """`student=flan-t5-base rounds=4` alone keeps the embedded default's teacher and data (issue 24)."""
    from fdd.main import setup_notice

    notice = setup_notice(validate(compose_cfg(["student=flan-t5-base", "rounds=4"], tmp_path)))
    assert notice.startswith("student=flan-t5-base runs with the simulator teacher (teacher=oracle), dataset=synthetic")
    assert "experiment=paper_flan_t5_base" in notice and "\n" not in notice
    assert setup_notice(validate(compose_cfg([], tmp_path))) is None  # the embedded default is what it says
    assert setup_notice(validate(compose_cfg(["experiment=paper_flan_t5_base"], tmp_path))) is None


def test_trainer_gpu_without_a_gpu_stops_before_any_work(tmp_path):
    """It failed at the first fit, after the init stage's teacher calls were paid for (issue 23)."""
    import torch

    from fdd.main import preflight

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: trainer=gpu is usable here")
    cfg = validate(compose_cfg(["trainer=gpu"], tmp_path))
    with pytest.raises(ConfigError, match=r"trainer.accelerator=gpu but torch sees no usable CUDA device"):
        preflight(cfg)
    preflight(validate(compose_cfg([], tmp_path)))  # trainer=cpu: nothing to check
