"""In-process teacher on vLLM's offline engine (``vllm.LLM``), for a GPU machine.

vLLM is an optional extra (``pip install fdd[vllm]``) and is imported only when this teacher is
built. Requests are sent with ``LLM.chat`` (the model's chat template) in chunks of ``CHUNK``
so that each finished chunk is cached before the next starts (a killed run keeps what finished).
``cfg.vllm`` is passed to ``LLM(...)`` as is (e.g. ``tensor_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``).

The GPU memory plan (fdd/runtime/gpu_plan.py): the engine is built at the first request of a stage that
needs it and leaves the GPU before the student's fit -- shut down (``teacher.engine_release:
release``) or put to sleep (``sleep``: weights parked in host memory, woken for the next teacher
stage). A GGUF teacher (``teacher.gguf_file``) is converted once into a plain model folder,
which vLLM loads without its GGUF plugin.

Seeds: vLLM draws every request from the engine's seeded generator unless the request carries its
own seed, which moves the sampler to a slower per-request path. Its outputs are batch-invariant
(the same text whatever else shares the batch) only with ``VLLM_BATCH_INVARIANT=1``; only then do
per-request seeds buy reproducibility, so only then are they sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import List, Optional

from fdd.runtime.gpu_plan import EngineSlot, only_this_device
from fdd.runtime.ranks import local_rank
from fdd.teachers.llm import Completion, LLMTeacher, OnComplete, Request

log = logging.getLogger(__name__)

CHUNK = 512  # requests per LLM.chat call: big enough to keep the engine's batch full


def _import_vllm():
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "teacher.backend=vllm needs vLLM, which is not installed (it needs a GPU machine): "
            "pip install fdd[vllm]  (or use teacher=openai against a running vLLM server, or teacher=hf)"
        ) from exc
    return vllm


def batch_invariant() -> bool:
    """vLLM runs its batch-invariant kernels (``VLLM_BATCH_INVARIANT=1``)."""
    return os.environ.get("VLLM_BATCH_INVARIANT", "0").strip().lower() not in ("", "0", "false", "no")


class VLLMTeacher(LLMTeacher):
    """vLLM's offline ``LLM`` engine as the teacher (model: ``cfg.model`` or ``cfg.gguf_file``)."""

    backend = "vllm"

    def __init__(self, cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__(cfg, cache_dir=cache_dir, seed=seed)
        self._vllm = _import_vllm()  # fail at build time with an actionable message
        if not cfg.model and not cfg.gguf_file:
            raise ValueError("teacher=vllm needs teacher.model (hub id or folder) or teacher.gguf_file")
        self.request_seeds = batch_invariant()
        self._work_dir = cfg.cache_dir or cache_dir or tempfile.gettempdir()
        self.slot = EngineSlot("teacher vLLM", mode=cfg.engine_release or "release")

    @property
    def model_id(self) -> str:
        return str(self.cfg.gguf_file or self.cfg.model)

    def model_folder(self) -> str:
        """What vLLM loads: ``cfg.model``, or the GGUF weights converted once into a plain folder."""
        if not self.cfg.gguf_file:
            return str(self.cfg.model)
        from fdd.runtime.modeling import save_gguf_as_folder

        tag = hashlib.sha256(str(self.cfg.gguf_file).encode()).hexdigest()[:12]
        out = Path(self._work_dir, "gguf-folders", f"{Path(str(self.cfg.gguf_file)).stem}-{tag}")
        out.parent.mkdir(parents=True, exist_ok=True)
        return save_gguf_as_folder(str(self.cfg.gguf_file), str(out))

    def engine_kwargs(self) -> dict:
        kw = {k: v for k, v in dict(self.cfg.vllm or {}).items() if v is not None}  # null = vLLM's default
        kw.setdefault("dtype", self.cfg.dtype or "auto")
        kw.setdefault("seed", self.seed)
        if self.slot.mode == "sleep":
            kw.setdefault("enable_sleep_mode", True)  # vLLM allocates sleepable memory only when told
        return kw

    def _engine(self):
        def build():
            model, kw = self.model_folder(), self.engine_kwargs()
            log.info("starting vLLM engine for %s (%s)", model, kw)
            with only_this_device(local_rank()):  # under torchrun: this rank's GPU, not everyone's cuda:0
                return self._vllm.LLM(model=model, **kw)

        return self.slot.get(self.model_id, build)

    def _generate(self, requests: List[Request], on_complete: Optional[OnComplete] = None) -> List[Completion]:
        llm = self._engine()  # outside the per-chunk guard: an engine that cannot start is a setup error
        SamplingParams = self._vllm.SamplingParams
        out: List[Completion] = []
        for start in range(0, len(requests), CHUNK):
            chunk = requests[start : start + CHUNK]
            params = [
                SamplingParams(
                    temperature=r.temperature,
                    top_p=r.top_p if r.temperature > 0 else 1.0,
                    max_tokens=r.max_tokens,
                    seed=r.seed,
                )
                for r in chunk
            ]
            try:
                results = llm.chat([r.chat() for r in chunk], params, use_tqdm=True)
                comps = []
                for res in results:
                    o = res.outputs[0] if res.outputs else None
                    comps.append(
                        Completion(
                            o.text if o is not None else "",
                            None,
                            len(res.prompt_token_ids or []),
                            len(o.token_ids) if o is not None else 0,
                            {"finish_reason": getattr(o, "finish_reason", None)},
                        )
                    )
            except Exception as exc:  # noqa: BLE001 - a failed chunk fails its requests, not the round
                log.exception("vLLM failed a chunk of %d requests", len(chunk))
                comps = [
                    Completion(None, error=f"request_failed: {type(exc).__name__}: {str(exc)[:100]}") for _ in chunk
                ]
            for j, c in enumerate(comps):
                if on_complete is not None:
                    on_complete(start + j, c)
            out.extend(comps)
        return out

    def close(self) -> None:
        self.slot.close()
        super().close()
