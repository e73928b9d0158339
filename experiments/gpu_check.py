#!/usr/bin/env python
"""GPU device check that fits the lent machine: two short FDD rounds of a flan-t5-base and a
flan-t5-large shaped student in bf16-mixed, in one script under 8 minutes.

The lent machine (one H100/H200, 15 minutes a session, no network) has torch, transformers,
Lightning and peft but neither Hydra, omegaconf nor wandb, and only 64 MiB travel with the tree,
so no pretrained weights. What it runs instead:

* the missing pure-Python packages from ``.gpu_carry/wheels`` (``bash scripts/gpu_carry.sh``
  builds the folder here), unpacked into a temporary folder at start, where they are missing;
* the real configs, ``experiment=gpu_check`` (fdd/conf/experiment/gpu_check.yaml): ``trainer=gpu``
  (bf16-mixed), the simulator teacher (``teacher=oracle``), ``dataset=synthetic``,
  ``logger=none``, the HF generation path, 2 rounds of ``student.steps_per_round`` steps;
* a student of the real shape (d_model, d_ff, heads, layers, the 32128-row vocabulary) with random
  weights and the offline T5-like SentencePiece tokenizer (tests/t5like.py, carried prebuilt in
  ``.gpu_carry/t5like``), written to a folder that ``student.pretrained`` names.

It prints, per size: fit target tokens/s and MFU per round, the peak GPU memory of each stage,
the round accuracies (the run's metrics.jsonl), and eval problems/s of fdd's generation path (the
student's generator: fdd/students/decode.py's greedy loop) vs ``model.generate`` on the same
problems, batches and model. MFU = 6 * parameters * tokens / fit seconds / peak dense bf16 FLOP/s,
each token counted through the matmul parameters it passes (encoder layers x source tokens,
decoder layers and LM head x target tokens; ``param_counts``), the fit seconds fdd's own (Lightning
set-up included), the peak looked up by the exact device name in benchmarks/student_throughput.py
(its ``PEAK_BF16``) or given by ``--peak-tflops``. A wall-clock guard (``--budget``) skips what
would start after it and says so; a stage already running finishes.

    bash scripts/gpu_carry.sh                                  # here: .gpu_carry/ (< 64 MiB)
    python3 experiments/gpu_check.py --size both               # there: base, then large
    python experiments/gpu_check.py --cpu                      # here: tiny shape, trainer=cpu (the test's)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CARRY = ROOT / ".gpu_carry"
CARRY_LIMIT_MIB = 64  # what travels to the lent machine: tree + carried folders, together
BUDGET_S = 420.0  # the guard: nothing starts after this many seconds (a started stage finishes)

# google/flan-t5-base and google/flan-t5-large (T5 v1.1: gated-GELU, untied head), from their
# config.json; "tiny" is the CPU mode's. A vocabulary is never smaller than the tokenizer's length.
T5_COMMON = dict(
    vocab_size=32128,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    dropout_rate=0.1,
    layer_norm_epsilon=1e-6,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
)
SHAPES = {
    "base": dict(d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12),
    "large": dict(d_model=1024, d_ff=2816, d_kv=64, num_heads=16, num_layers=24, num_decoder_layers=24),
    "tiny": dict(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2, num_decoder_layers=2, vocab_size=512),
}
STUDENTS = {"base": "flan-t5-base", "large": "flan-t5-large", "tiny": "flan-t5-base"}

# --cpu: the tiny shape on trainer=cpu, small enough for a test (the rest is experiment=gpu_check)
CPU_OVERRIDES = [
    "trainer=cpu",
    "student.batch_size=8",
    "student.steps_per_round=6",
    "student.max_target_len=128",
    "student.generation.batch_size=8",
    "student.generation.max_new_tokens=24",
    "dataset.train.n=24",
    "dataset.eval.synthetic.n=12",
    "train_subset=8",
    "sandbox.workers=1",
]
NA = "n/a"


class OutOfTime(RuntimeError):
    """The wall-clock guard: what was about to start would begin after the budget."""


def fail(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr)
    sys.exit(2)


def say(msg: str) -> None:
    print(f"gpu_check: {msg}", flush=True)


# ---------------------------------------------------------------------------- the carry folder
def carried_modules(wheels: Sequence[Path]) -> List[str]:
    """Top-level import names the wheels hold (their top_level.txt, else their first folders)."""
    names = set()
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            tops = [n for n in z.namelist() if n.endswith(".dist-info/top_level.txt")]
            if tops:
                names.update(x.strip() for x in z.read(tops[0]).decode().split() if x.strip())
            else:
                names.update(
                    n.split("/")[0] for n in z.namelist() if "/" in n and not n.split("/")[0].endswith(".dist-info")
                )
    return sorted(n for n in names if n.isidentifier())


def bootstrap(carry: Path = CARRY, site: Optional[Path] = None) -> Optional[Path]:
    """Make the carried pure-Python wheels importable when one of their packages is missing here
    (the lent machine has no network, so nothing is installed from an index): they are unpacked
    into ``site`` (a temporary folder), which goes to the END of ``sys.path`` and to
    ``PYTHONPATH``, so a package the machine has keeps its own version. Returns ``site``, or None
    when nothing was missing."""
    wheels = sorted((carry / "wheels").glob("*.whl"))
    need = carried_modules(wheels) if wheels else ["hydra", "omegaconf"]
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    if not wheels:
        fail(f"{', '.join(missing)} missing and no wheels in {carry / 'wheels'}: run bash scripts/gpu_carry.sh")
    site = site or Path(tempfile.gettempdir()) / "fdd-gpu-carry-site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for whl in wheels:  # a pure-Python wheel is a zip of its import folders: unpacking installs it
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)
    sys.path.append(str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"), str(site)) if p)
    importlib.invalidate_caches()
    say(f"unpacked {len(wheels)} carried wheels for {', '.join(missing)} into {site}")
    return site


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink())


def tree_bytes(root: Path = ROOT) -> Optional[int]:
    """Bytes of what travels without ``carry``: tracked and untracked-not-ignored files (None
    outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = {root / n for n in out.decode().split("\0") if n}
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def carry_report(carry: Path, root: Path = ROOT, limit_mib: float = CARRY_LIMIT_MIB) -> Dict:
    """The carry folder's size and, with the tree, what one ``run`` would send; ``ok`` when both
    stay under ``limit_mib``."""
    carry_b = folder_bytes(carry)
    tree_b = tree_bytes(root)
    total = carry_b + (tree_b or 0)
    limit = limit_mib * 2**20
    return {
        "carry_mib": round(carry_b / 2**20, 2),
        "tree_mib": None if tree_b is None else round(tree_b / 2**20, 2),
        "total_mib": round(total / 2**20, 2),
        "limit_mib": limit_mib,
        "ok": carry_b < limit and total < limit,
    }


# ---------------------------------------------------------------------------- the student folder
def build_t5like_tokenizer(out: Path, vocab_size: int = 2000) -> Path:
    """The offline T5-like SentencePiece tokenizer (tests/t5like.py), its corpus widened by the
    synthetic world's words (other seeds than a run's), as T5's vocabulary knows English."""
    out = Path(out)
    if (out / "tokenizer_config.json").is_file():
        return out
    from transformers import AutoTokenizer

    from fdd.sim.world import generate, render
    from tests.t5like import corpus, train_spm

    world = [t for p in generate(800, seed=99, split="train") for t in render(p.meta["world"])[:2]]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "spiece.model").write_bytes(train_spm(corpus(extra=world), vocab_size))
    (tmp / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 512})
    )
    AutoTokenizer.from_pretrained(str(tmp)).save_pretrained(str(tmp))  # adds tokenizer.json, as the Hub's
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def param_counts(model) -> Dict:
    """All parameters (each once), and the matmul weights a token passes through (the
    ``nn.Linear`` layers: no embedding lookup, norm or position bias): the encoder's, and the
    decoder's with the LM head, which runs on every target token whether or not it shares the
    embedding's matrix."""
    import torch

    def linear(module) -> int:
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))

    head = model.get_output_embeddings()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "encoder_matmul": linear(model.get_encoder()),
        "decoder_matmul": linear(model.get_decoder()) + head.weight.numel(),
        "tied_head": head.weight is model.get_input_embeddings().weight,
    }


