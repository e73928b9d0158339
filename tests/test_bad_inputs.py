"""Bad inputs a user can fix end as one ``fdd: error:`` line (exit status 2, no traceback) or a
counted, logged rejection naming what was wrong, and lose nothing already produced: list-valued
answers of the original AddSub / SingleEq / MultiArith files, the documented ``+dataset.eval.<set>``
override, a run directory that cannot be written (a file in its place, read-only, a full disk),
binary data files, and secrets in a sweep's job lines."""

from __future__ import annotations

import errno
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fdd.config import ConfigError, SourceConfig, validate
from fdd.data import load_problems, load_source
from fdd.data.files import DataFormatError
from fdd.runtime import io
from tests.conftest import ROOT, compose_cfg

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
SECRET = "sk-test-SECRET-123"


def _main(*args: str, cwd: Path, runner=("-m", "fdd.main")) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *runner, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


def _one_error_line(out: subprocess.CompletedProcess) -> str:
    """The run failed as a user error: exit 2, exactly one ``fdd: error:`` line, no traceback."""
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("fdd: error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    return errors[0]


def _local(path: Path, **kw) -> SourceConfig:
    return SourceConfig(loader="local", path=str(path), **kw)


# ------------------------------------------------------- 1. one-element answer lists (lSolutions)
MAWPS = {"question_field": "sQuestion", "answer_field": "lSolutions", "id_field": "iIndex"}


def test_local_loader_takes_a_one_element_answer_list_and_counts_other_lists(tmp_path):
    rows = [
        {"iIndex": 0, "sQuestion": "Tom has 3 apples and gets 4 more. How many?", "lSolutions": [7.0]},
        {"iIndex": 1, "sQuestion": "Ann had 10 pens and lost 2. How many?", "lSolutions": [8]},
        {"iIndex": 2, "sQuestion": "A box holds 6 eggs. How many in 2 boxes?", "lSolutions": ["12"]},
        {"iIndex": 3, "sQuestion": "Solve for x and y.", "lSolutions": [1.0, 2.0]},
        {"iIndex": 4, "sQuestion": "Nothing to answer here.", "lSolutions": []},
        {"iIndex": 5, "sQuestion": "How many legs has a bird?", "lSolutions": ["two"]},
    ]
    f = tmp_path / "AddSub.json"
    f.write_text(json.dumps(rows))
    r = load_source(_local(f, **MAWPS))
    assert [(p.id, p.answer) for p in r.problems] == [
        ("local-AddSub-0", 7.0),
        ("local-AddSub-1", 8.0),
        ("local-AddSub-2", 12.0),
    ]
    assert r.skipped == {
        "lSolutions is a list of several answers (expected one)": 1,
        "empty lSolutions list (expected one answer)": 1,
        "non-numeric answer": 1,  # the one element is no number: that is what the reason says
    }
    assert r.examples["lSolutions is a list of several answers (expected one)"] == ["local-AddSub-3"]


# The original files of the MAWPS-derived sets, as zero_shot_cot publishes them (iIndex, sQuestion,
# lEquations, lSolutions); each is tested where ../shared/data holds it.
ORIGINAL_FILES = [
    "addsub/AddSub.json",
    "singleeq/SingleEq.json",
    "singleeq/questions.json",
    "multiarith/MultiArith.json",
]


@pytest.mark.parametrize("rel", ORIGINAL_FILES)
def test_local_loader_reads_the_original_mawps_style_files(shared_data, rel):
    f = shared_data / rel
    if not f.is_file():
        pytest.skip(f"{f} is not present")
    rows = json.loads(f.read_text(encoding="utf-8"))
    r = load_source(_local(f, **MAWPS))
    several = sum(1 for row in rows if len(row["lSolutions"]) != 1)
    assert len(r.problems) == len(rows) - several and len(r.problems) > 0
    assert sum(r.skipped.values()) == several
    by_id = {p.id: p for p in r.problems}
    for row in rows[:50]:
        if len(row["lSolutions"]) == 1:
            assert by_id[f"local-{f.stem}-{row['iIndex']}"].answer == float(row["lSolutions"][0])
    if rel.startswith("multiarith"):
        assert len(r.problems) == 600 and not r.skipped and r.problems[0].answer == 39.0


def test_dataset_local_on_the_original_multiarith_file_loads_every_row(shared_data, tmp_path):
    """The same through ``dataset=local`` as a user types it."""
    f = shared_data / "multiarith" / "MultiArith.json"
    if not f.is_file():
        pytest.skip(f"{f} is not present")
    cfg = compose_cfg(
        [
            "dataset=local",
            f"dataset.train.path={f}",
            "dataset.train.question_field=sQuestion",
            "dataset.train.answer_field=lSolutions",
            "dataset.train.id_field=iIndex",
        ],
        tmp_path,
    )
    train, evals = load_problems(validate(cfg))
    assert len(train) == 600 and evals == {}


# ------------------------------------------------------- 2. the documented +dataset.eval.<set> override
DOCUMENTED = "+dataset.eval.mine='{loader: local, path: test.jsonl}'"


def _problems(tmp_path: Path) -> tuple:
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text(
        "".join(json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n" for i in range(6))
    )
    test.write_text(
        "".join(json.dumps({"question": f"What is {i} times 3?", "answer": str(3 * i)}) + "\n" for i in range(4))
    )
    return train, test


def test_the_documented_eval_override_composes_validates_and_loads(tmp_path):
    docs = (ROOT / "docs" / "guide.md").read_text() + (ROOT / "fdd" / "conf" / "dataset" / "local.yaml").read_text()
    assert DOCUMENTED in docs  # the form the documentation gives; the shell strips the quotes
    train, test = _problems(tmp_path)
    override = DOCUMENTED.replace("'", "").replace("test.jsonl", str(test))
    cfg = compose_cfg(["dataset=local", f"dataset.train.path={train}", override], tmp_path / "run")
    obj = validate(cfg)
    assert isinstance(obj.dataset.eval["mine"], SourceConfig)
    assert obj.dataset.eval["mine"].loader == "local" and obj.dataset.eval["mine"].limit is None
    # typed in place: the resolved config (the run's fingerprint) holds every SourceConfig field
    resolved = OmegaConf.to_container(cfg, resolve=True)["dataset"]["eval"]["mine"]
    assert set(resolved) == set(SourceConfig.__dataclass_fields__)
    train_p, evals = load_problems(obj)
    assert len(train_p) == 6 and len(evals["mine"]) == 4 and evals["mine"][0].answer == 0.0


def test_the_eval_override_works_from_the_command_line(tmp_path):
    train, test = _problems(tmp_path)
    out = _main(
        "dataset=local",
        f"dataset.train.path={train}",
        f"+dataset.eval.mine={{loader: local, path: {test}}}",
        "dry_run=true",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mine: 4" in out.stdout


def test_a_misspelled_key_of_a_new_eval_source_is_a_config_error(tmp_path):
    train, test = _problems(tmp_path)
    cfg = compose_cfg(
        ["dataset=local", f"dataset.train.path={train}", f"+dataset.eval.mine={{loader: local, pth: {test}}}"],
        tmp_path / "run",
    )
    with pytest.raises(ConfigError, match=r"dataset\.eval\.mine: Key 'pth' not in 'SourceConfig'"):
        validate(cfg)


def test_held_out_sets_of_dataset_files_stay_typed_at_composition(tmp_path):
    """A key a dataset file leaves unset (``limit``) is still overridable without ``+``, and a
    misspelled one still fails at composition."""
    from hydra.errors import ConfigCompositionException

    for dataset, name in (("synthetic", "synthetic"), ("paper", "svamp"), ("synthetic_imbalanced", "rare")):
        cfg = compose_cfg([f"dataset={dataset}", f"dataset.eval.{name}.limit=3"], tmp_path)
        assert OmegaConf.get_type(cfg.dataset.eval[name]) is SourceConfig and cfg.dataset.eval[name].limit == 3
    with pytest.raises(ConfigCompositionException):
        compose_cfg(["dataset.eval.synthetic.limt=3"], tmp_path)


# ------------------------------------------------------- 3. a run directory that cannot be written
@pytest.mark.parametrize("where", ["file", "under_a_file", "sweep_file"])
def test_a_file_where_the_run_directory_should_be_is_one_error_line(tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me\n")
    folder = blocker / "run" if where == "under_a_file" else blocker
    if where == "sweep_file":
        args = ["-m", "seed=0,1", f"hydra.sweep.dir={folder}"]
    else:
        args = [f"hydra.run.dir={folder}"]
    out = _main(*args, "debug=fast", "logger=none", cwd=tmp_path)
    line = _one_error_line(out)
    what = "sweep directory" if where == "sweep_file" else "run directory"
    assert line.startswith(f"fdd: error: cannot write the {what} {folder}: ")
    assert f"{blocker} is a file" in line or "it is a file" in line
    assert ("hydra.sweep.dir=" if where == "sweep_file" else "hydra.run.dir=") in line
    assert blocker.read_text() == "keep me\n"


def _make_read_only(folder: Path) -> bool:
    """A folder this process cannot write: mode 0555, or (root ignores modes) the immutable flag."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return True
    chattr = shutil.which("chattr")
    return bool(chattr) and subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode == 0


def _make_writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


@pytest.mark.parametrize("inside", [False, True])
def test_a_read_only_run_directory_is_one_error_line(tmp_path, inside):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "earlier.txt").write_text("earlier output\n")
    if not _make_read_only(ro):
        pytest.skip("running as root without chattr +i: no folder is read-only to root")
    try:
        run_dir = ro / "run" if inside else ro
        out = _main("debug=fast", "logger=none", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    finally:
        _make_writable(ro)
    line = _one_error_line(out)
    assert line.startswith(f"fdd: error: cannot write the run directory {run_dir}: ")
    assert "make it writable or choose another with hydra.run.dir=" in line
    assert sorted(p.name for p in ro.iterdir()) == ["earlier.txt"]
    assert (ro / "earlier.txt").read_text() == "earlier output\n"


def test_check_writable_dir_names_the_folder_and_the_reason(tmp_path, monkeypatch):
    """The same refusal without root's exemption: creating any file in the folder is refused."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = io.tempfile.mkstemp

    def refused(*a, dir=None, **kw):
        if dir is not None and Path(dir) == ro:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(ro / ".fdd-write-check.x"))
        return real(*a, dir=dir, **kw)

    monkeypatch.setattr(io.tempfile, "mkstemp", refused)
    with pytest.raises(io.RunDirError) as e:
        io.check_writable_dir(ro)
    assert e.value.strerror == (
        f"cannot write the run directory {ro}: Permission denied; make it writable or choose another with hydra.run.dir=..."
    )
    assert io.disk_error_message(e.value, ro) == e.value.strerror


def test_a_failed_atomic_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "round_1" / "split.json"
    io.write_json(target, {"old": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(io.WriteError) as e:
        io.write_json(target, {"new": 2})
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert json.loads(target.read_text()) == {"old": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["split.json"]  # no temporary file left
    message = io.disk_error_message(e.value, tmp_path)
    assert message.startswith(f"cannot write the run directory {tmp_path}: No space left on device ({target})")
    assert "rerun the same command" in message


def test_disk_error_message_is_only_for_disk_errors(tmp_path, monkeypatch):
    assert io.disk_error_message(OSError(errno.ECONNREFUSED, "Connection refused"), tmp_path) is None
    assert io.disk_error_message(PermissionError(errno.EACCES, "Permission denied"), tmp_path) is None  # no file
    assert io.disk_error_message(RuntimeError("a bug"), tmp_path) is None  # the disk has room
    outside = io.disk_error_message(OSError(errno.ENOSPC, "No space left on device", "/elsewhere/cache.db"), tmp_path)
    assert outside.startswith("cannot write /elsewhere/cache.db: No space left on device; free some space")
    denied = io.disk_error_message(PermissionError(errno.EACCES, "Permission denied", "/data/x.jsonl"), tmp_path)
    assert denied == "/data/x.jsonl: Permission denied"
    # a writer with errors of its own (torch.save) on a file system with no space left
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    full = io.disk_error_message(RuntimeError("PytorchStreamWriter failed writing file data/0"), tmp_path)
    assert full.startswith(f"cannot write the run directory {tmp_path}: no space left on device (RuntimeError: ")
    assert "rerun the same command" in full


# A run whose disk fills up when round 1's evaluate stage finishes (its DONE marker cannot be written).
DISK_FULL = """
import errno, os, runpy, sys
from pathlib import Path
import fdd.runtime.io as io

_write = io.atomic_write_text

def atomic_write_text(path, text):
    path = Path(path)
    if path.name == "DONE.evaluate" and path.parent.name == "round_1":
        fsync = os.fsync
        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync = full
        try:
            return _write(path, text)
        finally:
            os.fsync = fsync
    return _write(path, text)

io.atomic_write_text = atomic_write_text
sys.argv = ["fdd.main", *sys.argv[1:]]
runpy.run_module("fdd.main", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_a_full_disk_mid_run_keeps_finished_stages_and_a_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = ["debug=fast", "logger=none", f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
    script = tmp_path / "disk_full.py"
    script.write_text(DISK_FULL)
    out = _main(*args, cwd=tmp_path, runner=(str(script),))
    line = _one_error_line(out)
    assert line.startswith(f"fdd: error: cannot write the run directory {run_dir}: No space left on device (")
    assert "DONE.evaluate" in line and "rerun the same command" in line
    r1 = run_dir / "round_1"
    assert (run_dir / "round_0" / "DONE.init").is_file() and (r1 / "DONE.train").is_file()
    assert not (r1 / "DONE.evaluate").exists() and not list(r1.glob(".DONE.evaluate*"))
    kept = {p: p.read_bytes() for p in (run_dir / "round_0").iterdir() if p.is_file()}

    again = _main(*args, cwd=tmp_path)  # the disk has room again
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "round 0: init already done, skipping" in log and "round 1: train already done, skipping" in log
    assert "round 1: evaluate ..." in log
    assert (r1 / "DONE.evaluate").is_file() and (run_dir / "round_2" / "DONE.metrics").is_file()
    assert {p: p.read_bytes() for p in kept} == kept


# ------------------------------------------------------- 4. binary data files
FORMATS = {"jsonl": "JSON lines", "json": "JSON", "csv": "CSV"}
TEXT = {
    "jsonl": '{"question": "What is 1 plus 1?", "answer": "2"}\n',
    "json": '[{"question": "What is 1 plus 1?", "answer": "2"}]\n',
    "csv": "question,answer\nWhat is 1 plus 1?,2\n",
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(
    "kind,why",
    [
        ("gzip", "gzip-compressed data; decompress it first (gunzip)"),
        ("random", "binary data: a NUL byte at offset"),
        ("latin1", "not UTF-8: byte 0xe9 at offset"),
    ],
)
def test_a_binary_data_file_is_named_as_not_text(tmp_path, fmt, kind, why):
    f = tmp_path / f"problems.{fmt}"
    if kind == "gzip":
        f.write_bytes(gzip.compress(TEXT[fmt].encode()))
    elif kind == "random":
        f.write_bytes(bytes(range(256)) + random.Random(0).randbytes(4096))
    else:
        f.write_bytes(TEXT[fmt].replace("What", "Qu'est-ce que caf\u00e9 What").encode("latin-1"))
    with pytest.raises(DataFormatError) as e:
        load_source(_local(f))
    assert str(e.value).startswith(f"{f}: not a text {FORMATS[fmt]} file ({why}")


def test_a_binary_data_file_past_the_first_bytes_is_named_too(tmp_path):
    f = tmp_path / "problems.jsonl"
    f.write_bytes((TEXT["jsonl"] * 2000).encode() + b"\xff\xfe\n")
    with pytest.raises(DataFormatError, match=rf"^{re.escape(str(f))}: not a text JSON lines file \(not UTF-8"):
        load_source(_local(f))


def test_a_gzipped_training_file_is_one_error_line(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_bytes(gzip.compress(TEXT["jsonl"].encode()))
    out = _main(
        "dataset=local", f"dataset.train.path={f}", "logger=none", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    line = _one_error_line(out)
    assert line == f"fdd: error: {f}: not a text JSON lines file (gzip-compressed data; decompress it first (gunzip))"
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------- 5. secrets in a sweep's job lines
def _files_holding(folder: Path, secret: str) -> list:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_sweep_shows_and_writes_no_secret(tmp_path):
    sweep = tmp_path / "sweep"
    out = _main(
        "-m",
        "teacher=openai",
        f"teacher.api_key={SECRET}",
        "teacher.base_urls=[http://127.0.0.1:9/v1]",  # a dry run makes no request; nothing listens there
        "dry_run=true",
        "logger=none",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "max_total_calls" in out.stdout  # the dry run ran, once per job
    assert "#0 : " in text and "#1 : " in text and "teacher.api_key=***" in text  # Hydra's job lines, masked
    assert SECRET not in text
    assert (sweep / "multirun.yaml").is_file() and list(sweep.rglob("*.log")) and list(sweep.rglob(".hydra/*.yaml"))
    assert _files_holding(tmp_path, SECRET) == []


def test_a_single_run_shows_and_writes_no_secret(tmp_path):
    run_dir = tmp_path / "run"
    out = _main(
        "teacher=openai",
        f"teacher.api_key={SECRET}",
        "dry_run=true",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        cwd=tmp_path,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert SECRET not in text and (run_dir / "main.log").is_file()
    assert _files_holding(tmp_path, SECRET) == []


def test_hydra_log_records_are_masked_in_process(caplog):
    import logging

    from fdd.runtime.secrets import mask_hydra_job_lines

    mask_hydra_job_lines()
    mask_hydra_job_lines()  # idempotent
    with caplog.at_level(logging.INFO):
        logging.getLogger("hydra._internal.core_plugins.basic_launcher").info(
            "\t#0 : teacher=openai teacher.api_key=%s seed=0", SECRET
        )
        logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").info(
            f"\t#1 : teacher.api_key='{SECRET} x',{SECRET}-2 hub.token=abc== seed=1"
        )
        logging.getLogger("fdd.tests").info("teacher.max_tokens=5")
    assert SECRET not in caplog.text
    assert "#0 : teacher=openai teacher.api_key=*** seed=0" in caplog.text
    assert "#1 : teacher.api_key=*** hub.token=*** seed=1" in caplog.text
    assert "teacher.max_tokens=5" in caplog.text


def test_the_wandb_group_leaves_secrets_out():
    from fdd.reporting.tracking import variant_group

    group = variant_group(
        "fdd", ["teacher=openai", f"teacher.api_key={SECRET}", f"+final.hub.token={SECRET}", "seed=1", "rounds=2"]
    )
    assert SECRET not in group and "api_key" not in group and "token" not in group
    assert group == "fdd/rounds=2,teacher=openai"
