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

from fdd.students.data import EncodedDataset, LengthGroupedBatchSampler, encode_training_set, training_collator
from fdd.students.distributed import (
    externally_launched,
    gather_in_order,
    launch,
    rank_world,
    requested_world_size,
    uses_cuda,
)
from fdd.students.fidelity import (
    Codec,
    FaithfulTokenizer,
    UnrepresentableError,
    count,
    fit_codec,
    init_marker_embeddings,
    percentiles,
    why_lost,
)
from fdd.students.generate import encode_prompts, generate_batches, plan_batches
from fdd.students.model import build_model, save_model
from fdd.students.tokenizer import build_tokenizer
from fdd.types import Item, Prediction, Problem

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
        self._gen_slot = None  # the generation model's GPU-plan slot (fdd/gpu_plan.py), made at first use

    # -- tokenizer -------------------------------------------------------------------------
    def tokenizer(self, corpus: Optional[Sequence[str]] = None):
        if self._tokenizer is None:
            tok = build_tokenizer(self.cfg, corpus=corpus, saved=self.tokenizer_dir)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            saved = Path(self.tokenizer_dir, "tokenizer_config.json").is_file()
            # The codec is fitted once, with the tokenizer, and read back with it afterwards.
            codec = (
                Codec.load(self.tokenizer_dir)
                if saved
                else fit_codec(tok, corpus)
                if getattr(self.cfg, "fidelity", True)
                else Codec()
            )
            tok = FaithfulTokenizer(tok, codec)
            if not saved:
                tmp = self.tokenizer_dir + ".tmp"
                tok.save_pretrained(tmp)
                os.replace(tmp, self.tokenizer_dir)
            self._tokenizer = tok
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
                f"tokenizer ({lost}; student.fidelity={getattr(self.cfg, 'fidelity', True)}), more than "
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
        self, items: Sequence[Item], out_dir: str, state_dir: str, init_from: Optional[str] = None, round_idx: int = 1
    ) -> Dict:
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
        if init_from is None and isinstance(tok, FaithfulTokenizer):
            init_marker_embeddings(model, tok)  # a checkpoint's marker rows are trained already
        model.train()  # from_pretrained returns eval mode; dropout belongs in fine-tuning
        module = StudentModule(
            model,
            lr=self.cfg.lr,
            weight_decay=self.cfg.weight_decay,
            warmup_ratio=self.cfg.warmup_ratio,
            fast=getattr(self.cfg, "fast_train", False),
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
        from fdd.tracking import curve_loggers

        curves = curve_loggers(round_idx)  # per-step loss and lr into the run's wandb run, when there is one
        if curves:
            from pytorch_lightning.callbacks import LearningRateMonitor

            callbacks.append(LearningRateMonitor(logging_interval="step"))
        trainer = pl.Trainer(
            max_epochs=self.cfg.epochs,
            max_steps=self.cfg.steps_per_round or -1,
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
        if trainer.is_global_zero:  # one writer; with ddp_spawn this is the main process
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
    def _model(self, ckpt_dir: Optional[str]):
        """The generation model for ``ckpt_dir`` (``None`` = the base student, before any
        training), held in a GPU-plan slot: released before a fit or another engine takes the
        GPU (fdd/gpu_plan.py)."""
        if self._gen_slot is None:
            from fdd.gpu_plan import EngineSlot

            self._gen_slot = EngineSlot("student generation")
        return self._gen_slot.get(ckpt_dir, lambda: self._load_for_generation(ckpt_dir))

    def _load_for_generation(self, ckpt_dir: Optional[str]):
        from fdd.students.model import _model_class, precision_dtype

        if ckpt_dir is None:
            model = build_model(self.cfg, self.tokenizer(), seed=self.seed).eval()
            model.config.use_cache = True  # build_model turns it off for gradient checkpointing
        else:
            model = _model_class(self.cfg.arch).from_pretrained(ckpt_dir, dtype=torch.float32)
        if uses_cuda(self.trainer_cfg):
            model = model.to(torch.device("cuda", torch.cuda.current_device()))
            dtype = precision_dtype(self.trainer_cfg.get("precision"))
            if dtype is not None:
                model = model.to(dtype)  # generation in the precision it trained in
        return model

    def generate_texts(
        self, prompts: Sequence[str], ckpt_dir: Optional[str], desc: str = "generate", sampling: Optional[Dict] = None
    ) -> List[str]:
        """Greedy completions of ``prompts`` in order (sampled with ``sampling={"temperature",
        "seed"}``). Inside a process group (DDP) each rank
        generates its share of the batches and every rank gets all texts back; from a single
        process with a ddp trainer config, worker processes are launched to do the same."""
        gen = self.cfg.generation
        stop = gen.stop_at_answer and getattr(self.fmt, "name", "") == "pot"  # only programs have answer lines
        tok = self.tokenizer()
        enc = encode_prompts(tok, prompts, self.cfg.arch, self.cfg.max_source_len)
        if ckpt_dir is None and (gen.backend == "vllm" or requested_world_size(self.trainer_cfg) > 1):
            # vLLM and launched ranks load a folder: give them the base student as one
            ckpt_dir = self._base_folder()
        rank, world = rank_world()
        requested = requested_world_size(self.trainer_cfg)
        if world == 1 and requested > 1 and len(prompts) > gen.batch_size and sampling is None:
            return self._generate_launched(prompts, ckpt_dir, requested)
        if gen.backend == "vllm":
            return self._generate_vllm(enc, ckpt_dir, stop)
        batches = plan_batches([len(e) for e in enc], gen.batch_size)
        local = generate_batches(
            self._model(ckpt_dir),
            tok,
            enc,
            batches[rank::world],
            self.cfg.arch,
            max_new_tokens=gen.max_new_tokens,
            stop_at_answer=stop,
            progress=rank == 0,
            desc=desc,
            sampling=sampling,
        )
        return gather_in_order(local, len(enc)) if world > 1 else [local[i] for i in range(len(enc))]

    def _base_folder(self) -> str:
        """The base student saved once beside the tokenizer, for generators that load folders."""
        out = str(Path(self.tokenizer_dir).with_name("base_student"))
        if not Path(out, "config.json").is_file():
            tmp = out + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            save_model(self._model(None), self.tokenizer(), tmp)
            os.replace(tmp, out)
        return out

    def _generate_vllm(self, enc: List[List[int]], ckpt_dir: str, stop: bool) -> List[str]:
        """vLLM generation; under DDP one engine per rank, on its own device, answers every
        world-th prompt, and every rank gets all texts back in order."""
        from fdd.students.model import precision_dtype
        from fdd.students.vllm_generate import generate_vllm, vllm_dtype

        gen = self.cfg.generation
        rank, world = rank_world()
        mine = list(range(rank, len(enc), world))
        local_rank = int(os.environ.get("LOCAL_RANK", rank)) if world > 1 else None
        texts = generate_vllm(
            ckpt_dir,
            [enc[i] for i in mine],
            gen.max_new_tokens,
            stop_at_answer=stop,
            engine_kwargs={k: v for k, v in dict(getattr(gen, "vllm", None) or {}).items() if v is not None},
            dtype=vllm_dtype(precision_dtype(self.trainer_cfg.get("precision"))),
            local_rank=local_rank,
        )
        if isinstance(self.tokenizer(), FaithfulTokenizer):  # vLLM decodes with the bare tokenizer
            texts = [self.tokenizer().restore(t) for t in texts]
        local = dict(zip(mine, texts))
        return gather_in_order(local, len(enc)) if world > 1 else [local[i] for i in range(len(enc))]

    def _generate_launched(self, prompts: Sequence[str], ckpt_dir: str, world: int) -> List[str]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="fdd-gen-") as tmp:
            out = str(Path(tmp, "texts.json"))
            launch(
                _generate_worker,
                world,
                args=(
                    self.cfg,
                    self.trainer_cfg,
                    self.fmt,
                    self.seed,
                    self.tokenizer_dir,
                    list(prompts),
                    ckpt_dir,
                    out,
                ),
                cuda=uses_cuda(self.trainer_cfg),
            )
            with open(out, encoding="utf-8") as f:
                return json.load(f)

    def answer(
        self,
        problems: Sequence[Problem],
        ckpt_dir: Optional[str],
        sandbox,
        desc: str = "answer",
        sampling: Optional[Dict] = None,
    ) -> List[Prediction]:
        """Greedy (or ``sampling``) answers to ``problems``, each checked against its gold answer
        (``ckpt_dir=None``: the base student, untrained)."""
        from fdd.reasoning.answer import answers_match

        if not problems:
            return []
        texts = self.generate_texts(
            [self.fmt.student_prompt(p.question) for p in problems], ckpt_dir, desc=desc, sampling=sampling
        )
        results = self.fmt.extract(texts, sandbox)
        return [
            Prediction(
                id=p.id,
                output=t,
                predicted=r.value,
                gold=p.answer,
                correct=r.value is not None and p.answer is not None and answers_match(r.value, p.answer),
                error=r.error,
            )
            for p, t, r in zip(problems, texts, results)
        ]


def _generate_worker(cfg, trainer_cfg, fmt, seed, tokenizer_dir, prompts, ckpt_dir, out) -> None:
    """One rank of launched generation; rank 0 writes the gathered texts to ``out``."""
    texts = Student(cfg, trainer_cfg, fmt, seed, tokenizer_dir).generate_texts(prompts, ckpt_dir)
    if rank_world()[0] == 0:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(texts, f)