def t5like_tokenizer(carried: Path, fallback: Path) -> Path:
    """The carried tokenizer when this transformers reads it, else one built here (seconds)."""
    if (carried / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        try:
            AutoTokenizer.from_pretrained(str(carried))
            return carried
        except Exception as exc:  # noqa: BLE001 -- e.g. written by another transformers version
            say(f"the carried tokenizer does not load here ({type(exc).__name__}: {exc}); building one")
    return build_t5like_tokenizer(fallback)


def build_student_folder(tok_dir: Path, out: Path, shape: Dict, seed: int = 0, device: str = "cpu") -> Dict:
    """A ``save_pretrained`` folder: random-init T5 of ``shape`` (initialised on ``device``) and
    the tokenizer. Returns the model's ``param_counts``."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    kw = {**T5_COMMON, **shape}
    kw["vocab_size"] = max(kw["vocab_size"] or 0, len(tok))
    conf = T5Config(
        **kw, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = T5ForConditionalGeneration(conf)
    counts = param_counts(model)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    del model
    return counts


# ---------------------------------------------------------------------------- config
def overrides_for(size: str, folder: Path, out: Path, cpu: bool, steps: Optional[int], extra: Sequence[str]):
    o = [
        "experiment=gpu_check",
        f"student={STUDENTS[size]}",
        f"student.pretrained={folder}",
        f"paths.output_dir={out / 'run'}",
        f"paths.cache_dir={out / 'cache'}",
    ]
    if cpu:
        o += CPU_OVERRIDES
    if steps:
        o.append(f"student.steps_per_round={steps}")
    return o + list(extra)


def compose(overrides: Sequence[str]):
    """The project's config composed as ``python -m fdd.main`` would (fdd/conf, the schemas)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import fdd.main  # noqa: F401  registers the schemas and resolvers

    with initialize_config_dir(config_dir=str(ROOT / "fdd" / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


# ---------------------------------------------------------------------------- measuring
class TokenCounter:
    """Source and target tokens of every training step (device tensors: no sync per step)."""

    def __init__(self) -> None:
        self.src = self.tgt = None

    def add(self, batch) -> None:
        mask = batch.get("attention_mask")
        src = (mask.sum() if mask is not None else batch["input_ids"].new_tensor(batch["input_ids"].numel())).detach()
        tgt = (batch["labels"] != -100).sum().detach()
        self.src = src if self.src is None else self.src + src
        self.tgt = tgt if self.tgt is None else self.tgt + tgt

    def take(self):
        got = (int(self.src or 0), int(self.tgt or 0))
        self.src = self.tgt = None
        return got


class Probe:
    """Wraps every stage of the loop (``StageRunner.run``): its seconds and peak GPU memory
    (``max_memory_allocated``, reset at the stage's start), the train stages' summaries and
    token counts, and the wall-clock guard."""

    def __init__(self, size: str, deadline: float, cuda: bool) -> None:
        self.size, self.deadline, self.cuda = size, deadline, cuda
        self.stages: List[Dict] = []
        self.fits: Dict[int, Dict] = {}
        self.tokens = TokenCounter()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Probe]:
        from fdd.runtime.stages import StageRunner
        from fdd.students.module import StudentModule

        real_run, real_step = StageRunner.run, StudentModule.training_step
        probe = self

        def run(runner, r, stage, fn):
            if time.time() > probe.deadline:
                raise OutOfTime(f"{probe.size}: round {r} {stage} not started")
            with probe.measure() as m:
                summary = real_run(runner, r, stage, fn)
            row = {"size": probe.size, "round": r, "stage": stage, **m}
            probe.stages.append(row)
            if stage == "train":
                src, tgt = probe.tokens.take()
                probe.fits[r] = {**summary, "src_tokens": src, "tgt_tokens": tgt}
            say(f"{probe.size} round {r} {stage:<8} {m['seconds']:7.1f} s  peak {fmt_gib(m['peak_bytes'])}")
            return summary

        def training_step(module, batch, batch_idx):
            probe.tokens.add(batch)
            return real_step(module, batch, batch_idx)

        StageRunner.run, StudentModule.training_step = run, training_step
        try:
            yield self
        finally:
            StageRunner.run, StudentModule.training_step = real_run, real_step

    @contextlib.contextmanager
    def measure(self):
        """``{"seconds", "peak_bytes"}`` of the block (peak None without CUDA)."""
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        got: Dict = {}
        t0 = time.perf_counter()
        try:
            yield got
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            got["seconds"] = time.perf_counter() - t0
            got["peak_bytes"] = torch.cuda.max_memory_allocated() if self.cuda else None


def fmt_gib(b: Optional[int]) -> str:
    return NA if b is None else f"{b / 2**30:.2f} GiB"


def _bench():
    """benchmarks/student_throughput.py: the PEAK_BF16 table and the informed generate baseline."""
    spec = importlib.util.spec_from_file_location("student_throughput", ROOT / "benchmarks" / "student_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train_flops(counts: Dict, src_tokens: int, tgt_tokens: int) -> float:
    """6 x parameters x tokens, each token through the matmul parameters it passes: the
    encoder's with the source tokens, the decoder's and the LM head's with the target tokens."""
    return 6.0 * (counts["encoder_matmul"] * src_tokens + counts["decoder_matmul"] * tgt_tokens)


def compare_eval(obj, run_dir: Path, ckpt: str, n: int, probe: Probe) -> Dict:
    """Problems/s of fdd's generation path (the student's configured generator, as the loop's
    evaluation calls it) vs ``model.generate`` (greedy, the same length-sorted batches, the same
    loaded model) on the first ``n`` held-out problems; a one-batch warm-up of each first."""
    from fdd.data import load_problems
    from fdd.reasoning.formats import get_format
    from fdd.students.generate import encode_prompts, generate_batches, plan_batches
    from fdd.students.student import Student

    bench = _bench()
    s, gen = obj.student, obj.student.generation
    fmt = get_format(obj.rationale)
    student = Student(s, obj.trainer, fmt, obj.seed, tokenizer_dir=str(run_dir / "tokenizer"))
    _, evals = load_problems(obj)
    name, problems = next(iter(evals.items()))
    problems = problems[:n]
    tok = student.tokenizer()
    enc = encode_prompts(tok, [fmt.student_prompt(p.question) for p in problems], s.arch, s.max_source_len)
    batches = plan_batches([len(e) for e in enc], gen.batch_size)
    model = student.generator.model(ckpt)  # the HF path's model: loaded once, in the fit's precision
    stop = bool(gen.stop_at_answer)
    first = [enc[i] for i in batches[0]]
    generate_batches(model, tok, first, [list(range(len(first)))], s.arch, max_new_tokens=8)
    bench.hf_batched(model, tok, first, [list(range(len(first)))], s.arch, 8, False)
    with probe.measure() as ours:
        texts_ours = student.generator.generate(enc, ckpt, desc="eval (ours)")
    with probe.measure() as hf:
        texts_hf = bench.hf_batched(model, tok, enc, batches, s.arch, gen.max_new_tokens, stop)
    return {
        "set": name,
        "problems": len(enc),
        "batch_size": gen.batch_size,
        "max_new_tokens": gen.max_new_tokens,
        "ours_per_s": len(enc) / ours["seconds"],
        "generate_per_s": len(enc) / hf["seconds"],
        "same_text": sum(a == b for a, b in zip(texts_ours, texts_hf)),
        "ours_peak_bytes": ours["peak_bytes"],
        "generate_peak_bytes": hf["peak_bytes"],
    }


# ---------------------------------------------------------------------------- one size
def check_size(size: str, args, deadline: float, cuda: bool, peak: Optional[float]) -> Dict:
    """Build the student folder, run the loop under the probe, compare the generation paths."""
    import torch

    from fdd.config import validate
    from fdd.runtime import gpu_plan
    from fdd.runtime.io import read_jsonl

    out = Path(args.out) / size
    run_dir = out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not a resumed one
    res: Dict = {"size": size, "student": STUDENTS[size], "skipped": None}
    probe = Probe(size, deadline, cuda)
    cfg = compose(overrides_for(size, out / "student", out, args.cpu, args.steps, args.overrides))
    obj = validate(cfg)
    with probe.measure() as m:
        counts = build_student_folder(
            args.tokenizer, out / "student", SHAPES[size], seed=obj.seed, device="cuda" if cuda else "cpu"
        )
    res.update(counts)
    res["build"] = {"size": size, "round": "-", "stage": "build", **m}
    say(
        f"{size}: random-init {STUDENTS[size]} shape, {counts['params'] / 1e6:.1f}M parameters "
        f"(LM head {'tied to' if counts['tied_head'] else 'apart from'} the embedding), "
        f"{obj.trainer.precision} on {obj.trainer.accelerator}, {obj.student.steps_per_round} steps/round "
        f"x batch {obj.student.batch_size}, {obj.rounds} rounds"
    )
    from fdd.main import run

    try:
        with probe.installed():
            run(cfg)
    except OutOfTime as exc:
        res["skipped"] = f"wall-clock guard ({args.budget:.0f} s): {exc} and later"
        say(f"skipped by the wall-clock guard: {exc} and later")
    except Exception as exc:  # noqa: BLE001 -- one try on the machine: keep what was measured, go on
        res["error"] = res["skipped"] = (
            f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        )
        traceback.print_exc()
    finally:
        gpu_plan.release_all("gpu_check: size done")
        gpu_plan.free_device_cache()
    res["stages"] = [res["build"], *probe.stages]
    metrics = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    acc = {int(row["round"]): row.get("accuracy") or {} for row in metrics if int(row["round"]) > 0}
    res["rounds"] = []
    for r, fit in sorted(probe.fits.items()):
        secs = fit.get("train_seconds") or 0
        flops = train_flops(counts, fit["src_tokens"], fit["tgt_tokens"])
        res["rounds"].append(
            {
                "round": r,
                "steps": fit.get("train_steps"),
                "fit_seconds": secs,
                "fit_tokens_per_s": fit.get("train_tokens_per_s"),
                "src_tokens": fit["src_tokens"],
                "tgt_tokens": fit["tgt_tokens"],
                "mfu": flops / secs / peak if peak and secs else None,
                "accuracy": acc.get(r),
            }
        )
    last = max((r for r in probe.fits if (run_dir / f"round_{r}" / "checkpoint").is_dir()), default=None)
    if last is None:
        res["eval"] = None
    elif time.time() > deadline:
        res["eval"] = None
        res["skipped"] = res["skipped"] or f"wall-clock guard ({args.budget:.0f} s): the eval comparison"
        say("eval comparison skipped by the wall-clock guard")
    else:
        try:
            res["eval"] = compare_eval(obj, run_dir, str(run_dir / f"round_{last}" / "checkpoint"), args.eval_n, probe)
            res["eval"]["round"] = last
        except Exception as exc:  # noqa: BLE001 -- as above
            res["eval"] = None
            res["error"] = f"eval comparison failed: {type(exc).__name__}: {str(exc)[:200]}"
            res["skipped"] = res["skipped"] or res["error"]
            traceback.print_exc()
    gpu_plan.release_all("gpu_check: eval done")
    gpu_plan.free_device_cache()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    return res


# ---------------------------------------------------------------------------- report
def table(head: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    cells = [[str(c) for c in r] for r in rows]
    cells = cells or [[NA] * len(head)]
    widths = [max([len(str(h))] + [len(r[i]) for r in cells]) for i, h in enumerate(head)]
    line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(head), "-+-".join("-" * w for w in widths), *map(line, cells)]


def _pct(x: Optional[float]) -> str:
    return NA if x is None else f"{x:.2%}"


def report(header: str, results: Sequence[Dict]) -> str:
    lines = [header, ""]
    fit_rows, stage_rows, eval_rows = [], [], []
    for res in results:
        if res.get("params") is None:  # never started
            fit_rows.append([res["size"], NA, "-", "-", "-", "-", "-", "-", res["skipped"]])
            continue
        params = f"{res['params'] / 1e6:.1f}M"
        for r in res["rounds"]:
            acc = ", ".join(f"{k}={v:.3f}" for k, v in (r["accuracy"] or {}).items()) or NA
            tps = r["fit_tokens_per_s"]
            fit_rows.append(
                [
                    res["size"],
                    params,
                    r["round"],
                    r["steps"],
                    f"{r['fit_seconds']:.1f}",
                    NA if tps is None else f"{tps:,.0f}",
                    _pct(r["mfu"]),
                    acc,
                    "",
                ]
            )
        if res["skipped"]:
            fit_rows.append([res["size"], params, "-", "-", "-", "-", "-", "-", res["skipped"]])
        for st in res["stages"]:
            stage_rows.append([st["size"], st["round"], st["stage"], f"{st['seconds']:.1f}", fmt_gib(st["peak_bytes"])])
        ev = res.get("eval")
        if ev:
            eval_rows.append(
                [
                    res["size"],
                    ev["round"],
                    f"{ev['problems']} {ev['set']}",
                    ev["batch_size"],
                    ev["max_new_tokens"],
                    f"{ev['ours_per_s']:.2f}",
                    f"{ev['generate_per_s']:.2f}",
                    f"{ev['ours_per_s'] / ev['generate_per_s']:.2f}x",
                    f"{ev['same_text']}/{ev['problems']}",
                    f"{fmt_gib(ev['ours_peak_bytes'])} / {fmt_gib(ev['generate_peak_bytes'])}",
                ]
            )
    fit_head = ["size", "params", "round", "steps", "fit s", "fit tok/s", "MFU", "accuracy", "note"]
    lines += ["fit (tok/s: target tokens per second of the fit, as fdd reports it)", *table(fit_head, fit_rows), ""]
    lines += ["peak GPU memory per stage", *table(["size", "round", "stage", "seconds", "peak mem"], stage_rows), ""]
    eval_head = ["size", "round", "problems", "batch", "max new", "ours prob/s", "generate prob/s", "ratio"]
    eval_head += ["same text", "peak mem ours / generate"]
    lines += ["eval: fdd's generation path (ours) vs model.generate", *table(eval_head, eval_rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main
def quiet() -> None:
    """Keep the device's short output tail for the results: no progress bars, no Lightning
    banners (its loggers set their own levels at import, so after the import)."""
    import fdd.students.generate as generate

    bar = generate.tqdm
    if not getattr(bar, "_gpu_check_quiet", False):
        generate.tqdm = lambda *a, **k: bar(*a, **{**k, "disable": True})
        generate.tqdm._gpu_check_quiet = True
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("pytorch_lightning", "lightning_fabric", "lightning", "transformers"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=("base", "large", "both"), default="both", help="student shape(s), base first")
    ap.add_argument("--cpu", action="store_true", help="tiny shape, trainer=cpu, a few steps (no GPU needed)")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "gpu_check"), help="student folders and runs")
    ap.add_argument("--carry", default=str(CARRY), help="the carry folder (wheels/, t5like/)")
    ap.add_argument("--steps", type=int, default=None, help="student.steps_per_round (default: the config's)")
    ap.add_argument("--eval-n", type=int, default=128, help="held-out problems of the eval comparison")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="wall-clock guard in seconds")
    ap.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s (default: by device)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--report", default=None, help="also write the printed report here")
    ap.add_argument("--build-tokenizer", metavar="DIR", help="only build the T5-like tokenizer into DIR")
    ap.add_argument("--check-carry", metavar="DIR", help="only print DIR's size with the tree's; exit 1 at the limit")
    ap.add_argument("overrides", nargs="*", help="further Hydra overrides")
    args = ap.parse_args(argv)
    t_start = time.time()
    if args.check_carry:
        rep = carry_report(Path(args.check_carry))
        print(json.dumps(rep))
        return 0 if rep["ok"] else 1

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is a local folder
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_MODE", "disabled")
    # No network there: Hub kernels cannot be fetched (transformers 5.2x fails from_pretrained
    # when they are on by default and the `kernels` package is missing).
    os.environ.setdefault("USE_HUB_KERNELS", "0")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning", "transformers", "fdd"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    carry = Path(args.carry)
    if args.build_tokenizer:
        print(build_t5like_tokenizer(Path(args.build_tokenizer)))
        return 0

    bootstrap(carry)
    from hydra.errors import HydraException

    from fdd.config import ConfigError, validate

    sizes = ["tiny"] if args.cpu else (["base", "large"] if args.size == "both" else [args.size])
    out = Path(args.out).resolve()
    args.out = str(out)
    try:  # the config must be sound before the machine matters
        for size in sizes:
            validate(
                compose(overrides_for(size, out / size / "student", out / size, args.cpu, args.steps, args.overrides))
            )
    except (ConfigError, HydraException) as exc:
        fail(f"bad config: {str(exc).splitlines()[0]}")
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        fail("no CUDA device: run with --cpu for the tiny CPU check")
    if args.cpu:
        # tiny models on a small shared CPU: OpenMP threads stall each other (tests/conftest.py)
        torch.set_num_threads(1)
    device = torch.cuda.get_device_name() if cuda else "CPU"
    peak = _bench().peak_flops(device, args.peak_tflops) if cuda else (args.peak_tflops or 0) * 1e12 or None
    args.tokenizer = tok_dir = t5like_tokenizer(carry / "t5like", out / "t5like")

    import pytorch_lightning as pl
    import transformers

    quiet()

    peak_txt = (
        f"peak {peak / 1e12:.1f} TFLOP/s ({'--peak-tflops' if args.peak_tflops else 'dense bf16, PEAK_BF16'})"
        if peak
        else f"no MFU ({device!r} has no peak in PEAK_BF16: --peak-tflops)"
    )
    header = (
        f"gpu_check on {device}{f' ({torch.cuda.mem_get_info()[1] / 2**30:.0f} GiB)' if cuda else ''}: "
        f"torch {torch.__version__}, transformers {transformers.__version__}, lightning {pl.__version__}; "
        f"{peak_txt if cuda or peak else 'MFU and memory n/a on CPU'}; tokenizer {tok_dir}"
    )
    say(header)
    deadline = t_start + args.budget
    results = []
    for size in sizes:
        if time.time() > deadline:
            results.append({"size": size, "skipped": f"wall-clock guard ({args.budget:.0f} s): not started"})
            say(f"{size}: skipped by the wall-clock guard")
            continue
        results.append(check_size(size, args, deadline, cuda, peak))
    wall = time.time() - t_start
    text = report(header, results) + f"\n\nwall time {wall:.0f} s (guard {args.budget:.0f} s)"
    print("\n" + text, flush=True)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "wall_s": wall, "results": results}, default=str))
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
