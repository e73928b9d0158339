"""Faithful precision: a student published in bf16 trains with fp32 master weights under
bf16-mixed (transformers 5 would load it in bf16), and what the fit saves is fp32."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fdd.reasoning.formats import get_format
from fdd.runtime.modeling import model_class
from fdd.sim.world import generate, render
from fdd.students.model import build_model
from fdd.students.module import StudentModule
from fdd.students.student import Student
from fdd.types import Item
from tests.conftest import compose_cfg

pytestmark = pytest.mark.usefixtures("one_thread")

BF16_MIXED = {
    "accelerator": "cpu",
    "devices": 1,
    "precision": "bf16-mixed",
    "enable_progress_bar": False,
    "log_every_n_steps": 1,
}


def _bf16_checkpoint(tmp_path):
    """A tiny random llama saved in bf16, as a bf16-published student would be."""
    cfg = compose_cfg(["student=tiny-llama", "logger=none"], tmp_path / "run")
    scfg = OmegaConf.to_object(cfg.student)
    st = Student(scfg, BF16_MIXED, get_format("pot"), 0, str(tmp_path / "tok"))
    model = build_model(scfg, st.tokenizer(["x"]), seed=0).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "bf16")
    assert model_class("causal").from_pretrained(tmp_path / "bf16").dtype == torch.bfloat16  # the default we avoid
    scfg.pretrained, scfg.model_config = str(tmp_path / "bf16"), {}
    return scfg, st


def test_bf16_checkpoint_trains_with_fp32_master_weights(tmp_path, monkeypatch):
    scfg, st = _bf16_checkpoint(tmp_path)
    assert {p.dtype for p in build_model(scfg, st.tokenizer()).parameters()} == {torch.float32}
    seen = []
    real_step = StudentModule.training_step

    def step(self, batch, batch_idx):
        seen.append({p.dtype for p in self.model.parameters()})
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(StudentModule, "training_step", step)
    st = Student(scfg, BF16_MIXED, get_format("pot"), 0, str(tmp_path / "tok"))
    items = [Item(p.id, p.question, p.answer, p.source, render(p.meta["world"])[1]) for p in generate(4, 0, "train")]
    st.fit(items, str(tmp_path / "ckpt"), str(tmp_path / "state"))
    assert seen and seen[0] == {torch.float32}
    saved = model_class("causal").from_pretrained(tmp_path / "ckpt")
    assert {p.dtype for p in saved.parameters()} == {torch.float32}
    # the next round starts from that checkpoint, again in fp32
    assert {p.dtype for p in build_model(scfg, st.tokenizer(), init_from=str(tmp_path / "ckpt")).parameters()} == {
        torch.float32
    }
