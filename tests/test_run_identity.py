"""A run is its config: fingerprint refusal on resume, secrets never written, safe run names,
damaged outputs named, user errors as one line with exit 2, readable output files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fdd.config import ConfigError, key_role, key_roles, validate
from fdd.main import run
from fdd.runtime.identity import (
    COSMETIC,
    EXTENDS,
    IN_VARIANT,
    REPLICATE,
    FingerprintMismatch,
    fingerprint,
    run_name,
    safe_name,
)
from fdd.runtime.io import read_json, read_jsonl, write_json, write_jsonl
from fdd.runtime.secrets import MASK, is_secret, mask_secrets
from fdd.runtime.stages import StageOutputError, StageRunner
from tests.conftest import CONF, ROOT, TINY, compose_cfg

SMALL = ["rounds=0", "dataset.train.n=12", "dataset.eval.synthetic.n=4"]
KEY = "sk-TESTKEY-5f3a9c1e77d2"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------------- names and masking
def test_secret_keys_are_told_from_look_alikes():
    assert all(is_secret(k) for k in ("teacher.api_key", "hf_token", "x.client_secret", "db.password", "apikey"))
    assert not any(is_secret(k) for k in ("teacher.max_tokens", "student.tokenizer", "max_new_tokens", "seed"))
    masked = mask_secrets(
        {
            "teacher": {"api_key": KEY, "max_tokens": 5},
            "o": [f"teacher.api_key={KEY}", "seed=1"],
            "d": f"seed=1,teacher.api_key={KEY}",
        }
    )
    assert masked == {
        "teacher": {"api_key": MASK, "max_tokens": 5},
        "o": [f"teacher.api_key={MASK}", "seed=1"],
        "d": f"seed=1,teacher.api_key={MASK}",
    }


def test_run_names_are_one_bounded_folder_without_secrets():
    name = run_name(
        [
            "seed=1",
            f"teacher.api_key={KEY}",
            "dataset.path=/data/gsm8k",
            "teacher.base_urls=[http://h:8000/v1]",
            "logger=none",
        ],
        key_role,
    )
    assert KEY not in name and "/" not in name and ":" not in name and "logger" not in name
    assert name.startswith("dataset.path=_data_gsm8k,seed=1") and "base_urls" not in name
    assert run_name([]) == "default" and run_name(["seed=1", "rounds=2"]) == "rounds=2,seed=1"  # unchanged when safe
    long = [f"dataset.eval.set{i}.path=/very/long/path/number/{i}" for i in range(20)]
    assert len(run_name(long)) <= 120 and run_name(long) != run_name(long[:-1])
    assert safe_name("a/b") != safe_name("a:b")  # sanitised alike, still two folders


# ---------------------------------------------------------------------- one mark per key
def test_each_marked_key_is_left_out_of_the_fingerprint_the_name_the_group_and_the_variants():
    """A key's role is marked once in the schema; the four places that skip keys derive from it."""
    from fdd.reporting.report import Run, label_variants
    from fdd.reporting.tracking import variant_group

    roles = key_roles()
    assert roles["teacher.base_urls"] == roles["sandbox.workers"] == roles["logger"] == COSMETIC
    assert roles["rounds"] == EXTENDS and roles["seed"] == REPLICATE
    for key, role in roles.items():
        override = f"{key}=x"
        named = run_name([override], key_role) != "default"
        grouped = variant_group("fdd", [override]) != "fdd"
        printed = fingerprint({key: "x", "student.lr": 1}, key_role)["config"]
        assert named == (role != COSMETIC), key
        assert grouped == (role in IN_VARIANT), key
        assert (key in printed) == (role == REPLICATE), key
        runs = [Run(Path(f"r{v}"), {key: v, "student.lr": "1"}, mode="fdd", seed=0, rounds=1) for v in ("a", "b")]
        label_variants(runs)
        assert (runs[0].variant != runs[1].variant) == (role in IN_VARIANT), key
    # unmarked keys define the run everywhere
    assert key_role("student.lr") == "defines" and run_name(["student.lr=1"], key_role) == "student.lr=1"


