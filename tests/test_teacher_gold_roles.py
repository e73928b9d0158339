"""``teacher=gold`` (the dataset's own solutions) and the teacher's jobs split over backends
(``teacher.roles``)."""

from __future__ import annotations

import json

import pytest

from fdd.config import ConfigError, TeacherConfig
from fdd.types import Problem

GSM8K_ROW = Problem(
    "g1",
    "Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
    72.0,
    "gsm8k-train",
    {
        "rationale": "In May she sold 48/2 = <<48/2=24>>24 clips.\n"
        "In all she sold 48+24 = <<48+24=72>>72 clips.\n#### 72",
        "annotations": ["48/2=24", "48+24=72"],
    },
)
NO_GOLD = Problem("n1", "A generated problem?", 3.0, "generated", {})


def test_gold_writes_cot_and_pot_and_rejects_problems_without_gold():
    from fdd.reasoning.formats import cot_answer
    from fdd.teachers.gold import GoldTeacher

    t = GoldTeacher()
    cot = t.write_rationales([GSM8K_ROW, NO_GOLD], 2, "cot")
    assert cot[0][0].text == ("In May she sold 48/2 = 24 clips.\nIn all she sold 48+24 = 72 clips.\nThe answer is 72.")
    assert cot_answer(cot[0][0].text).value == 72
    assert not cot[1][0].ok and cot[1][0].error.startswith("no_gold: no worked solution")
    pot = t.write_rationales([GSM8K_ROW, NO_GOLD], 1, "pot")
    assert pot[0][0].text == "step1 = 48/2\nstep2 = 48+24\nanswer = step2\n"
    assert pot[1][0].error.startswith("no_gold: no gold equation")
    assert t.usage.snapshot()["rationale"] == {"requests": 6, "failed": 3}
    with pytest.raises(NotImplementedError, match="cannot write problems"):
        t.write_harder([GSM8K_ROW])


def test_gold_programs_answer_the_first_gsm8k_train_problems(shared_data):
    from fdd.config import SourceConfig
    from fdd.data import load_source
    from fdd.reasoning.answer import answers_match
    from fdd.reasoning.formats import get_format
    from fdd.sandbox import Sandbox
    from fdd.teachers.gold import GoldTeacher

    problems = load_source(SourceConfig(loader="gsm8k", split="train", path=str(shared_data), limit=100)).problems
    replies = [r[0] for r in GoldTeacher().write_rationales(problems, 1, "pot")]
    with Sandbox(workers=1) as sb:
        results = get_format("pot").extract([r.text or "" for r in replies], sb)
    right = sum(r.value is not None and answers_match(r.value, p.answer) for p, r in zip(problems, results))
    assert right >= 90, right  # a few annotations do not restate the final answer
    assert all(r.error.startswith("no_gold:") for r in replies if not r.ok)


def test_roles_resolve_to_backend_configs():
    from fdd.teachers.roles import resolve_roles

    base = TeacherConfig(backend="openai", model="big")
    roles = resolve_roles(TeacherConfig(**{**base.__dict__, "roles": {"rationale": "gold"}}))
    assert roles["rationale"].backend == "gold"
    assert roles["new_rationale"].model == "big" and roles["harder"].model == "big"  # gold cannot: the base does
    roles = resolve_roles(
        TeacherConfig(
            backend="gold",
            roles={
                "problems": {"config": "openai", "model": "cheap"},
                "new_rationale": {"config": "openai", "model": "strong"},
            },
        )
    )
    assert (roles["harder"].model, roles["similar"].model, roles["new_rationale"].model) == ("cheap", "cheap", "strong")
    assert roles["harder"].prompts["harder"]  # a named config comes with its prompts
    roles = resolve_roles(TeacherConfig(backend="oracle", roles={"rationale": "smollm2"}))
    assert roles["new_rationale"].backend == "hf"  # an LLM rationale writer also writes the new ones
    with pytest.raises(ConfigError, match="no .*nope.yaml"):
        resolve_roles(TeacherConfig(backend="oracle", roles={"rationale": "nope"}))
    with pytest.raises(ConfigError, match="not_a_field"):
        resolve_roles(TeacherConfig(backend="oracle", roles={"harder": {"config": "openai", "not_a_field": 1}}))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["teacher=gold"], "needs a teacher that writes harder problems, but that role's backend 'gold' cannot"),
        (
            ["teacher=openai", "teacher.roles.rationale=gold", "teacher.roles.new_rationale=gold"],
            "generated problems have no gold",
        ),
    ],
)
def test_runs_that_cannot_work_fail_at_start_up(tiny_cfg, tmp_path, overrides, message):
    from fdd.main import run

    with pytest.raises(ConfigError, match=message):
        run(tiny_cfg(*overrides))
    assert not (tmp_path / "run" / "round_0").exists()  # nothing was started


