"""Reusable fixtures: the embedded SmolLM2 as a model folder, served by ``transformers serve``.

Import them into a test module (``from serve_fixtures import smollm2_folder, serve_smollm2``)
so pytest sees them. ``serve_smollm2`` yields a :class:`ServedModel` whose ``url`` goes through
a :class:`CountingProxy`, so a test can count the requests that really reached the server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from tests.fake_openai_server import CountingProxy, free_port
except ImportError:  # tests/ on sys.path (pytest's rootdir-less import mode)
    from fake_openai_server import CountingProxy, free_port


@dataclass
class ServedModel:
    model: str  # the name the server is pinned to (the folder path)
    url: str  # OpenAI base URL through the counting proxy
    direct_url: str  # the server itself
    proxy: CountingProxy
    log_path: Path


def _transformers_cli() -> list:
    exe = Path(sys.executable).with_name("transformers")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("transformers")
    if found:
        return [found]
    return [sys.executable, "-m", "transformers.cli.transformers"]


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory) -> str:
    """The embedded SmolLM2-135M-Instruct GGUF written as a normal HF folder (~30 s, once)."""
    from fdd.runtime.modeling import EMBEDDED_SMOLLM2, ModelUnavailableError, save_gguf_as_folder

    out = tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    try:
        folder = save_gguf_as_folder(EMBEDDED_SMOLLM2, str(out))
    except ModelUnavailableError as exc:
        pytest.skip(str(exc))
    # The GGUF carries no do_sample flag, so generate() would decode greedily and silently ignore
    # the request's temperature/top_p (transformers serve warns "not valid and may be ignored");
    # an OpenAI-style server samples, so make the folder sample by default.
    gc_path = Path(folder) / "generation_config.json"
    gc = json.loads(gc_path.read_text())
    gc["do_sample"] = True
    gc_path.write_text(json.dumps(gc, indent=2))
    return folder


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"transformers serve not ready after {timeout}s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def serve_smollm2(smollm2_folder, tmp_path_factory):
    """``transformers serve <folder>`` on a free port behind a counting proxy; always terminated."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "transformers-serve.log"
    cmd = _transformers_cli() + ["serve", smollm2_folder, "--host", "127.0.0.1", "--port", str(port)]
    # One intra-op thread: on a small, busy CPU box, torch's spinning worker threads slow a 135M
    # model down by an order of magnitude instead of speeding it up.
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=os.environ.get("FDD_SERVE_THREADS", "1"),
    )
    with open(log_path, "wb") as log_f:
        proc = subprocess.Popen(cmd, stdout=log_f, stderr=subprocess.STDOUT, env=env)
    proxy = None
    try:
        direct = f"http://127.0.0.1:{port}"
        _wait_ready(direct, proc, log_path)
        proxy = CountingProxy(direct).start()
        yield ServedModel(
            model=smollm2_folder, url=proxy.url, direct_url=direct + "/v1", proxy=proxy, log_path=log_path
        )
    finally:
        if proxy is not None:
            proxy.stop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
