"""Health of the teacher cache file: damaged files found at open, several processes sharing one
file, and no sqlite write on the teacher's event loop."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fdd.config import TeacherConfig
from fdd.teachers import build_teacher
from fdd.teachers.cache import DB_NAME, CacheCorruptError, TeacherCache, cache_key
from fdd.types import Problem

try:
    from tests.fake_openai_server import FakeOpenAIServer
except ImportError:
    from fake_openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parents[1]


def fill(cache_dir: Path, n: int = 400) -> bytes:
    """A healthy cache of ``n`` calls; returns the file's bytes (checkpointed, no -wal left)."""
    c = TeacherCache(str(cache_dir), "on")
    for i in range(n):
        c.put(cache_key({"i": i}), backend="b", model="m", job="j", request={"i": i}, text=f"reply {i} " * 20)
    c.close()
    with sqlite3.connect(cache_dir / DB_NAME) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return (cache_dir / DB_NAME).read_bytes()


def damage(path: Path, how: str, data: bytes) -> None:
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    else:
        raise ValueError(how)


def aside(cache_dir: Path):
    return sorted(p.name for p in cache_dir.iterdir() if ".corrupt-" in p.name)


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_cache_is_moved_aside_and_replaced(tmp_path, how, caplog):
    data = fill(tmp_path)
    damage(tmp_path / DB_NAME, how, data)
    damaged = (tmp_path / DB_NAME).read_bytes()
    with caplog.at_level(logging.WARNING, "fdd.teachers.cache"):
        c = TeacherCache(str(tmp_path), "on")
    moved = aside(tmp_path)
    assert len(moved) == 1 and moved[0].startswith(DB_NAME + ".corrupt-")
    assert c.moved_aside == tmp_path / moved[0]
    assert (tmp_path / moved[0]).read_bytes() == damaged  # kept as it was, for whoever wants to rescue it
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "CORRUPT" in warning and str(tmp_path / DB_NAME) in warning and moved[0] in warning
    # the fresh cache works and starts empty
    assert len(c) == 0
    c.put(cache_key({"x": 1}), backend="b", model="m", job="j", request={}, text="fresh")
    assert c.get(cache_key({"x": 1})).text == "fresh"
    c.close()
    assert TeacherCache(str(tmp_path), "on").get(cache_key({"x": 1})).text == "fresh"  # healthy now: kept


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_cache_errors_when_asked_to(tmp_path, how):
    damage(tmp_path / DB_NAME, how, fill(tmp_path))
    before = (tmp_path / DB_NAME).read_bytes()
    with pytest.raises(CacheCorruptError, match=f"{DB_NAME}.*corrupt.*cache_on_corrupt"):
        TeacherCache(str(tmp_path), "on", on_corrupt="error")
    # a readonly replay never touches the file, whatever the option
    with pytest.raises(CacheCorruptError, match="readonly replay"):
        TeacherCache(str(tmp_path), "readonly")
    assert (tmp_path / DB_NAME).read_bytes() == before and not aside(tmp_path)


def test_zero_byte_cache_warns_and_starts_fresh(tmp_path, caplog):
    (tmp_path / DB_NAME).write_bytes(b"")
    with caplog.at_level(logging.WARNING, "fdd.teachers.cache"):
        c = TeacherCache(str(tmp_path), "on")
    assert any("zero-byte" in r.getMessage() and str(tmp_path / DB_NAME) in r.getMessage() for r in caplog.records)
    assert not aside(tmp_path)  # nothing in it worth keeping
    c.put(cache_key({"x": 1}), backend="b", model="m", job="j", request={}, text="fresh")
    assert len(c) == 1
    c.close()