def test_an_unknown_role_fails_composition(tiny_cfg):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="writer"):
        tiny_cfg("teacher.roles.writer=gold")


def test_gold_without_augmentation_is_allowed(tiny_cfg):
    from fdd.config import validate
    from fdd.teachers.roles import check_roles

    check_roles(validate(tiny_cfg("teacher=gold", "augmentation=none")))
    check_roles(validate(tiny_cfg("teacher=gold", "rounds=1")))  # nothing is generated in one round


def test_role_teacher_dispatches_jobs_and_reports_usage_per_role(tiny_cfg, tmp_path, one_thread):
    from fdd.main import run

    rows = run(
        tiny_cfg(
            "teacher.roles.rationale={config: oracle, error_rate: 0.0}",
            "teacher.roles.problems={config: oracle, model: other}",
        )
    )
    assert rows[0]["teacher_roles"] == {
        "rationale": "oracle",
        "new_rationale": "oracle",
        "harder": "oracle",
        "similar": "oracle",
    }
    assert set(rows[0]["teacher"]) == {"rationale"}
    assert rows[0]["teacher"]["rationale"]["requests"] == 40 and rows[0]["teacher"]["rationale"].get("failed", 0) == 0
    r1 = rows[1]["teacher"]
    asked = rows[1]["easy"] + rows[1]["hard"]
    assert sum(r1.get(j, {}).get("requests", 0) for j in ("harder", "similar")) == asked > 0
    assert r1["new_rationale"]["requests"] > 0
    logged = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert logged[1]["teacher"] == r1


def test_gold_seeds_a_real_data_run(tmp_path, shared_data, one_thread):
    from fdd.main import run
    from tests.conftest import TINY, compose_cfg

    def tiny_cfg(*overrides):  # TINY without its synthetic-world sizes
        return compose_cfg([a for a in TINY if not a.startswith("dataset.")] + list(overrides), tmp_path / "run")

    rows = run(
        tiny_cfg(
            "teacher=gold",
            "augmentation=none",
            "dataset=gsm8k",
            f"dataset.path={shared_data}",
            "dataset.train.limit=30",
            "dataset.eval.gsm8k.limit=10",
            "rounds=1",
        )
    )
    assert rows[0]["distill_size"] >= 27 and rows[0]["seed_problems"] == 30
    assert set(rows[1]["accuracy"]) == {"gsm8k"}


def test_a_role_with_an_unknown_backend_is_a_config_error():
    from fdd.teachers.roles import resolve_roles

    with pytest.raises(ConfigError, match="teacher.roles.harder: backend must be one of"):
        resolve_roles(TeacherConfig(backend="oracle", roles={"harder": {"backend": "nope"}}))


def test_a_role_config_value_outside_its_choices_is_a_config_error():
    """The role configs get the same choice checks as the main teacher config (fdd.config.check_choices)."""
    from fdd.teachers.roles import resolve_roles

    with pytest.raises(
        ConfigError, match=r"teacher\.roles\.problems\.cache must be one of on\|off\|readonly, got 'nope'"
    ):
        resolve_roles(TeacherConfig(backend="oracle", roles={"problems": {"backend": "oracle", "cache": "nope"}}))
