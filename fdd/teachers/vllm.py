"""In-process teacher on vLLM's offline engine (``vllm.LLM``), for a GPU machine.

vLLM is an optional extra (``pip install fdd[vllm]``) and is imported only when this teacher is
built. Requests are sent with ``LLM.chat`` (the model's chat template) and one
``SamplingParams`` per request carrying its own seed, in chunks of ``CHUNK`` so that each
finished chunk is cached before the next starts (a killed run keeps what finished).
``cfg.vllm`` is passed to ``LLM(...)`` as is (e.g. ``tensor_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``).
"""
from __future__ import annotations

import logging
from typing import List, Optional

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


class VLLMTeacher(LLMTeacher):
    """vLLM's offline ``LLM`` engine as the teacher (model: ``cfg.model`` or ``cfg.gguf_file``)."""

    backend = "vllm"

    def __init__(self, cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__(cfg, cache_dir=cache_dir, seed=seed)
        self._vllm = _import_vllm()  # fail at build time with an actionable message
        if not cfg.model and not cfg.gguf_file:
            raise ValueError("teacher=vllm needs teacher.model (hub id or folder) or teacher.gguf_file")
        self._llm = None

    @property
    def model_id(self) -> str:
        return str(self.cfg.gguf_file or self.cfg.model)

    def _engine(self):
        if self._llm is None:
            kw = dict(self.cfg.vllm or {})
            model = self.cfg.model
            if self.cfg.gguf_file:
                from fdd.modeling import resolve_gguf
                import os

                folder, fname = resolve_gguf(self.cfg.gguf_file)
                model = os.path.join(folder, fname)
                # vLLM reads GGUF weights but wants the tokenizer from the original repo when given.
                if self.cfg.model:
                    kw.setdefault("tokenizer", self.cfg.model)
            kw.setdefault("dtype", self.cfg.dtype or "auto")
            kw.setdefault("seed", self.seed)
            log.info("starting vLLM engine for %s (%s)", model, kw)
            self._llm = self._vllm.LLM(model=model, **kw)
        return self._llm

    def _generate(self, requests: List[Request], on_complete: Optional[OnComplete] = None) -> List[Completion]:
        from vllm import SamplingParams

        llm = self._engine()
        out: List[Completion] = []
        for start in range(0, len(requests), CHUNK):
            chunk = requests[start:start + CHUNK]
            params = [SamplingParams(temperature=r.temperature, top_p=r.top_p if r.temperature > 0 else 1.0,
                                     max_tokens=r.max_tokens, seed=r.seed) for r in chunk]
            try:
                results = llm.chat([r.chat() for r in chunk], params, use_tqdm=True)
                comps = []
                for res in results:
                    o = res.outputs[0] if res.outputs else None
                    comps.append(Completion(o.text if o is not None else "", None,
                                            len(res.prompt_token_ids or []),
                                            len(o.token_ids) if o is not None else 0,
                                            {"finish_reason": getattr(o, "finish_reason", None)}))
            except Exception as exc:  # noqa: BLE001 - a failed chunk fails its requests, not the round
                log.exception("vLLM failed a chunk of %d requests", len(chunk))
                comps = [Completion(None, error=f"request_failed: {type(exc).__name__}: {str(exc)[:100]}")
                         for _ in chunk]
            for j, c in enumerate(comps):
                if on_complete is not None:
                    on_complete(start + j, c)
            out.extend(comps)
        return out

    def close(self) -> None:
        self._llm = None
        super().close()
