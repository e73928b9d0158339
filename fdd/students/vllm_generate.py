"""Greedy generation with vLLM for causal students on GPU (``student.generation.backend=vllm``).

vllm is imported here only, so installs without it (CPU, tests) never touch it. The engine lives
in an :class:`~fdd.runtime.gpu_plan.EngineSlot`: built at the round's first generation, kept while the
same checkpoint answers (held-out sets, then the feedback pool), released when another tenant
needs the GPU (the teacher, the next fit) -- see fdd/runtime/gpu_plan.py.

Under DDP (torchrun, or the ranks launched for a ``ddp`` trainer) every rank builds its own
engine on its own device and answers its share of the prompts (``backends.py`` shards and
gathers). vLLM starts its engine in a child process that sees the GPUs named by
``CUDA_VISIBLE_DEVICES``, so the rank's device is the only one that child is shown.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

from fdd.runtime.gpu_plan import EngineSlot, only_this_device
from fdd.students.generate import StopRule, cut_at_stop

log = logging.getLogger(__name__)

SLOT = EngineSlot("student vLLM")

_DTYPE_NAMES = {"torch.bfloat16": "bfloat16", "torch.float16": "float16", "torch.float32": "float32"}


def _vllm():
    try:
        import vllm
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("student.generation.backend=vllm needs vLLM: pip install fdd[vllm]") from e
    return vllm


def vllm_dtype(torch_dtype) -> str:
    """vLLM's name for a torch dtype (None -> "float32": the precision the student trained in)."""
    return _DTYPE_NAMES.get(str(torch_dtype), "float32")


def generate_vllm(
    ckpt_dir: str,
    prompt_ids: Sequence[List[int]],
    max_new_tokens: int,
    stop_rule: Optional[StopRule] = None,
    engine_kwargs: Optional[Dict] = None,
    dtype: str = "float32",
    local_rank: Optional[int] = None,
) -> List[str]:
    """Greedy completions of already-tokenized prompts (the same ids the HF path feeds), in order.
    vLLM schedules its own batches; ``stop_rule`` cuts a complete answer after the fact, so
    the texts match the HF path's. ``dtype`` follows ``trainer.precision``; ``engine_kwargs``
    (``student.generation.vllm``) go to ``vllm.LLM`` as they are."""
    vllm = _vllm()
    if not prompt_ids:
        return []

    def build():
        kw = {"tokenizer": ckpt_dir, "dtype": dtype, "seed": 0, **(engine_kwargs or {})}
        log.info("vLLM student engine for %s (%s)", ckpt_dir, kw)
        with only_this_device(local_rank):
            return vllm.LLM(model=ckpt_dir, **kw)

    llm = SLOT.get(ckpt_dir, build)
    params = vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
    outs = llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_ids], params, use_tqdm=False)
    texts = [o.outputs[0].text for o in outs]
    return [cut_at_stop(t, stop_rule).strip() for t in texts]
