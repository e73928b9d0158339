"""The two rationale formats: Program-of-Thought (``pot``) and Chain-of-Thought (``cot``).

One object per format says what the student sees (``student_prompt``), how an answer is read
out of a rationale (``extract``) and where a generated rationale is complete (``stop_rule``); the
same code serves teacher rationales, the easy/hard split and test accuracy, so the three can
never disagree on what counts as an answer.
"""

from __future__ import annotations

import ast
import re
from abc import ABC, abstractmethod
from typing import Callable, List, Optional

from fdd.reasoning.answer import answer_phrase_tail, boxed_content, last_number, parse_number
from fdd.reasoning.fences import strip_fences
from fdd.reasoning.programs import normalize_program, run_programs
from fdd.runtime.registries import RATIONALE_FORMATS
from fdd.sandbox import ExecResult, Sandbox

__all__ = [
    "RationaleFormat",
    "PoTFormat",
    "CoTFormat",
    "get_format",
    "FORMATS",
    "cot_answer",
    "StopRule",
    "answer_line_end",
    "COT_CONVENTIONS",
]

# text -> the index just past a complete answer (generation may stop there), or None
StopRule = Callable[[str], Optional[int]]

_ANSWER_START = re.compile(r"^answer[ \t]*=(?!=)", re.M)


def answer_line_end(text: str) -> Optional[int]:
    """Index just past the first complete top-level ``answer = ...`` statement, or None.

    "Complete" means a newline ended it and the program up to there parses, so an open
    bracket, a backslash continuation or an unclosed string never counts (the statement may
    span lines: its end is the first later newline where the prefix parses). Cutting there can
    never drop part of the statement that sets the answer."""
    for m in _ANSWER_START.finditer(text):
        if not _parses(text[: m.start()]):  # inside a string or bracket: not a statement start
            continue
        line = text.count("\n", 0, m.start()) + 1
        pos = text.find("\n", m.end())
        while pos != -1:
            tree = _parses(text[: pos + 1])
            if tree is not None:
                last = tree.body[-1] if tree.body else None
                if (
                    isinstance(last, ast.Assign)
                    and last.lineno == line
                    and any(isinstance(t, ast.Name) and t.id == "answer" for t in last.targets)
                ):
                    return pos + 1
                break
            pos = text.find("\n", pos + 1)
    return None


def _parses(code: str) -> Optional[ast.Module]:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


class RationaleFormat(ABC):
    """What the student sees, how an answer is read out of a rationale, and where a generated
    one is complete."""

    name: str = ""
    prompt_template: str = ""
    # Where a generated rationale holds its whole answer, so generation may stop there
    # (``student.generation.stop_at_answer``); None: only EOS ends it.
    stop_rule: Optional[StopRule] = None

    def student_prompt(self, question: str) -> str:
        return self.prompt_template.format(question=question.strip())

    @abstractmethod
    def extract(self, texts: List[str], sandbox: Optional[Sandbox] = None, progress: bool = False) -> List[ExecResult]:
        """The answer of each rationale, or the reason there is none."""

    def extract_replies(self, replies, sandbox: Optional[Sandbox] = None) -> List[List[Optional[ExecResult]]]:
        """Answers of the usable teacher replies (``replies[i][j]``, each with ``ok`` and ``text``)
        in one batch; a failed reply gets None (its own error says why)."""
        texts = [rep.text for reps in replies for rep in reps if rep.ok]
        results = iter(self.extract(texts, sandbox) if texts else [])
        return [[next(results) if rep.ok else None for rep in reps] for reps in replies]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PoTFormat(RationaleFormat):
    """The rationale is a Python program; its answer is what the sandbox returns."""

    name = "pot"
    prompt_template = "Question: {question}\nProgram:"
    stop_rule = staticmethod(answer_line_end)  # nothing after the answer line changes the answer

    def extract(self, texts: List[str], sandbox: Optional[Sandbox] = None, progress: bool = False) -> List[ExecResult]:
        if sandbox is None:
            raise ValueError("the pot format needs a Sandbox to run programs")
        # Fences first (a reply may hold prose around its block), then the documented convention
        # (fdd/reasoning/programs.py): what runs is what the student would learn.
        programs = [normalize_program(strip_fences(t or "")) for t in texts]
        results = run_programs(sandbox, [p.code for p in programs], progress=progress)
        for t, p, res in zip(texts, programs, results):
            if p.wrapped and res.convention == "solution":
                res.convention = "module_return"
            if p.code != (t or ""):
                res.text = p.code
        return results


# "The answer is N" / "X." / "N, where N is ...": the prompt's template letter instead of a number
_PLACEHOLDER = re.compile(r"^[A-Z](?:[.,:;]|\s|$)")

# How a CoT rationale's answer was read (ExecResult.convention), strongest first.
COT_CONVENTIONS = ("answer_is", "boxed", "last_number")


def cot_answer(text: Optional[str]) -> ExecResult:
    """The number after the last "The answer is" (or ``####``), else in the last ``\\boxed{}`` (the
    convention math-tuned models use whatever the prompt says), else the last number in the text.
    ``convention`` says which, so a run can count answers read by the weak last-number fallback.
    An answer phrase that only echoes the prompt's placeholder (``The answer is N``) is no answer."""
    if not text:
        return ExecResult(None, "no_answer", "empty rationale")
    tail = answer_phrase_tail(text)  # the last phrase, also when several stand on one line
    if tail is not None:
        v = parse_number(tail)
        if v is None:
            v = last_number(tail.split(". ")[0])
        if v is not None:
            return ExecResult(v, None, convention="answer_is")
        if _PLACEHOLDER.match(tail):
            # "The answer is N, where N is ..." (a real reply echoing the prompt's template): no
            # answer was stated, and an earlier number of the text would be a guess
            return ExecResult(None, "no_answer", f"the answer phrase holds a placeholder: {tail[:60]!r}")
    boxed = boxed_content(text)
    if boxed is not None:
        v = parse_number(boxed)
        if v is not None:
            return ExecResult(v, None, convention="boxed")
    v = last_number(text)
    if v is None:
        return ExecResult(None, "no_answer", "no number in the rationale")
    return ExecResult(v, None, "last number", convention="last_number")


class CoTFormat(RationaleFormat):
    """The rationale is text ending in "The answer is N"."""

    name = "cot"
    prompt_template = "Question: {question}\nAnswer:"

    def extract(self, texts: List[str], sandbox: Optional[Sandbox] = None, progress: bool = False) -> List[ExecResult]:
        return [cot_answer(t) for t in texts]


# the names come from fdd.runtime.registries (which the config validates against); the classes are above
FORMATS = {name: globals()[target.partition(":")[2]] for name, target in RATIONALE_FORMATS.items()}


def get_format(name: str) -> RationaleFormat:
    """The format called ``name`` (``pot`` or ``cot``)."""
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown rationale format {name!r}; expected one of {sorted(FORMATS)}") from None
