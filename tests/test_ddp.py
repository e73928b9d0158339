"""Two-process DDP on CPU (gloo): training writes one checkpoint, and sharded evaluation gives
exactly the single-process greedy texts for the same checkpoint."""

from __future__ import annotations

import json
import os

import pytest
from omegaconf import OmegaConf

from fdd.reasoning.formats import get_format
from fdd.sim.world import generate, render
from fdd.students.distributed import launch, rank_world
from fdd.students.student import Student
from fdd.types import Item
from tests.conftest import compose_cfg

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


OVER = [
    "student=tiny-llama",
    "student.epochs=6",
    "student.batch_size=8",
    "student.generation.batch_size=8",
    "student.generation.max_new_tokens=40",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


def _setup(tmp_path, trainer: str):
    cfg = compose_cfg([*OVER, f"trainer={trainer}"], tmp_path / "run")
    return OmegaConf.to_object(cfg.student), OmegaConf.to_container(cfg.trainer)


def _items(n: int):
    return [Item(p.id, p.question, p.answer, p.source, render(p.meta["world"])[1]) for p in generate(n, 0, "train")]


def _prompts(n: int):
    fmt = get_format("pot")
    return [fmt.student_prompt(p.question) for p in generate(n, 0, "test")]


def test_ddp_cpu_fit_and_sharded_generation_match_single_process(tmp_path):
    scfg, ddp = _setup(tmp_path, "ddp_cpu")
    assert ddp["strategy"] == "ddp" and ddp["devices"] == 2
    fmt, tok_dir = get_format("pot"), str(tmp_path / "tok")
    student = Student(scfg, ddp, fmt, 0, tok_dir)
    ckpt = tmp_path / "ckpt"
    info = student.fit(_items(32), str(ckpt), str(tmp_path / "state"))
    # 4 batches of 8 per epoch, 2 per rank, 6 epochs
    assert info["train_steps"] == 12 and info["train_loss"] is not None
    assert (ckpt / "config.json").is_file() and not (tmp_path / "ckpt.tmp").exists()
    assert not list((tmp_path / "state").glob("*.ckpt"))  # epoch checkpoints only with resume_from_last_epoch

    prompts = _prompts(37)  # not a multiple of the batch size or of the world size
    sharded = student.generate_texts(prompts, str(ckpt))  # launches 2 gloo processes
    single = Student(scfg, {"accelerator": "cpu", "devices": 1}, fmt, 0, tok_dir).generate_texts(prompts, str(ckpt))
    assert len(sharded) == len(prompts) and any(sharded)
    assert sharded == single


def _fit_rank(scfg, trainer_cfg, tok_dir, root, out):
    """One torchrun-style rank: strategy=ddp joins the launched group (no processes of its own)."""
    info = Student(scfg, trainer_cfg, get_format("pot"), 0, tok_dir).fit(_items(32), f"{root}/ckpt", f"{root}/state")
    rank = rank_world()[0]
    assert os.path.isfile(f"{root}/ckpt/config.json")  # the barrier: rank 0 has saved before anyone returns
    with open(f"{out}.{rank}", "w") as f:
        json.dump(info, f)


def test_ddp_fit_inside_a_launched_process_group(tmp_path):
    scfg, ddp = _setup(tmp_path, "ddp_cpu")
    tok_dir = str(tmp_path / "tok")
    Student(scfg, ddp, get_format("pot"), 0, tok_dir).tokenizer()  # saved once, read by both ranks
    launch(_fit_rank, 2, args=(scfg, ddp, tok_dir, str(tmp_path), str(tmp_path / "info")))
    infos = [json.load(open(tmp_path / f"info.{r}")) for r in range(2)]
    assert [i["train_steps"] for i in infos] == [12, 12]
    assert infos[0]["train_loss"] == pytest.approx(infos[1]["train_loss"])  # synced over ranks