def test_moving_to_another_server_resumes_the_same_run():
    """teacher.base_urls / sandbox.workers: same folder, same fingerprint, same wandb group."""
    from fdd.reporting.tracking import variant_group

    a = ["teacher=openai", "teacher.base_urls=[http://a:8000/v1]", "sandbox.workers=2"]
    b = ["teacher=openai", "teacher.base_urls=[http://b:9000/v1,http://c:9000/v1]", "sandbox.workers=8"]
    assert run_name(a, key_role) == run_name(b, key_role) == "teacher=openai"
    assert variant_group("fdd", a) == variant_group("fdd", b) == "fdd/teacher=openai"
    cfg = {"teacher": {"backend": "openai", "base_urls": ["http://a"]}, "sandbox": {"workers": 2}}
    moved = {"teacher": {"backend": "openai", "base_urls": ["http://b"]}, "sandbox": {"workers": 8}}
    assert fingerprint(cfg, key_role)["sha256"] == fingerprint(moved, key_role)["sha256"]


# ---------------------------------------------------------------------- fingerprint
def test_a_changed_config_refuses_to_resume_unless_forced(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run(compose_cfg(TINY + SMALL, run_dir))
    fp = read_json(run_dir / "fingerprint.json")
    assert fp["config"]["student.epochs"] == 2 and "paths.output_dir" not in fp["config"]
    run(compose_cfg(TINY + SMALL + ["trainer.enable_progress_bar=true", "sandbox.workers=1"], run_dir))  # cosmetic
    with pytest.raises(FingerprintMismatch) as e:
        run(compose_cfg(TINY + SMALL + ["student.epochs=3", "augmentation.samples=4"], run_dir))
    assert "student.epochs (2 -> 3)" in str(e.value) and "augmentation.samples (3 -> 4)" in str(e.value)
    assert "resume=force" in str(e.value)
    run(compose_cfg(TINY + SMALL + ["student.epochs=3", "resume=force"], run_dir))
    fp = read_json(run_dir / "fingerprint.json")
    assert fp["config"]["student.epochs"] == 3 and fp["forced_changes"] == ["student.epochs (2 -> 3)"]
    with pytest.raises(FingerprintMismatch, match="resume=never"):
        run(compose_cfg(TINY + SMALL + ["student.epochs=3", "resume=never"], run_dir))


# ---------------------------------------------------------------------- output integrity
def test_a_truncated_distill_set_is_named_and_recomputed_on_request(tmp_path):
    run_dir = tmp_path / "run"
    run(compose_cfg(TINY + SMALL, run_dir))
    path = run_dir / "round_0" / "distill.jsonl"
    rows = read_jsonl(path)
    marker = read_json(run_dir / "round_0" / "DONE.init")
    assert marker["outputs"]["distill.jsonl"]["rows"] == len(rows) > 3
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:3]))  # cut at a line boundary
    with pytest.raises(StageOutputError) as e:
        run(compose_cfg(TINY + SMALL, run_dir))
    assert str(path) in str(e.value) and f"3 rows, the marker recorded {len(rows)}" in str(e.value)
    assert "recompute_from=round_0/init" in str(e.value)
    run(compose_cfg(TINY + SMALL + ["recompute_from=round_0/init"], run_dir))
    assert read_jsonl(path) == rows


def test_markers_record_only_their_own_stage_outputs_and_edits_are_caught(tmp_path):
    runner = StageRunner(tmp_path)
    runner.run(1, "train", lambda d: write_json(d / "a.json", {"x": 1}) or {})
    runner.run(1, "evaluate", lambda d: write_jsonl(d / "b.jsonl", [{"y": 1}, {"y": 2}]) or {"n": 2})
    assert set(read_json(tmp_path / "round_1" / "DONE.train")["outputs"]) == {"a.json"}
    assert set(read_json(tmp_path / "round_1" / "DONE.evaluate")["outputs"]) == {"b.jsonl"}
    assert runner.run(1, "evaluate", lambda d: pytest.fail("reran a finished stage")) == {
        "n": 2,
        "seconds": read_json(tmp_path / "round_1" / "DONE.evaluate")["seconds"],
    }
    write_json(tmp_path / "round_1" / "a.json", {"x": 2})  # same size, other content
    with pytest.raises(StageOutputError, match="a.json is damaged .*sha256"):
        runner.run(1, "train", lambda d: {})
    (tmp_path / "round_1" / "b.jsonl").unlink()
    with pytest.raises(StageOutputError, match="b.jsonl is damaged \\(missing\\)"):
        runner.run(1, "evaluate", lambda d: {})
    (tmp_path / "round_1" / "DONE.evaluate").write_text('{"n": ')
    with pytest.raises(StageOutputError, match="DONE.evaluate: not valid JSON.*recompute_from=round_1/evaluate"):
        runner.run(1, "evaluate", lambda d: {})


