"""``fdd solve STUDENT_DIR "question"`` (or a JSONL file of questions): answer with a trained student.

Loads a student folder (a run's ``final/`` or any ``round_<r>/checkpoint``), generates its
rationale with the student's own batched greedy decoding, reads the answer out of it with the
rationale format (programs run in the sandbox) and prints it. ``final/fdd_student.json`` says
which prompt and format the student was trained with; a bare checkpoint takes ``--rationale``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from fdd.reporting.final import STUDENT_INFO
from fdd.runtime.cpu import prefer_passive_wait

prefer_passive_wait()  # fdd-solve and python -m fdd.solve start here, before torch loads (fdd/runtime/cpu.py)


def student_info(student_dir: Path, rationale: Optional[str] = None) -> Dict:
    """How to prompt and read the student: fdd_student.json, else the model config and defaults."""
    info = {}
    if (student_dir / STUDENT_INFO).is_file():
        info = json.loads((student_dir / STUDENT_INFO).read_text(encoding="utf-8"))
    if "arch" not in info:
        from transformers import AutoConfig

        info["arch"] = "seq2seq" if AutoConfig.from_pretrained(student_dir).is_encoder_decoder else "causal"
    if rationale:
        info["rationale"] = rationale
    info.setdefault("rationale", "pot")
    info.setdefault("max_source_len", 256)
    info.setdefault("max_new_tokens", 128)
    return info


def read_questions(path: Path) -> List[Dict]:
    """Rows of a JSONL file: ``question`` required; ``id`` and ``answer`` (gold) optional."""
    from fdd.runtime.io import read_jsonl

    rows = read_jsonl(path)
    for n, row in enumerate(rows, 1):
        question = row.get("question") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip():  # null, a number, "" or spaces
            raise ValueError(f'{path}:{n}: each line needs a non-empty "question" field (a string), got {question!r}')
    return rows


def solve(
    student_dir,
    questions: Sequence[str],
    rationale: Optional[str] = None,
    batch_size: int = 32,
    max_new_tokens: Optional[int] = None,
    sandbox=None,
) -> List[Dict]:
    """For each question: the student's rationale, its answer (or the reason there is none)."""
    from fdd.reasoning.formats import get_format
    from fdd.runtime.modeling import ModelUnavailableError, model_class
    from fdd.sandbox import Sandbox, SandboxLimits
    from fdd.students.generate import generate

    student_dir = Path(student_dir)
    if not (student_dir / "config.json").is_file():
        raise ModelUnavailableError(
            f"{student_dir} is not a student folder (no config.json); pass a run's final/ or round_<r>/checkpoint"
        )
    info = student_info(student_dir, rationale)
    fmt = get_format(info["rationale"])
    if info.get("prompt_template"):
        fmt.prompt_template = info["prompt_template"]  # exactly what this student was trained on
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a local folder loads in a blink: its bar would only clutter the answer
    tok = AutoTokenizer.from_pretrained(student_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = model_class(info["arch"]).from_pretrained(student_dir)
    texts = generate(
        model,
        tok,
        [fmt.student_prompt(q) for q in questions],
        info["arch"],
        batch_size=batch_size,
        max_new_tokens=max_new_tokens or info["max_new_tokens"],
        max_source_len=info["max_source_len"],
        stop_rule=fmt.stop_rule,
    )
    if sandbox is None and fmt.name == "pot":
        with Sandbox(SandboxLimits(workers=1)) as sb:
            results = fmt.extract(texts, sb)
    else:
        results = fmt.extract(texts, sandbox)
    return [
        {"question": q, "rationale": t, "answer": r.value, "error": r.error}
        for q, t, r in zip(questions, texts, results)
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fdd solve", description=__doc__.split("\n\n")[0])
    p.add_argument("student_dir", type=Path, help="a student folder: a run's final/ or round_<r>/checkpoint")
    p.add_argument("question", help='a question, or a .jsonl file of {"question": ..., ["id", "answer"]} rows')
    p.add_argument("--rationale", choices=["pot", "cot"], help="override the student's rationale format")
    p.add_argument("--show-rationale", action="store_true", help="print the generated rationale too")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=None)
    args = p.parse_args(argv)
    from fdd.runtime.modeling import ModelUnavailableError

    as_file = args.question.endswith(".jsonl") and Path(args.question).is_file()
    try:
        rows = read_questions(Path(args.question)) if as_file else [{"question": args.question}]
        out = solve(
            args.student_dir, [r["question"] for r in rows], args.rationale, args.batch_size, args.max_new_tokens
        )
    except (ModelUnavailableError, ValueError, OSError) as exc:
        print(f"fdd solve: error: {exc}", file=sys.stderr)
        return 2
    if not as_file:
        res = out[0]
        if args.show_rationale:
            print(res["rationale"], file=sys.stderr)
        print(_fmt(res["answer"]) if res["answer"] is not None else f"no answer ({res['error']})")
        return 0 if res["answer"] is not None else 1
    from fdd.reasoning.answer import answers_match

    for row, res in zip(rows, out):
        rec = {"id": row.get("id"), **res}
        if not args.show_rationale:
            rec.pop("rationale")
        if row.get("answer") is not None:
            rec["gold"] = row["answer"]
            rec["correct"] = res["answer"] is not None and answers_match(res["answer"], float(row["answer"]))
        print(json.dumps(rec, default=str))
    return 0


def _fmt(v) -> str:
    """42.0 -> 42; other numbers as they are."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


if __name__ == "__main__":
    sys.exit(main())
