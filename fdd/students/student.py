"""The student: fine-tune on a distillation set (Lightning), then answer problems (batched
greedy decoding, answers checked by the rationale format's extractor)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from fdd.students.data import Collator, EncodedDataset, LengthGroupedBatchSampler, encode_example
from fdd.students.distributed import externally_launched, gather_in_order, launch, rank_world, requested_world_size, uses_cuda
from fdd.students.generate import encode_prompts, generate_batches, plan_batches
from fdd.students.model import build_model, save_model
from fdd.students.tokenizer import build_tokenizer
from fdd.types import Item, Prediction, Problem

log = logging.getLogger(__name__)


class Student:
    """One student configuration over a run. ``tokenizer_dir`` pins the tokenizer chosen at the
    first fit, so every round (and a resumed run) uses the same vocabulary."""

    def __init__(self, cfg, trainer_cfg: Dict, fmt, seed: int, tokenizer_dir: str) -> None:
        self.cfg, self.trainer_cfg, self.fmt, self.seed = cfg, dict(trainer_cfg), fmt, seed
        self.tokenizer_dir = tokenizer_dir
        self._tokenizer = None
        self._loaded: Optional[tuple] = None  # (checkpoint dir, model)

    # -- tokenizer -------------------------------------------------------------------------
    def tokenizer(self, corpus: Optional[Sequence[str]] = None):
        if self._tokenizer is None:
            tok = build_tokenizer(self.cfg, corpus=corpus, saved=self.tokenizer_dir)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            if not Path(self.tokenizer_dir, "tokenizer_config.json").is_file():
                tmp = self.tokenizer_dir + ".tmp"
                tok.save_pretrained(tmp)
                os.replace(tmp, self.tokenizer_dir)
            self._tokenizer = tok
        return self._tokenizer

    def _encode(self, items: Sequence[Item]):
        tok = self.tokenizer([t for it in items for t in (self.fmt.student_prompt(it.question), it.rationale)])
        return EncodedDataset([encode_example(tok, self.fmt.student_prompt(it.question), it.rationale, self.cfg.arch,
                                              self.cfg.max_source_len, self.cfg.max_target_len) for it in items])

    # -- training --------------------------------------------------------------------------
    def fit(self, items: Sequence[Item], out_dir: str, state_dir: str, init_from: Optional[str] = None,
            round_idx: int = 1) -> Dict:
        """Train on ``items`` and save the model to ``out_dir``. With
        ``student.resume_from_last_epoch`` a killed fit resumes from ``state_dir/last.ckpt``;
        otherwise it starts over, which keeps a resumed run identical to an uninterrupted one."""
        import pytorch_lightning as pl
        from pytorch_lightning.callbacks import ModelCheckpoint
        from pytorch_lightning.loggers import CSVLogger

        from fdd.students.module import StudentModule

        pl.seed_everything(self.seed + round_idx, workers=True, verbose=False)
        data = self._encode(items)
        tok = self.tokenizer()
        model = build_model(self.cfg, tok, init_from=init_from, seed=self.seed)
        model.train()  # from_pretrained returns eval mode; dropout belongs in fine-tuning
        module = StudentModule(model, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay,
                               warmup_ratio=self.cfg.warmup_ratio)
        sampler = LengthGroupedBatchSampler(data.lengths(), self.cfg.batch_size, seed=self.seed + round_idx,
                                            group_by_length=self.cfg.group_by_length)
        loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=Collator(tok.pad_token_id),
                                             num_workers=self.cfg.num_workers)
        if self.cfg.compile:
            # In-place compile: the parameters keep their names, so last.ckpt and the saved
            # folder look the same as without it. Dynamic shapes: every batch has its own length.
            module.model.compile(dynamic=True)
        kw = self._trainer_kwargs()
        last = Path(state_dir, "last.ckpt")
        callbacks = []
        if self.cfg.resume_from_last_epoch:
            # Lightning writes last.ckpt only next to a saved checkpoint, so keep the latest
            # epoch's (top_k=1, no monitor) and link last.ckpt to it.
            callbacks.append(ModelCheckpoint(dirpath=state_dir, filename="epoch{epoch}", save_top_k=1, monitor=None,
                                             save_last="link", every_n_epochs=1, save_on_train_epoch_end=True))
            if last.is_file():
                log.info("resuming the fit from %s", last)
        else:
            for stale in Path(state_dir).glob("*.ckpt"):  # a killed fit's state: start the fit over
                stale.unlink()
        trainer = pl.Trainer(max_epochs=self.cfg.epochs, max_steps=self.cfg.steps_per_round or -1,
                             default_root_dir=state_dir,
                             logger=CSVLogger(state_dir, name="", version="logs"),
                             callbacks=callbacks, enable_checkpointing=bool(callbacks), **kw)
        t0 = time.time()
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(last) if last.is_file() else None)
        seconds = time.time() - t0
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if trainer.is_global_zero:  # one writer; with ddp_spawn this is the main process
            tmp = out_dir + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(module.model, tok, tmp)
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp, out_dir)
        trainer.strategy.barrier("student-saved")  # other ranks may read out_dir right after
        tokens = metrics.get("train/tokens") or float(module.tokens_seen)
        return {"train_loss": metrics.get("train/loss_epoch"), "train_steps": max(int(trainer.global_step), int(metrics.get("train/steps", 0))),
                "train_examples": len(data), "train_seconds": round(seconds, 2),
                "train_tokens_per_s": round(tokens / seconds, 1) if seconds > 0 and tokens else None}

    def _trainer_kwargs(self) -> Dict:
        """Lightning Trainer kwargs from the trainer config. ``strategy=ddp`` in a process that
        nobody launched would make Lightning re-run the whole command once per rank (the whole
        FDD loop, teacher calls and file writes included); ddp_spawn runs only the fit in the
        worker processes and hands the weights back, so it is used instead."""
        kw = dict(self.trainer_cfg)
        kw.pop("_target_", None)
        kw.setdefault("enable_model_summary", False)
        kw.setdefault("use_distributed_sampler", False)  # the batch sampler shards itself
        if str(kw.get("strategy")) == "ddp" and requested_world_size(kw) > 1 and not externally_launched():
            log.info("trainer.strategy=ddp from a single process: using ddp_spawn for the fit")
            kw["strategy"] = "ddp_spawn"
        return kw

    # -- answering -------------------------------------------------------------------------
    def _model(self, ckpt_dir: str):
        if self._loaded is None or self._loaded[0] != ckpt_dir:
            from fdd.students.model import _model_class

            model = _model_class(self.cfg.arch).from_pretrained(ckpt_dir)
            if uses_cuda(self.trainer_cfg):
                model = model.to(torch.device("cuda", torch.cuda.current_device()))
                if str(self.trainer_cfg.get("precision", "")).startswith("bf16"):
                    model = model.to(torch.bfloat16)  # generation in the precision it trained in
            self._loaded = (ckpt_dir, model)
        return self._loaded[1]

    def generate_texts(self, prompts: Sequence[str], ckpt_dir: str, desc: str = "generate",
                       sampling: Optional[Dict] = None) -> List[str]:
        """Greedy completions of ``prompts`` in order (sampled with ``sampling={"temperature",
        "seed"}``). Inside a process group (DDP) each rank
        generates its share of the batches and every rank gets all texts back; from a single
        process with a ddp trainer config, worker processes are launched to do the same."""
        gen = self.cfg.generation
        stop = gen.stop_at_answer and getattr(self.fmt, "name", "") == "pot"  # only programs have answer lines
        tok = self.tokenizer()
        enc = encode_prompts(tok, prompts, self.cfg.arch, self.cfg.max_source_len)
        if gen.backend == "vllm":
            from fdd.students.vllm_generate import generate_vllm

            return generate_vllm(ckpt_dir, enc, gen.max_new_tokens, stop_at_answer=stop)
        rank, world = rank_world()
        requested = requested_world_size(self.trainer_cfg)
        if world == 1 and requested > 1 and len(prompts) > gen.batch_size and sampling is None:
            return self._generate_launched(prompts, ckpt_dir, requested)
        batches = plan_batches([len(e) for e in enc], gen.batch_size)
        local = generate_batches(self._model(ckpt_dir), tok, enc, batches[rank::world], self.cfg.arch,
                                 max_new_tokens=gen.max_new_tokens, stop_at_answer=stop,
                                 progress=rank == 0, desc=desc, sampling=sampling)
        return gather_in_order(local, len(enc)) if world > 1 else [local[i] for i in range(len(enc))]

    def _generate_launched(self, prompts: Sequence[str], ckpt_dir: str, world: int) -> List[str]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="fdd-gen-") as tmp:
            out = str(Path(tmp, "texts.json"))
            launch(_generate_worker, world, args=(self.cfg, self.trainer_cfg, self.fmt, self.seed,
                                                  self.tokenizer_dir, list(prompts), ckpt_dir, out),
                   cuda=uses_cuda(self.trainer_cfg))
            with open(out, encoding="utf-8") as f:
                return json.load(f)

    def answer(self, problems: Sequence[Problem], ckpt_dir: str, sandbox, desc: str = "answer",
               sampling: Optional[Dict] = None) -> List[Prediction]:
        """Greedy (or ``sampling``) answers to ``problems``, each checked against its gold answer."""
        from fdd.reasoning.answer import answers_match

        if not problems:
            return []
        texts = self.generate_texts([self.fmt.student_prompt(p.question) for p in problems], ckpt_dir, desc=desc,
                                    sampling=sampling)
        results = self.fmt.extract(texts, sandbox)
        return [Prediction(id=p.id, output=t, predicted=r.value, gold=p.answer,
                           correct=r.value is not None and p.answer is not None and answers_match(r.value, p.answer),
                           error=r.error)
                for p, t, r in zip(problems, texts, results)]


def _generate_worker(cfg, trainer_cfg, fmt, seed, tokenizer_dir, prompts, ckpt_dir, out) -> None:
    """One rank of launched generation; rank 0 writes the gathered texts to ``out``."""
    texts = Student(cfg, trainer_cfg, fmt, seed, tokenizer_dir).generate_texts(prompts, ckpt_dir)
    if rank_world()[0] == 0:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(texts, f)
