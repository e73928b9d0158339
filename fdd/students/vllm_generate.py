"""Greedy generation with vLLM for causal students on GPU (``student.generation.backend=vllm``).

vllm is imported here only, so installs without it (CPU, tests) never touch it."""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence

from fdd.students.generate import truncate_at_answer

log = logging.getLogger(__name__)

_ENGINES: Dict[str, object] = {}  # checkpoint dir -> vllm.LLM (one engine per checkpoint and process)


def _vllm():
    try:
        import vllm
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("student.generation.backend=vllm needs vLLM: pip install fdd[vllm]") from e
    return vllm


def generate_vllm(ckpt_dir: str, prompt_ids: Sequence[List[int]], max_new_tokens: int, stop_at_answer: bool = False,
                  engine_kwargs: Dict | None = None) -> List[str]:
    """Greedy completions of already-tokenized prompts (the same ids the HF path feeds), in order.
    vLLM schedules its own batches; a complete ``answer = ...`` line is cut after the fact, so
    the texts match the HF path's."""
    vllm = _vllm()
    if ckpt_dir not in _ENGINES:
        for old in list(_ENGINES):  # a new round's checkpoint: free the old engine's GPU memory
            del _ENGINES[old]
        log.info("vLLM engine for %s", ckpt_dir)
        _ENGINES[ckpt_dir] = vllm.LLM(model=ckpt_dir, tokenizer=ckpt_dir, dtype="auto", seed=0,
                                      **(engine_kwargs or {}))
    llm = _ENGINES[ckpt_dir]
    params = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
    outs = llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_ids], params, use_tqdm=False)
    texts = [o.outputs[0].text for o in outs]
    return [(truncate_at_answer(t) if stop_at_answer else t).strip() for t in texts]