# ---------------------------------------------------------------------- validation, files
@pytest.mark.parametrize(
    "override, key",
    [
        ("sandbox.timeout_s=-1", "sandbox.timeout_s"),
        ("sandbox.memory_mb=0", "sandbox.memory_mb"),
        ("sandbox.workers=0", "sandbox.workers"),
        ("student.lr=0", "student.lr"),
        ("student.max_target_len=0", "student.max_target_len"),
        ("teacher.temperature=-0.5", "teacher.temperature"),
        ("teacher.top_p=1.5", "teacher.top_p"),
        ("teacher=openai teacher.timeout_s=0", "teacher.timeout_s"),  # timeout_s is an openai key
        ("student.generation.max_new_tokens=0", "student.generation.max_new_tokens"),
        ("student.warmup_ratio=2", "student.warmup_ratio"),
        ("resume=sometimes", "resume"),
        ("recompute_from=round_1/cook", "recompute_from"),
        ("dataset.train.n=-3", "n must be >= 0"),
    ],
)
def test_out_of_range_numbers_are_refused_by_name(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", "\\.")):
        validate(compose_cfg(TINY + override.split(), tmp_path / "run"))


def test_outputs_are_readable_by_collaborators(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {})
        write_jsonl(tmp_path / "b.jsonl", [{}])
    finally:
        os.umask(old)
    assert {stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("a.json", "b.jsonl")} == {0o644}


def _main(*args: str, cwd: Path):
    return subprocess.run(
        [sys.executable, "-m", "fdd.main", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("case", ["config", "malformed_data"])
def test_user_errors_are_one_line_exit_2_and_leave_no_run_dir(tmp_path, case):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What is 1 plus 1?", "answer": 2}\n{"question": "cut off\n')
    args = ["sandbox.timeout_s=-1"] if case == "config" else ["dataset=local", f"dataset.train.path={bad}"]
    out = _main(*[a for a in TINY if not a.startswith("dataset.")], *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("fdd: error:")]
    assert len(errors) == 1 and "Traceback" not in out.stderr
    assert ("sandbox.timeout_s" in errors[0]) if case == "config" else (str(bad) in errors[0])
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_edited_yaml_refuses_and_an_api_key_is_written_nowhere(tmp_path):
    """The same command after a YAML edit refuses with the changed key; a key given on the
    command line is in no file of the run directory (``.hydra``, logs, wandb offline run)."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    args = [
        "-cp",
        str(conf),
        *[a for a in TINY if not a.startswith("logger")],
        *SMALL,
        "rounds=1",
        "logger=wandb",
        "logger.mode=offline",
        # an OpenAI-compatible teacher holds the key; every job it would do goes to the simulator,
        # so no request leaves the machine
        "teacher=openai",
        "teacher.roles.rationale=oracle",
        "teacher.roles.problems=oracle",
        "teacher.base_urls=[http://127.0.0.1:9/v1]",
        f"teacher.api_key={KEY}",
        "dataset.path=/no/such:dir",
    ]
    out = _main(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "fdd").iterdir()  # one folder, however odd the values
    assert (run_dir / "wandb").is_dir() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    leaks = [p for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not leaks and KEY not in str(run_dir)
    assert f"teacher.api_key={MASK}" in (run_dir / ".hydra" / "overrides.yaml").read_text()

    tiny = conf / "student" / "tiny-word.yaml"  # the same command after editing a YAML value
    tiny.write_text(tiny.read_text().replace("lr: 3e-3", "lr: 1e-3"))
    out = _main(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("fdd: error:")]
    assert len(errors) == 1 and "student.lr (0.003 -> 0.001)" in errors[0], out.stderr[-3000:]
    assert (run_dir / "round_1" / "DONE.metrics").is_file()  # the refused resume lost nothing


def test_only_a_run_dir_without_work_is_removed(tmp_path):
    from fdd.runtime.identity import remove_if_empty

    made = tmp_path / "outputs" / "fdd" / "seed=1"
    (made / ".hydra").mkdir(parents=True)
    (made / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (made / "main.log").write_text("...")
    (made / "fingerprint.json").write_text("{}")
    (made / "round_0").mkdir()
    worked = tmp_path / "outputs" / "fdd" / "seed=2"
    (worked / "round_0").mkdir(parents=True)
    (worked / "round_0" / "DONE.init").write_text("{}")
    assert not remove_if_empty(worked, stop_at=tmp_path) and worked.is_dir()
    assert remove_if_empty(made, stop_at=tmp_path) and not made.exists()
    shutil.rmtree(worked)
    (worked / ".hydra").mkdir(parents=True)
    assert remove_if_empty(worked, stop_at=tmp_path) and not (tmp_path / "outputs").exists()  # empty parents too
