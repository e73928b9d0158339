"""Each teacher backend and the trainer group have their own typed schema; the registries are the
one source of valid names; the schemas are not offered as options of the groups."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from fdd.config import (
    TEACHER_CONFIGS,
    ConfigError,
    OpenAITeacherConfig,
    OracleTeacherConfig,
    TeacherConfig,
    TrainerConfig,
    VLLMTeacherConfig,
    validate,
)
from fdd.runtime import registries
from tests.conftest import CONF, ROOT, compose_cfg


def _main(*args):
    return subprocess.run(
        [sys.executable, "-m", "fdd.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _options(group: str):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_help_lists_no_schema_option():
    out = _main("--help")
    assert out.returncode == 0, out.stderr
    groups = out.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "teacher: embedded, gold, hf, openai, oracle, smollm2, vllm" in groups
    assert "trainer: cpu, ddp, ddp_cpu, gpu" in groups
    assert "schema" not in groups


@pytest.mark.parametrize("group", ["teacher", "trainer"])
def test_every_teacher_and_trainer_option_composes_and_validates(group, tmp_path):
    for option in _options(group):
        obj = validate(compose_cfg([f"{group}={option}"], tmp_path))
        if group == "teacher":
            assert type(obj.teacher) is TEACHER_CONFIGS[obj.teacher.backend], option
        else:
            assert isinstance(obj.trainer, TrainerConfig) and dict(obj.trainer)["accelerator"] in ("cpu", "gpu")


def test_each_teacher_backend_shows_only_its_own_keys(tmp_path):
    keys = {b: set(compose_cfg([f"teacher={b}"], tmp_path).teacher) for b in ("oracle", "openai", "vllm", "hf", "gold")}
    common = {"backend", "model", "cache", "cache_dir", "prompts", "roles", "price", "max_failed_share"}
    assert all(common <= k for k in keys.values())
    assert "error_rate" in keys["oracle"] and "base_urls" not in keys["oracle"] and "vllm" not in keys["oracle"]
    assert {"base_urls", "api_key", "concurrency", "timeout_s", "max_retries"} <= keys["openai"]
    assert not {"error_rate", "gguf_file", "vllm", "engine_release", "batch_size"} & keys["openai"]
    assert {"vllm", "engine_release", "gguf_file"} <= keys["vllm"] and "base_urls" not in keys["vllm"]
    assert {"gguf_file", "batch_size", "dtype"} <= keys["hf"] and "engine_release" not in keys["hf"]
    assert keys["gold"] == keys["oracle"] - {"error_rate"}


def test_a_misspelled_or_foreign_teacher_key_fails_at_composition(tmp_path):
    with pytest.raises(ConfigCompositionException, match="bse_urls"):
        compose_cfg(["teacher=openai", "teacher.bse_urls=[http://h:8000/v1]"], tmp_path)
    with pytest.raises(ConfigCompositionException, match="error_rate"):  # an oracle key
        compose_cfg(["teacher=openai", "teacher.error_rate=0.2"], tmp_path)
    with pytest.raises(ConfigCompositionException, match="base_urls"):  # an openai key
        compose_cfg(["teacher=oracle", "teacher.base_urls=[http://h:8000/v1]"], tmp_path)
    out = _main("teacher=openai", "teacher.bse_urls=[http://h:8000/v1]")
    assert out.returncode != 0 and "bse_urls" in out.stderr and "Traceback" not in out.stderr


def test_a_backend_that_does_not_match_its_config_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="teacher.backend=openai does not match"):
        validate(compose_cfg(["teacher=oracle", "teacher.backend=openai"], tmp_path))


def test_any_trainer_argument_can_be_set_and_a_wrong_one_fails(tmp_path):
    obj = validate(compose_cfg(["trainer.min_epochs=2", "trainer.deterministic=true"], tmp_path))
    assert dict(obj.trainer) == {
        "accelerator": "cpu",
        "devices": 1,
        "precision": 32,
        "gradient_clip_val": 1.0,
        "accumulate_grad_batches": 1,
        "log_every_n_steps": 10,
        "enable_progress_bar": True,
        "min_epochs": 2,
        "deterministic": True,
    }
    assert obj.trainer.get("strategy", "auto") == "auto"  # unset: Lightning's default
    with pytest.raises(ConfigCompositionException, match="min_epoch"):
        compose_cfg(["trainer.min_epoch=2"], tmp_path)
    assert (
        validate(compose_cfg(["trainer.max_epochs=5"], tmp_path)).trainer["max_epochs"] == 5
    )  # wins over student.epochs
    with pytest.raises(ConfigError, match="trainer.default_root_dir is set by the run directory"):
        validate(compose_cfg(["trainer.default_root_dir=/tmp/x"], tmp_path))
    out = _main("trainer.logger=true", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode == 2 and "fdd: error: trainer.logger is set by the run" in out.stderr
    assert "Traceback" not in out.stderr
    out = _main("trainer.max_epoch=5", f"hydra.run.dir={tmp_path}/run")
    assert out.returncode != 0 and "max_epoch" in out.stderr and "Traceback" not in out.stderr


def test_trainer_schema_is_lightnings_trainer_signature():
    pl = pytest.importorskip("pytorch_lightning")
    params = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    assert {f.name for f in dataclasses.fields(TrainerConfig)} == params


def test_registries_are_the_one_source_of_names():
    import fdd.config as config
    import fdd.data
    import fdd.teachers
    from fdd.reasoning.formats import FORMATS

    assert fdd.data.LOADERS is registries.DATA_LOADERS
    assert set(TEACHER_CONFIGS) == set(registries.TEACHER_BACKENDS) == set(config.TEACHER_BACKENDS)
    assert set(config.LOADERS) == set(registries.DATA_LOADERS)
    assert set(config.RATIONALE_FORMATS) == set(FORMATS) == set(registries.RATIONALE_FORMATS)
    for name, target in registries.RATIONALE_FORMATS.items():
        assert registries.resolve(target)().name == name
    for name, backend in registries.TEACHER_BACKENDS.items():  # one entry: config class + implementation
        assert TEACHER_CONFIGS[name].__name__ == backend.config and TEACHER_CONFIGS[name]().backend == name
    for target in [*registries.DATA_LOADERS.values(), registries.TEACHER_BACKENDS["oracle"].teacher]:
        assert callable(registries.resolve(target)), target


def test_teacher_config_builds_the_backends_class():
    cfg = TeacherConfig(backend="openai", model="m", base_urls=["http://h/v1"], concurrency=2)
    assert type(cfg) is OpenAITeacherConfig and cfg.base_urls == ["http://h/v1"]
    assert type(TeacherConfig(backend="oracle", error_rate=0.2)) is OracleTeacherConfig
    assert type(dataclasses.replace(cfg, model="n")) is OpenAITeacherConfig
    assert copy.deepcopy(cfg) == cfg and type(copy.deepcopy(cfg)) is OpenAITeacherConfig
    with pytest.raises(TypeError, match="base_urls"):
        TeacherConfig(backend="vllm", base_urls=["http://h/v1"])
    assert type(TeacherConfig(backend="vllm", engine_release="sleep")) is VLLMTeacherConfig


def test_roles_are_checked_by_their_backends_schema(tmp_path):
    from fdd.teachers.roles import resolve_roles

    obj = validate(compose_cfg(["teacher=openai", "teacher.roles.rationale=gold"], tmp_path))
    roles = resolve_roles(obj.teacher)
    assert roles["rationale"].backend == "gold" and type(roles["harder"]) is OpenAITeacherConfig
    with pytest.raises(ConfigError, match="bse_urls"):
        resolve_roles(TeacherConfig(backend="oracle", roles={"problems": {"config": "openai", "bse_urls": []}}))
    with pytest.raises(ConfigError, match="error_rate"):  # not an openai key
        resolve_roles(TeacherConfig(backend="oracle", roles={"problems": {"backend": "openai", "error_rate": 0.1}}))


def test_dry_run_with_roles_on_an_openai_teacher(tmp_path):
    out = _main(
        "dry_run=true",
        "rounds=2",
        "teacher=openai",
        "teacher.roles.rationale=oracle",
        "logger=none",
        f"hydra.run.dir={tmp_path}/run",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "init_rationale_calls: 300" in out.stdout


def test_the_student_passes_only_the_trainer_arguments_that_are_set(tmp_path):
    from omegaconf import OmegaConf

    from fdd.reasoning.formats import get_format
    from fdd.students.student import Student

    cfg = compose_cfg(["trainer=ddp_cpu", "trainer.min_epochs=2"], tmp_path)
    obj = validate(cfg)
    for trainer_cfg in (obj.trainer, OmegaConf.to_container(cfg.trainer)):  # the schema, or a plain dict of it
        kw = Student(obj.student, trainer_cfg, get_format("pot"), 0, str(tmp_path / "tok"))._trainer_kwargs()
        assert None not in kw.values() and kw["min_epochs"] == 2 and kw["devices"] == 2
        assert kw["enable_model_summary"] is False and kw["strategy"] in ("ddp", "ddp_spawn")
