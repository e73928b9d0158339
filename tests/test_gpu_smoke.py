"""The GPU smoke script composes its config (trainer=gpu, vLLM teacher and student) and, without a
GPU, stops with one clear line; the benchmark's MFU counts each token once and matches device
names exactly; its continuous-batching baseline keeps the problems' order."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, compose_cfg


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would run")
@pytest.mark.parametrize(
    "extra,expect",
    [([], "gpu_smoke: no CUDA device"), (["rounds=-1"], "gpu_smoke: bad config: rounds must be in [0, 1000]")],
)
def test_smoke_script_without_gpu_fails_in_one_line(tmp_path, extra, expect):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "gpu_smoke.py"), "--out", str(tmp_path), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(expect), p.stderr
    assert not (tmp_path / "smollm2-135m").exists()  # nothing was done before the check


def _bench():
    spec = importlib.util.spec_from_file_location("student_throughput", ROOT / "benchmarks" / "student_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mfu_counts_encoder_and_decoder_tokens_once(tmp_path):
    from omegaconf import OmegaConf

    from fdd.students.model import build_model
    from fdd.students.tokenizer import build_tokenizer

    bench = _bench()
    scfg = OmegaConf.to_object(compose_cfg(["student=tiny-t5", "logger=none"], tmp_path).student)
    model = build_model(scfg, build_tokenizer(scfg), seed=0)
    rows = [{"input_ids": [1] * 10, "labels": [1] * 4}, {"input_ids": [1] * 6, "labels": [1] * 2}]
    n_all = sum(p.numel() for p in model.parameters())
    n_enc = sum(p.numel() for p in model.get_encoder().parameters())
    assert 0 < n_enc < n_all
    assert bench.train_flops(model, rows, "seq2seq") == 6 * (n_enc * 16 + (n_all - n_enc) * 6)
    assert bench.train_flops(model, rows, "causal") == 6 * n_all * 16


def test_peak_flops_match_device_names_exactly():
    bench = _bench()
    assert bench.peak_flops("NVIDIA L40S") != bench.peak_flops("NVIDIA L4")
    assert bench.peak_flops("NVIDIA L4 Super Special") is None  # unknown: no MFU, not a neighbour's peak
    assert bench.peak_flops("anything", override_tflops=100) == 100e12


@pytest.mark.slow  # transformers' continuous batching takes ~25 s to set up on CPU
def test_continuous_batching_row_reads_texts_in_input_order(tmp_path):
    """The benchmark's continuous-batching baseline maps request ids back to the prompts' order:
    its texts are the batched baseline's, problem by problem (greedy on the same model)."""
    from omegaconf import OmegaConf

    from fdd.students.generate import encode_prompts, plan_batches
    from fdd.students.model import build_model
    from fdd.students.tokenizer import build_tokenizer

    bench = _bench()
    scfg = OmegaConf.to_object(compose_cfg(["student=tiny-llama", "logger=none"], tmp_path).student)
    tok = build_tokenizer(scfg)
    tok.pad_token = tok.pad_token or tok.eos_token
    model = build_model(scfg, tok, seed=0).eval()
    prompts = ["Q: 3 + 4?\nProgram:", "Q: a longer question about 12 pears?\nProgram:", "Q: 7?\nProgram:"]
    enc = encode_prompts(tok, prompts, "causal", 256)
    want = bench.hf_batched(model, tok, enc, plan_batches([len(e) for e in enc], 8), "causal", 6, False)
    got = bench.hf_continuous(model, tok, enc, 6)
    assert got == want and len(set(got)) > 1  # distinct texts: a shuffled order would show