def test_zero_byte_cache_beside_a_wal_keeps_the_wal(tmp_path, caplog):
    """sqlite silently deletes a -wal next to a zero-byte database; the cache moves it aside instead."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from fdd.teachers.cache import TeacherCache, cache_key
        c = TeacherCache({str(tmp_path)!r}, "on")
        for i in range(50):
            c.put(cache_key({{"i": i}}), backend="b", model="m", job="j", request={{}}, text="t")
        c.flush()
        os._exit(0)  # no close, no checkpoint: the calls live in the -wal
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    wal = tmp_path / (DB_NAME + "-wal")
    assert wal.stat().st_size > 0
    wal_bytes = wal.read_bytes()
    (tmp_path / DB_NAME).write_bytes(b"")
    with pytest.raises(CacheCorruptError, match="write-ahead log"):
        TeacherCache(str(tmp_path), "on", on_corrupt="error")
    with caplog.at_level(logging.WARNING, "fdd.teachers.cache"):
        c = TeacherCache(str(tmp_path), "on")
    kept = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and p.name.endswith("-wal")]
    assert len(kept) == 1 and kept[0].read_bytes() == wal_bytes
    assert len(c) == 0
    c.close()


def test_teacher_config_reaches_the_cache(tmp_path):
    damage(tmp_path / DB_NAME, "garbage", fill(tmp_path, 20))
    cfg = TeacherConfig(backend="openai", model="m", base_urls=["http://127.0.0.1:9/v1"], cache_on_corrupt="error")
    with pytest.raises(CacheCorruptError):
        build_teacher(cfg, cache_dir=str(tmp_path), seed=0)
    cfg.cache_on_corrupt = "recreate"
    with build_teacher(cfg, cache_dir=str(tmp_path), seed=0) as t:
        assert t.cache.moved_aside is not None and len(t.cache) == 0


def test_damage_after_open_is_a_miss_not_a_crash(tmp_path, caplog):
    data = fill(tmp_path)
    c = TeacherCache(str(tmp_path), "on")
    damage(tmp_path / DB_NAME, "truncated", data)
    with caplog.at_level(logging.WARNING, "fdd.teachers.cache"):
        found = c.get_many([cache_key({"i": i}) for i in range(400)])
    assert len(found) < 400  # some pages are gone; what remains readable is still served
    c.close()


_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from fdd.teachers.cache import TeacherCache, cache_key
    c = TeacherCache({cache!r}, "on")
    print("READY", flush=True)
    sys.stdin.readline()  # start together
    for i in range({n}):
        c.put(cache_key({{"w": {w}, "i": i}}), backend="b", model="m", job="j", request={{"i": i}}, text="x" * 200)
        if i % 50 == 0:
            time.sleep(0.01)  # interleave with the other process
    c.close()
    print("DONE", flush=True)
""")


def test_two_processes_write_one_cache(tmp_path):
    n = 300
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER.format(repo=str(REPO), cache=str(tmp_path), n=n, w=w)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "READY", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "DONE" in out, err
        assert "could not write" not in err and "locked" not in err, err
    c = TeacherCache(str(tmp_path), "readonly")
    assert len(c) == 2 * n
    assert c.get(cache_key({"w": 1, "i": n - 1})).text == "x" * 200


_LOCK_HOLDER = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect({path!r}, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # another process of the sweep, committing slowly
    db.execute("INSERT INTO calls (key, backend, request, created) VALUES ('other', 'b', '{{}}', 0)")
    print("LOCKED", flush=True)
    time.sleep({hold})
    db.execute("COMMIT")
""")


def test_a_busy_cache_does_not_stall_the_event_loop(tmp_path):
    """While another process holds the cache's write lock, requests keep flowing: the replies are
    queued for the writer thread instead of blocking the client's event loop in sqlite."""
    TeacherCache(str(tmp_path), "on").close()
    hold = 3.0
    ps = [Problem(f"q{i}", f"Ann has {i} cats and gets 2 more. How many cats?", i + 2.0, "t") for i in range(12)]
    with FakeOpenAIServer(latency=0.05) as srv:
        cfg = TeacherConfig(backend="openai", model="fake-model", base_urls=[srv.url], concurrency=2, timeout_s=10)
        with build_teacher(cfg, cache_dir=str(tmp_path), seed=0) as t:
            t.show_progress = False
            t.write_harder(ps[:1], 1)  # warm up: imports, client, connection pool
            srv.reset_stats()
            holder = subprocess.Popen(
                [sys.executable, "-c", _LOCK_HOLDER.format(path=str(tmp_path / DB_NAME), hold=hold)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout.readline().strip() == "LOCKED"
                out = t.write_rationales(ps, 1, "pot")
                holder.wait(30)
            finally:
                if holder.poll() is None:
                    holder.kill()
            assert all(rs[0].ok for rs in out)
            arrivals = sorted(x for times in srv.attempts.values() for x in times)
            assert len(arrivals) == 12
            # 6 waves of 2 requests at 50 ms: well under a second unless a write blocks the loop
            assert arrivals[-1] - arrivals[0] < hold / 2, arrivals[-1] - arrivals[0]
            assert len(t.cache) == 14  # and every reply was committed once the lock was free
