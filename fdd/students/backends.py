"""The student's generation paths behind one interface: a :class:`Generator` turns encoded
prompts into texts, in order, for one checkpoint folder.

- :class:`HFGenerator`: transformers ``generate`` in this process (inside a process group each
  rank takes every world-th batch and every rank gets all texts back);
- :class:`VLLMGenerator`: a vLLM engine (``student.generation.backend=vllm``; one per rank under
  DDP, each answering every world-th prompt);
- :class:`LaunchedGenerator`: from a single process with a ddp trainer config, launches the
  ranks, each running the configured path on its share.

:func:`build_generator` chooses once, from a :class:`GenerationSpec`: everything a generator is
built from, picklable, so that a launched rank rebuilds its generator from the spec alone (this
module never imports the ``Student``). GPU memory follows fdd/runtime/gpu_plan.py: the HF model
and the vLLM engine each live in an ``EngineSlot``.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Protocol, Sequence

import torch

from fdd.runtime.ranks import local_rank, rank_world
from fdd.students.distributed import gather_in_order, launch, requested_world_size, uses_cuda
from fdd.students.fidelity import FaithfulTokenizer
from fdd.students.generate import StopRule, generate_batches, plan_batches
from fdd.students.tokenizer import student_tokenizer

if TYPE_CHECKING:
    from fdd.config import StudentConfig

log = logging.getLogger(__name__)

Encoded = Sequence[List[int]]


@dataclass(frozen=True)
class GenerationSpec:
    """What a student's generator is built from, and all of it: :class:`~fdd.students.student.Student`
    makes one, and a launched rank rebuilds the generator (tokenizer, then the HF or vLLM path)
    from it alone. Picklable: it crosses the spawn into launched ranks."""

    cfg: StudentConfig  # the student config: arch, generation, and the base model and tokenizer choices
    trainer_cfg: Dict  # the trainer config, null values left out (device, precision, ddp world)
    seed: int  # the base student's random init
    tokenizer_dir: str  # the run's tokenizer (and fidelity codec), saved at the first fit or generation
    stop_rule: Optional[StopRule] = None  # the format's, under student.generation.stop_at_answer

    def load_tokenizer(self):
        """The run's tokenizer, read back from ``tokenizer_dir`` (built and saved there first
        when missing, as :meth:`Student.tokenizer` would)."""
        return student_tokenizer(self.cfg, self.tokenizer_dir)


class Generator(Protocol):
    def generate(
        self, enc: Encoded, ckpt_dir: Optional[str], sampling: Optional[Dict] = None, desc: str = "generate"
    ) -> List[str]:
        """The completion of every encoded prompt, in order: greedy, or sampled with
        ``sampling={"temperature", "seed"}`` where the path supports it."""


def _in_order(local: Dict[int, str], n: int, world: int) -> List[str]:
    return gather_in_order(local, n) if world > 1 else [local[i] for i in range(n)]


class HFGenerator:
    """transformers ``generate`` in this process. ``ckpt_dir=None`` is the base student (built
    from the config, untrained); the model is held in a GPU-plan slot, released before a fit or
    another engine takes the GPU."""

    def __init__(self, spec: GenerationSpec, tokenizer: Callable):
        self.spec, self.tokenizer = spec, tokenizer
        self.cfg, self.trainer_cfg = spec.cfg, spec.trainer_cfg
        self._slot = None  # made at first use

    def model(self, ckpt_dir: Optional[str]):
        if self._slot is None:
            from fdd.runtime.gpu_plan import EngineSlot

            self._slot = EngineSlot("student generation")
        return self._slot.get(ckpt_dir, lambda: self._load(ckpt_dir))

    def _load(self, ckpt_dir: Optional[str]):
        from fdd.runtime.modeling import model_class
        from fdd.students.model import build_model, precision_dtype

        if ckpt_dir is None:
            model = build_model(self.cfg, self.tokenizer(), seed=self.spec.seed).eval()
            model.config.use_cache = True  # build_model turns it off for gradient checkpointing
        else:
            model = model_class(self.cfg.arch).from_pretrained(ckpt_dir, dtype=torch.float32)
        if uses_cuda(self.trainer_cfg):
            model = model.to(torch.device("cuda", torch.cuda.current_device()))
            dtype = precision_dtype(self.trainer_cfg.get("precision"))
            if dtype is not None:
                model = model.to(dtype)  # generation in the precision it trained in
        return model

    def generate(
        self, enc: Encoded, ckpt_dir: Optional[str], sampling: Optional[Dict] = None, desc: str = "generate"
    ) -> List[str]:
        gen = self.cfg.generation
        rank, world = rank_world()
        batches = plan_batches([len(e) for e in enc], gen.batch_size)
        local = generate_batches(
            self.model(ckpt_dir),
            self.tokenizer(),
            enc,
            batches[rank::world],
            self.cfg.arch,
            max_new_tokens=gen.max_new_tokens,
            stop_rule=self.spec.stop_rule,
            progress=rank == 0,
            desc=desc,
            sampling=sampling,
        )
        return _in_order(local, len(enc), world)


class VLLMGenerator:
    """A vLLM engine on a checkpoint folder (fdd/students/vllm_generate.py). Under DDP one engine
    per rank, on its own device, answers every world-th prompt. Greedy only: ``sampling`` is not
    passed on."""

    def __init__(self, spec: GenerationSpec, tokenizer: Callable):
        self.spec, self.tokenizer = spec, tokenizer
        self.cfg, self.trainer_cfg = spec.cfg, spec.trainer_cfg

    def generate(
        self, enc: Encoded, ckpt_dir: Optional[str], sampling: Optional[Dict] = None, desc: str = "generate"
    ) -> List[str]:
        from fdd.students.model import precision_dtype
        from fdd.students.vllm_generate import generate_vllm, vllm_dtype

        gen = self.cfg.generation
        rank, world = rank_world()
        mine = list(range(rank, len(enc), world))
        texts = generate_vllm(
            ckpt_dir,
            [enc[i] for i in mine],
            gen.max_new_tokens,
            stop_rule=self.spec.stop_rule,
            engine_kwargs={k: v for k, v in dict(gen.vllm).items() if v is not None},
            dtype=vllm_dtype(precision_dtype(self.trainer_cfg.get("precision"))),
            local_rank=local_rank(),
        )
        tok = self.tokenizer()
        if isinstance(tok, FaithfulTokenizer):  # vLLM decodes with the bare tokenizer
            texts = [tok.restore(t) for t in texts]
        return _in_order(dict(zip(mine, texts)), len(enc), world)


class LaunchedGenerator:
    """A ddp trainer config seen from a single process: ``world`` ranks are launched, each
    rebuilds ``inner``'s path from ``spec`` and runs it on its share. Inside a process group, for
    sampled answers, or for prompts that fit one batch, ``inner`` runs here instead."""

    def __init__(self, inner: Generator, spec: GenerationSpec, world: int, cuda: bool):
        self.inner, self.spec, self.world, self.cuda = inner, spec, world, cuda
        self.batch_size = spec.cfg.generation.batch_size

    def generate(
        self, enc: Encoded, ckpt_dir: Optional[str], sampling: Optional[Dict] = None, desc: str = "generate"
    ) -> List[str]:
        if rank_world()[1] > 1 or len(enc) <= self.batch_size or sampling is not None:
            return self.inner.generate(enc, ckpt_dir, sampling=sampling, desc=desc)
        with tempfile.TemporaryDirectory(prefix="fdd-gen-") as tmp:
            out = str(Path(tmp, "texts.json"))
            launch(
                _generate_worker,
                self.world,
                args=(self.spec, [list(e) for e in enc], ckpt_dir, out),
                cuda=self.cuda,
            )
            with open(out, encoding="utf-8") as f:
                return json.load(f)


def _generate_worker(spec: GenerationSpec, enc, ckpt_dir, out) -> None:
    """One launched rank: the generator rebuilt from ``spec`` (in a process group now, so its
    configured path, sharded); rank 0 writes the gathered texts to ``out``."""
    from fdd.runtime.ranks import is_main_process

    tokenizer = functools.cache(spec.load_tokenizer)
    texts = _in_process(spec, HFGenerator(spec, tokenizer), tokenizer).generate(enc, ckpt_dir)
    if is_main_process():
        with open(out, "w", encoding="utf-8") as f:
            json.dump(texts, f)


def _in_process(spec: GenerationSpec, hf: HFGenerator, tokenizer: Callable) -> Generator:
    """The path this process runs: vLLM, or ``hf`` (transformers ``generate``)."""
    return VLLMGenerator(spec, tokenizer) if spec.cfg.generation.backend == "vllm" else hf


def build_generator(spec: GenerationSpec, hf: HFGenerator, tokenizer: Callable) -> Generator:
    """The generation path of a spec: vLLM or in-process HF (``hf``, built from the same spec),
    launched over ranks when the trainer asks for more than one process. ``tokenizer``: the
    student's, made at first call."""
    inner = _in_process(spec, hf, tokenizer)
    world = requested_world_size(spec.trainer_cfg)
    if world > 1:
        return LaunchedGenerator(inner, spec, world, uses_cuda(spec.trainer_cfg))
    return inner
