"""The student: fine-tune on a distillation set (Lightning), then write rationales for problems
(batched decoding by the configured generator, fdd/students/backends.py). It trains and
generates; reading answers out of its texts and grading them is fdd/method/grading.py's."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from fdd.runtime.ranks import externally_launched, is_main_process
from fdd.students.backends import GenerationSpec, Generator, HFGenerator, build_generator
from fdd.students.data import EncodedDataset, LengthGroupedBatchSampler, encode_training_set, training_collator
from fdd.students.distributed import requested_world_size
from fdd.students.fidelity import (
    FaithfulTokenizer,
    UnrepresentableError,
    count,
    init_marker_embeddings,
    percentiles,
    why_lost,
)
from fdd.students.generate import encode_prompts
from fdd.students.model import build_model, save_model
from fdd.students.tokenizer import student_tokenizer
from fdd.types import Item, Problem

log = logging.getLogger(__name__)


class Student:
    """One student configuration over a run. ``tokenizer_dir`` pins the tokenizer chosen at the
    first fit, so every round (and a resumed run) uses the same vocabulary."""

    def __init__(self, cfg, trainer_cfg: Dict, fmt, seed: int, tokenizer_dir: str) -> None:
        self.cfg, self.fmt, self.seed = cfg, fmt, seed
        # null = Lightning's default (the trainer schema lists every argument): pass only those set
        self.trainer_cfg = {k: v for k, v in dict(trainer_cfg).items() if v is not None}
        self.tokenizer_dir = tokenizer_dir
        self._tokenizer = None
        # What generation is built from, here and in launched ranks (fdd/students/backends.py).
        self.spec = GenerationSpec(
            cfg,
            self.trainer_cfg,
            seed,
            tokenizer_dir,
            stop_rule=fmt.stop_rule if cfg.generation.stop_at_answer else None,
        )
        # In-process generation: also what saves the base student for generators that load folders.
        self._hf = HFGenerator(self.spec, self.tokenizer)
        self._generator: Optional[Generator] = None

    # -- tokenizer -------------------------------------------------------------------------
    def tokenizer(self, corpus: Optional[Sequence[str]] = None):
        if self._tokenizer is None:
            self._tokenizer = student_tokenizer(self.cfg, self.tokenizer_dir, corpus=corpus)
        return self._tokenizer

    def _encode(self, items: Sequence[Item]) -> EncodedDataset:
        """Encode the training items after checking each survives the tokenizer (dropped and
        counted by reason where not) and its length (counted; ``student.overlong`` decides).
        The counts and length percentiles travel in the dataset's ``summary``."""
        prompts = [self.fmt.student_prompt(it.question) for it in items]
        tok = self.tokenizer([t for p, it in zip(prompts, items) for t in (p, it.rationale)])
        # A lost target would teach the student a wrong output: the item is dropped. A lost
        # prompt (e.g. a word-level vocabulary meeting a new name) is only counted: the student
        # reads it as the tokenizer renders it, as it will at answer time.
        reasons = [why_lost(tok, it.rationale) for it in items]
        lost = count(f"target_{r}" for r in reasons if r)
        lossy_prompts = count(f"prompt_{r}" for r in map(lambda p: why_lost(tok, p), prompts) if r)
        n_lost = sum(lost.values())
        if items and n_lost > self.cfg.max_unrepresentable * len(items):
            raise UnrepresentableError(
                f"student {self.cfg.name!r}: {n_lost} of {len(items)} training targets cannot be represented by its "
                f"tokenizer ({lost}; student.fidelity={self.cfg.fidelity}), more than "
                f"student.max_unrepresentable={self.cfg.max_unrepresentable}"
            )
        if n_lost:
            first = next(i for i, r in enumerate(reasons) if r)
            log.warning(
                "%d of %d items have targets the student's tokenizer cannot represent and are dropped: %s "
                "(e.g. item %s)",
                n_lost,
                len(items),
                lost,
                items[first].id,
            )
        if lossy_prompts:
            log.info(
                "%d prompts lose characters in the student's tokenizer (kept): %s",
                sum(lossy_prompts.values()),
                lossy_prompts,
            )
        kept = [(p, it) for p, it, r in zip(prompts, items, reasons) if r is None]
        rows, rep = encode_training_set(
            tok,
            [(p, it.rationale) for p, it in kept],
            self.cfg.arch,
            self.cfg.max_source_len,
            self.cfg.max_target_len,
            overlong=self.cfg.overlong,
            ids=[it.id for _, it in kept],
        )
        lengths = {"prompt": percentiles(rep.prompt_lengths), "target": percentiles(rep.target_lengths)}
        log.info(
            "token lengths of %d items: prompt %s, target %s (limits %d / %d)",
            len(kept),
            lengths["prompt"],
            lengths["target"],
            self.cfg.max_source_len,
            self.cfg.max_target_len,
        )
        if items and not rows:
            raise UnrepresentableError(
                f"student {self.cfg.name!r}: no training item is left after dropping "
                f"{n_lost} unrepresentable and {rep.dropped} over-long ones "
                f"(student.max_source_len / max_target_len / overlong)"
            )
        return EncodedDataset(
            rows,
            {
                "unrepresentable": n_lost,
                "unrepresentable_by_reason": lost,
                "lossy_prompts": sum(lossy_prompts.values()),
                "overlong": rep.overlong_items,
                "overlong_by_kind": dict(rep.overlong),
                "overlong_dropped": rep.dropped,
                "token_lengths": lengths,
            },
        )

    # -- training --------------------------------------------------------------------------
    def fit(
        self,
        items: Sequence[Item],
        out_dir: str,
        state_dir: str,
        init_from: Optional[str] = None,
        round_idx: int = 1,
        loggers: Sequence = (),
    ) -> Dict:
        """Train on ``items`` and save the model to ``out_dir``. With
        ``student.resume_from_last_epoch`` a killed fit resumes from ``state_dir/last.ckpt``;
        otherwise it starts over, which keeps a resumed run identical to an uninterrupted one.
        ``loggers``: Lightning loggers for the per-step curves (the loop passes the run's tracker's)."""
        import pytorch_lightning as pl
        from pytorch_lightning.callbacks import ModelCheckpoint
        from pytorch_lightning.loggers import CSVLogger

        from fdd.students.module import StudentModule

        pl.seed_everything(self.seed + round_idx, workers=True, verbose=False)
        data = self._encode(items)
        tok = self.tokenizer()
        model = build_model(self.cfg, tok, init_from=init_from, seed=self.seed)
        if init_from is None and isinstance(tok, FaithfulTokenizer):
            init_marker_embeddings(model, tok)  # a checkpoint's marker rows are trained already
        model.train()  # from_pretrained returns eval mode; dropout belongs in fine-tuning
        module = StudentModule(
            model,
            lr=self.cfg.lr,
            weight_decay=self.cfg.weight_decay,
            warmup_ratio=self.cfg.warmup_ratio,
            fast=self.cfg.fast_train,
        )
        sampler = LengthGroupedBatchSampler(
            data.lengths(), self.cfg.batch_size, seed=self.seed + round_idx, group_by_length=self.cfg.group_by_length
        )
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=sampler,
            collate_fn=training_collator(self.cfg, tok.pad_token_id),
            num_workers=self.cfg.num_workers,
        )
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
            callbacks.append(
                ModelCheckpoint(
                    dirpath=state_dir,
                    filename="epoch{epoch}",
                    save_top_k=1,
                    monitor=None,
                    save_last="link",
                    every_n_epochs=1,
                    save_on_train_epoch_end=True,
                )
            )
            if last.is_file():
                log.info("resuming the fit from %s", last)
        else:
            for stale in Path(state_dir).glob("*.ckpt"):  # a killed fit's state: start the fit over
                stale.unlink()
        curves = list(loggers)
        if curves:
            from pytorch_lightning.callbacks import LearningRateMonitor

            callbacks.append(LearningRateMonitor(logging_interval="step"))
        limits = {"max_epochs": self.cfg.epochs, "max_steps": self.cfg.steps_per_round or -1}
        overrides = {k: kw.pop(k) for k in limits if k in kw}  # trainer.max_epochs / max_steps, when set
        if overrides:
            log.info(
                "the fit uses %s, not student.epochs=%s / student.steps_per_round=%s",
                ", ".join(f"trainer.{k}={v}" for k, v in overrides.items()),
                self.cfg.epochs,
                self.cfg.steps_per_round,
            )
        limits.update(overrides)
        trainer = pl.Trainer(
            **limits,
            default_root_dir=state_dir,
            logger=[CSVLogger(state_dir, name="", version="logs"), *curves],
            callbacks=callbacks,
            enable_checkpointing=bool(self.cfg.resume_from_last_epoch),
            **kw,
        )
        t0 = time.time()
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(last) if last.is_file() else None)
        seconds = time.time() - t0
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if is_main_process():  # one writer; with ddp_spawn the fit's ranks have returned to this process
            tmp = out_dir + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(module.model, tok, tmp)
            shutil.rmtree(out_dir, ignore_errors=True)
            os.replace(tmp, out_dir)
        trainer.strategy.barrier("student-saved")  # other ranks may read out_dir right after
        tokens = metrics.get("train/tokens") or float(module.tokens_seen)
        return {
            "train_loss": metrics.get("train/loss_epoch"),
            "train_steps": max(int(trainer.global_step), int(metrics.get("train/steps", 0))),
            "train_examples": len(data),
            "train_seconds": round(seconds, 2),
            "train_tokens_per_s": round(tokens / seconds, 1) if seconds > 0 and tokens else None,
            **data.summary,
        }

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
    @property
    def generator(self) -> Generator:
        """The generation path this config chose (fdd/students/backends.py), made at first use."""
        if self._generator is None:
            self._generator = build_generator(self.spec, self._hf, self.tokenizer)
        return self._generator

    def generate_texts(
        self, prompts: Sequence[str], ckpt_dir: Optional[str], desc: str = "generate", sampling: Optional[Dict] = None
    ) -> List[str]:
        """Greedy completions of ``prompts`` in order (sampled with ``sampling={"temperature",
        "seed"}``), by the configured generator; ``ckpt_dir=None`` is the base student."""
        enc = encode_prompts(self.tokenizer(), prompts, self.cfg.arch, self.cfg.max_source_len)
        if ckpt_dir is None and not isinstance(self.generator, HFGenerator):
            # vLLM and launched ranks load a folder: give them the base student as one
            ckpt_dir = self._base_folder()
        return self.generator.generate(enc, ckpt_dir, sampling=sampling, desc=desc)

    def _base_folder(self) -> str:
        """The base student saved once beside the tokenizer, for generators that load folders."""
        out = str(Path(self.tokenizer_dir).with_name("base_student"))
        if not Path(out, "config.json").is_file():
            tmp = out + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(self._hf.model(None), self.tokenizer(), tmp)
            os.replace(tmp, out)
        return out

    def rationales(
        self,
        problems: Sequence[Problem],
        ckpt_dir: Optional[str],
        desc: str = "answer",
        sampling: Optional[Dict] = None,
    ) -> List[str]:
        """The student's rationale for each problem (``ckpt_dir=None``: the base student,
        untrained). Reading and checking the answers is the caller's (fdd/method/grading.py)."""
        if not problems:
            return []
        return self.generate_texts(
            [self.fmt.student_prompt(p.question) for p in problems], ckpt_dir, desc=desc, sampling=sampling
        )
