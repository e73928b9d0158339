"""Student throughput: our Lightning fit and batched generation vs the Hugging Face baselines.

Both sides of every row run in this one process on the same model init, examples, epochs,
batch size, learning rate and precision, interleaved (ours, HF, HF, ours, ...) so that load
from other jobs on the machine hits both alike.

* training  -- target tokens/s (non-padding label tokens per second of ``fit``): ``Student.fit``
  (Lightning, length-grouped batches, with the fastest student options, printed: by default
  ``student.fast_train=true``) vs ``transformers.Trainer`` / ``Seq2SeqTrainer``
  (``DataCollatorForSeq2Seq`` padding to the batch's longest) twice: the naive baseline (random
  sampler) and the informed one (``train_sampling_strategy="group_by_length"``, transformers 5's
  spelling of ``group_by_length``).
* evaluation -- problems/s of a student trained for ``--eval-epochs`` (one that writes programs
  and ends them, as the loop's students do): our greedy decoding (``fdd/students/decode.py``:
  length-sorted batches, finished rows leave the batch) vs ``model.generate`` on one problem at a
  time (naive) and vs ``model.generate`` on the same padded batches (informed: left padding for
  causal students, ``--gen-batch`` a batch, greedy), without and with the PoT stop at the answer
  line (the baseline then gets the same rule as a stopping criterion and its text is cut by it).
  "same text" counts the problems whose texts are identical. A last pair answers with the
  first token only (the prompt pass: causal prefill, or the encoder and one decoder step), the
  part both sides do with the same kernels; generate's full time over ours there is the most
  any decoder could gain ("ceiling"). ``--continuous-batching`` adds transformers 5's own
  continuous batching (``generate_batch``, causal students), timed once.
* on a CUDA machine also flan-t5-base and SmolLM2-135M in bf16-mixed (evaluation in the same
  precision), with model FLOPs utilisation: 6 * parameters * tokens / time / peak bf16 FLOP/s,
  where a causal model's tokens are its input tokens, and a seq2seq model's encoder parameters
  see the encoder's tokens and its decoder (and head) parameters the decoder's tokens, each once.
  The peak is looked up by the exact CUDA device name (``PEAK_BF16``) or given by ``--peak-tflops``;
  an unknown device gets no MFU rather than a neighbour's peak.

    python benchmarks/student_throughput.py                 # tiny-llama (bytes), ~7-9 min on 2 cores
    python benchmarks/student_throughput.py --student tiny-t5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Dense bf16 tensor-core peaks (no sparsity) from the vendors' data sheets, keyed by the exact
# torch.cuda.get_device_name(): a substring match would give an L40S the L4's peak.
PEAK_BF16 = {
    "NVIDIA H100 80GB HBM3": 989e12,
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,
    "NVIDIA GH200 480GB": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10": 125e12,
}


def peak_flops(name: str, override_tflops=None):
    """Peak bf16 FLOP/s for a device: the flag, else the exact name in the table, else None."""
    if override_tflops:
        return override_tflops * 1e12
    return PEAK_BF16.get(name)


def train_flops(model, rows, arch: str) -> float:
    """Model FLOPs of one epoch over ``rows`` (6 per parameter per token it processes)."""
    n_all = sum(p.numel() for p in model.parameters())
    if arch != "seq2seq":
        return 6.0 * n_all * sum(len(r["input_ids"]) for r in rows)
    n_enc = sum(p.numel() for p in model.get_encoder().parameters())
    enc_tokens = sum(len(r["input_ids"]) for r in rows)
    dec_tokens = sum(len(r["labels"]) for r in rows)
    return 6.0 * (n_enc * enc_tokens + (n_all - n_enc) * dec_tokens)


def _cfg(student: str, overrides: List[str], out: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import fdd.main  # noqa: F401  registers the schemas

    with initialize_config_dir(config_dir=str(ROOT / "fdd" / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"student={student}", f"paths.output_dir={out}", "logger=none", *overrides])
    return OmegaConf.to_object(cfg.student), OmegaConf.to_container(cfg.trainer)


def _items(n: int, seed: int, split: str):
    from fdd.sim.world import generate, render
    from fdd.types import Item

    return [
        Item(p.id, p.question, p.answer, p.source, render(p.meta["world"])[1])
        for p in generate(n, seed, split, min_steps=1, max_steps=5)
    ]


def _label_tokens(data) -> int:
    return sum(sum(1 for t in r["labels"] if t != -100) for r in data.rows)


def train_ours(student, items, work: Path, tag: str) -> Dict:
    info = student.fit(items, str(work / f"ours-{tag}"), str(work / f"state-{tag}"))
    return {"seconds": info["train_seconds"], "ckpt": str(work / f"ours-{tag}")}


def train_hf(scfg, trainer_cfg, tok, data, work: Path, seed: int, sampling: str = "random") -> Dict:
    """``sampling``: "random" (the Trainer's default) or "group_by_length" (informed)."""
    from transformers import (
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        Trainer,
        TrainingArguments,
    )

    from fdd.students.model import build_model

    model = build_model(scfg, tok, seed=seed)
    model.train()
    steps = -(-len(data) // scfg.batch_size) * scfg.epochs
    bf16 = str(trainer_cfg.get("precision", "32")).startswith("bf16")
    seq2seq = scfg.arch == "seq2seq"
    args_cls = Seq2SeqTrainingArguments if seq2seq else TrainingArguments
    args = args_cls(
        output_dir=str(work / "hf"),
        per_device_train_batch_size=scfg.batch_size,
        num_train_epochs=scfg.epochs,
        learning_rate=scfg.lr,
        weight_decay=scfg.weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=int(scfg.warmup_ratio * steps),
        max_grad_norm=float(trainer_cfg.get("gradient_clip_val") or 1.0),
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        save_strategy="no",
        report_to=[],
        logging_steps=10**6,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
        train_sampling_strategy=sampling,
    )
    collator = DataCollatorForSeq2Seq(tok, model=model if seq2seq else None, padding="longest", label_pad_token_id=-100)
    trainer = (Seq2SeqTrainer if seq2seq else Trainer)(
        model=model, args=args, train_dataset=data.rows, data_collator=collator
    )
    t0 = time.time()
    trainer.train()
    return {"seconds": time.time() - t0}


HF_TRAIN = {
    "hf": ("random", "HF Trainer, random sampler"),
    "hf-grouped": ("group_by_length", "HF Trainer, group_by_length"),
}


def ours_overrides(args) -> List[str]:
    """The student options of the "ours" rows (the fastest measured on the machine)."""
    return [f"student.fast_train={str(args.fast_train).lower()}", f"student.packing={str(args.packing).lower()}"] + (
        [f"student.pack_max_tokens={args.pack_max_tokens}"] if args.packing else []
    )


def bench_training(args, student_name: str, overrides: List[str], work: Path, rows: List, gpu: bool):
    from fdd.reasoning.formats import get_format
    from fdd.students.student import Student

    scfg, tcfg = _cfg(student_name, overrides, str(work))
    fast_cfg, _ = _cfg(student_name, overrides + ours_overrides(args), str(work))
    tcfg.update(enable_progress_bar=False, log_every_n_steps=10**6)
    items = _items(args.n, 0, "train")
    student = Student(fast_cfg, tcfg, get_format("pot"), 0, str(work / f"tok-{student_name}"))
    data = student._encode(items)
    tok = student.tokenizer()
    tokens = _label_tokens(data) * scfg.epochs
    speed: Dict[str, List[float]] = {"ours": [], **{k: [] for k in HF_TRAIN}}
    ckpt = None
    sides = list(speed)
    for r in range(args.repeats):
        for side in sides[r % len(sides) :] + sides[: r % len(sides)]:  # each side goes first once
            if side == "ours":
                res = train_ours(student, items, work, f"{student_name}-{r}")
                speed["ours"].append(tokens / res["seconds"])
                ckpt = res["ckpt"]
            else:
                res = train_hf(scfg, tcfg, tok, data, work, 0, sampling=HF_TRAIN[side][0])
                speed[side].append(tokens / res["seconds"])
    med = {k: statistics.median(v) for k, v in speed.items()}
    prec = tcfg.get("precision")
    work_txt = f"{len(data)} ex x {scfg.epochs} ep, bs {scfg.batch_size}, {prec}"
    flops = None
    if gpu:
        from fdd.students.model import build_model

        flops = train_flops(build_model(scfg, tok, seed=0), data.rows, scfg.arch) * scfg.epochs
        name = torch.cuda.get_device_name()
        peak = peak_flops(name, args.peak_tflops)
    for side in HF_TRAIN:
        o, h = med["ours"], med[side]
        row = [
            f"train vs {HF_TRAIN[side][1]}",
            student_name,
            work_txt,
            f"{o:,.0f} tok/s",
            f"{h:,.0f} tok/s",
            f"{o / h:.2f}x",
        ]
        if flops is not None:
            if peak:
                mfu = lambda tps: flops / (tokens / tps) / peak  # noqa: E731
                row[-1] += f" (MFU {mfu(o):.1%} vs {mfu(h):.1%})"
            else:
                row[-1] += f" (no MFU: {name!r} not in PEAK_BF16; pass --peak-tflops)"
        rows.append(row)
    if args.eval_epochs:
        # The evaluation student: trained until it writes programs and ends them (EOS), as the
        # loop's students do; the 2-epoch model above still writes noise to the token limit.
        import dataclasses

        ev = Student(
            dataclasses.replace(fast_cfg, epochs=args.eval_epochs), tcfg, get_format("pot"), 0, student.tokenizer_dir
        )
        ckpt = str(work / f"eval-{student_name}")
        ev.fit(items, ckpt, str(work / f"state-eval-{student_name}"))
    return student, ckpt


@torch.inference_mode()
def hf_batched(model, tok, enc, batches, arch: str, max_new_tokens: int, stop: bool) -> List[str]:
    """The informed baseline: ``model.generate`` (greedy) on the same padded batches as ours (left
    padding for causal models), with the PoT answer-line stop as a stopping criterion when
    ``stop`` (its text cut by the same rule, as ours is)."""
    from transformers import StoppingCriteriaList

    from fdd.reasoning.formats import get_format
    from fdd.students.generate import AnswerLineStop, cut_at_stop, pad_batch

    rule = get_format("pot").stop_rule if stop else None

    device = next(model.parameters()).device
    out = {}
    for idx in batches:
        ids, mask = pad_batch(enc, idx, tok.pad_token_id, arch)
        n = ids.shape[1]
        kw = {}
        if stop:
            kw["stopping_criteria"] = StoppingCriteriaList([AnswerLineStop(tok, n if arch == "causal" else 0, rule)])
        g = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            **kw,
        )
        if arch == "causal":
            g = g[:, n:]
        for row, i in enumerate(idx):
            text = tok.decode(g[row], skip_special_tokens=True)
            out[i] = cut_at_stop(text, rule).strip()
    return [out[i] for i in range(len(enc))]


@torch.inference_mode()
def hf_continuous(model, tok, enc, max_new_tokens: int) -> List[str]:
    """transformers 5's continuous batching (``generate_batch``, greedy): requests join and
    leave a paged cache as they start and finish."""
    from transformers import GenerationConfig

    gc = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    got = model.generate_batch(inputs=[list(e) for e in enc], generation_config=gc, progress_bar=False)
    out = {int(str(rid).rsplit("_", 1)[-1]): o.generated_tokens for rid, o in got.items()}
    return [tok.decode(out[i], skip_special_tokens=True).strip() for i in range(len(enc))]


def bench_eval(args, student, ckpt: str, rows: List):
    from fdd.reasoning.formats import get_format
    from fdd.runtime.modeling import model_class
    from fdd.students.generate import encode_prompts, generate, plan_batches
    from fdd.students.model import precision_dtype

    scfg = student.cfg
    tok = student.tokenizer()
    model = model_class(scfg.arch).from_pretrained(ckpt, dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.to("cuda")
        dtype = precision_dtype(student.trainer_cfg.get("precision"))
        if dtype is not None:  # evaluate in the precision it trained in, as the loop does
            model = model.to(dtype)
    model.eval()
    fmt = get_format("pot")
    prompts = [fmt.student_prompt(it.question) for it in _items(args.eval_n, 0, "test")]
    mnt = args.max_new_tokens
    enc = encode_prompts(tok, prompts, scfg.arch, scfg.max_source_len)
    batches = plan_batches([len(e) for e in enc], args.gen_batch)

    def ours(stop: bool, new_tokens: int = mnt):
        return generate(
            model,
            tok,
            prompts,
            scfg.arch,
            batch_size=args.gen_batch,
            max_new_tokens=new_tokens,
            max_source_len=scfg.max_source_len,
            stop_rule=fmt.stop_rule if stop else None,
        )

    sides = {
        "ours": lambda: ours(False),
        "ours-stop": lambda: ours(True),
        "hf-batched": lambda: hf_batched(model, tok, enc, batches, scfg.arch, mnt, False),
        "hf-batched-stop": lambda: hf_batched(model, tok, enc, batches, scfg.arch, mnt, True),
        # the first token alone: the prompt pass (causal prefill, or the encoder and one decoder
        # step), the part of the work both sides do with the same kernels on the same batches
        "ours-first": lambda: ours(False, 1),
        "hf-first": lambda: hf_batched(model, tok, enc, batches, scfg.arch, 1, False),
    }
    if args.naive_eval:
        # the naive baseline: generate on one problem at a time (a batch of one has no padding)
        singles = [[i] for i in range(len(enc))]
        sides["hf-one"] = lambda: hf_batched(model, tok, enc, singles, scfg.arch, mnt, False)
    times: Dict[str, List[float]] = {k: [] for k in sides}
    texts: Dict[str, List[str]] = {}
    names = list(sides)
    for r in range(args.eval_repeats):
        for side in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.time()
            texts[side] = sides[side]()
            times[side].append(time.time() - t0)
    rate = {k: len(prompts) / statistics.median(v) for k, v in times.items()}
    work_txt = f"{len(prompts)} problems, gen bs {args.gen_batch}, max {mnt} new tok"
    pairs = [("ours", "hf-one", "eval vs HF generate, one at a time")] if args.naive_eval else []
    pairs += [
        ("ours", "hf-batched", "eval vs HF batched generate"),
        ("ours-stop", "hf-batched-stop", "eval, stop at answer, vs HF batched generate + stop"),
        ("ours-first", "hf-first", "eval, first token only (prompt pass)"),
    ]
    if args.continuous_batching and scfg.arch == "causal":
        # slow on CPU (about 20x batched generate here): timed once, after one untimed call
        hf_continuous(model, tok, enc, mnt)
        t0 = time.time()
        texts["hf-cb"] = hf_continuous(model, tok, enc, mnt)
        times["hf-cb"] = [time.time() - t0]
        rate["hf-cb"] = len(prompts) / times["hf-cb"][0]
        pairs.append(("ours", "hf-cb", "eval vs HF continuous batching (generate_batch)"))
    med = {k: statistics.median(v) for k, v in times.items()}
    for mine, base, what in pairs:
        same = sum(a == b for a, b in zip(texts[mine], texts[base]))
        o, h = rate[mine], rate[base]
        note = f"same text {same}/{len(prompts)}"
        if mine == "ours-first":
            # what bounds the evaluation ratio: with every later step free, ours would still take
            # the prompt pass, so generate's full time over it is the most any decoder gets
            note = f"{med['hf-first'] / med['hf-batched']:.0%} of generate's time; ceiling {med['hf-batched'] / med['ours-first']:.2f}x"
        rows.append([what, scfg.name, work_txt, f"{o:,.1f} prob/s", f"{h:,.1f} prob/s", f"{o / h:.2f}x ({note})"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", default="tiny-llama", help="tiny student for the CPU rows (tiny-llama | tiny-t5)")
    ap.add_argument("--n", type=int, default=400, help="training examples")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5, help="training runs per side (median)")
    ap.add_argument("--eval-n", type=int, default=128, help="problems to answer")
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--eval-repeats", type=int, default=5, help="evaluation runs per side (median)")
    ap.add_argument(
        "--eval-epochs", type=int, default=15, help="epochs of the evaluation student (0: the 2-epoch training model)"
    )
    ap.add_argument("--no-naive-eval", dest="naive_eval", action="store_false", help="skip generate one at a time")
    ap.add_argument(
        "--continuous-batching",
        action="store_true",
        help="also time transformers' continuous batching (generate_batch; causal students; slow on CPU)",
    )
    ap.add_argument(
        "--fast-train", default=True, action=argparse.BooleanOptionalAction, help="ours: student.fast_train"
    )
    ap.add_argument("--packing", default=False, action=argparse.BooleanOptionalAction, help="ours: student.packing")
    ap.add_argument("--pack-max-tokens", type=int, default=1024)
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the GPU's peak dense bf16 TFLOP/s for MFU (default: PEAK_BF16 by exact device name)",
    )
    # 1 by default: on a small shared CPU box, oversubscribed OpenMP threads stall a tiny model
    # ~10x and drown the comparison. 0 = torch's default.
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("pytorch_lightning", "lightning_fabric", "lightning", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows: List = []
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="fdd-bench-") as tmp:
        work = Path(tmp)
        common = [f"student.epochs={args.epochs}", f"student.batch_size={args.batch_size}"]
        trainer = ["trainer=gpu"] if gpu else ["trainer=cpu"]
        student, ckpt = bench_training(args, args.student, common + trainer, work, rows, gpu=gpu)
        bench_eval(args, student, ckpt, rows)
        if gpu:
            for name in ("flan-t5-base", "smollm2-135m"):
                try:
                    s, c = bench_training(args, name, common + ["trainer=gpu"], work, rows, gpu=True)
                    bench_eval(args, s, c, rows)
                except Exception as e:  # noqa: BLE001 - e.g. the Hub unreachable for flan-t5-base
                    rows.append(["train", name, f"failed: {type(e).__name__}: {str(e)[:60]}", "", "", ""])
    head = ["what", "student", "work", "ours", "baseline", "ratio"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{'CUDA ' + torch.cuda.get_device_name() if gpu else 'CPU only'}"
    )
    print("ours: " + " ".join(ours_overrides(args)) + "; greedy decoding by fdd/students/decode.py")
    print(line(head))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    if not gpu:
        print("GPU rows (flan-t5-base, SmolLM2-135M in bf16-mixed, MFU) skipped: no CUDA device.")


if __name__ == "__main__":
    main()
