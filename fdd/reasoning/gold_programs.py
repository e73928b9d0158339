"""Gold Program-of-Thought programs from the datasets' own annotations.

* SVAMP ``Equation`` (``( 76.0 - 25.0 )``) -> ``answer = ( 76.0 - 25.0 )``
* MultiArith ``lEquations`` (``X=((32.0+42.0)-35.0)``) -> ``answer = ((32.0+42.0)-35.0)``
* GSM8K calculator marks ``<<48/2=24>>`` -> one line per step; the last step is the answer.

They serve as a check that the sandbox and the answer normaliser agree with the datasets, and as
known-good PoT rationales (e.g. for an oracle teacher). Every function returns
``(program, None)`` or ``(None, reason)``.
"""

from __future__ import annotations

import ast
import re
from typing import List, Optional, Sequence, Tuple

from fdd.reasoning.answer import answers_match, parse_number
from fdd.types import Problem

__all__ = ["svamp_program", "multiarith_program", "gsm8k_program", "gold_program", "normalize_expression"]

GoldProgram = Tuple[Optional[str], Optional[str]]

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.USub,
    ast.UAdd,
)


def normalize_expression(expr: str) -> str:
    """Calculator text -> a Python expression: ``x``/``×`` multiply, ``%`` is per cent, ``^`` power,
    thousands commas, currency signs and leading zeros removed."""
    s = expr.strip().translate(str.maketrans({"\u2212": "-", "×": "*", "÷": "/", "–": "-"}))
    s = s.replace("$", "").replace("€", "").replace("£", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 1,000 -> 1000
    s = re.sub(r"(?<=[\d)\s])[xX](?=[\s\d(.])", "*", s)  # 3x4, 3 x 4
    s = s.replace("^", "**")
    s = re.sub(r"(\d+(?:\.\d+)?)\s*%", r"(\1/100)", s)  # 20% -> (20/100)
    s = re.sub(r"(?<![\d.])0+(?=\d)", "", s)  # 05 -> 5 (a syntax error in Python 3); .01 stays
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    return s


def _check_arith(expr: str) -> Optional[str]:
    """None when ``expr`` is plain arithmetic on number literals, else why not."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return "not an arithmetic expression"
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            return f"unsupported syntax {type(node).__name__}"
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            return "non-numeric literal"
    return None


def svamp_program(equation: Optional[str]) -> GoldProgram:
    if not equation or not str(equation).strip():
        return None, "no equation"
    expr = normalize_expression(str(equation))
    why = _check_arith(expr)
    if why:
        return None, f"equation {equation!r}: {why}"
    return f"answer = {expr}\n", None


def multiarith_program(equations: Optional[Sequence[str]]) -> GoldProgram:
    if not equations:
        return None, "no equation"
    if len(equations) != 1:
        return None, f"{len(equations)} equations (a system is not a single expression)"
    eq = str(equations[0]).replace(" ", "")
    if eq.upper().startswith("X="):
        expr = eq[2:]
    elif eq.upper().endswith("=X"):
        expr = eq[:-2]
    else:
        return None, f"equation {eq!r} is not of the form X=expression"
    return svamp_program(expr)


_TEXT_EQ = re.compile(
    r"(?P<expr>[-\d.,$\s()+*/x×÷%^]*\d[-\d.,$\s()+*/x×÷%^]*?)\s*=\s*\$?\s*(?P<res>-?\d[\d,]*(?:\.\d+)?)"
)


def _text_steps(rationale: str) -> List[Tuple[str, Optional[float]]]:
    """Plain-text equations of a rationale (``20/4 = $5``): (expression, stated result)."""
    steps = []
    body = re.sub(r"<<.*?>>", "", rationale.split("####")[0])
    for m in _TEXT_EQ.finditer(body):
        expr = normalize_expression(m.group("expr"))
        if re.search(r"\d\s*(\*\*|[-+*/])\s*[\d(]", expr) and _check_arith(expr) is None:
            steps.append((expr, parse_number(m.group("res"))))
    return steps


def gsm8k_program(
    annotations: Optional[Sequence[str]], gold: Optional[float] = None, rationale: Optional[str] = None
) -> GoldProgram:
    """One assignment per calculator mark; ``answer`` is the last step.

    With ``gold``, ``answer`` is the last step whose *stated* result (the text after ``=``) is the
    gold answer: many GSM8K rationales end with a step that restates the result. When no mark
    states it and ``rationale`` is given, the last plain-text equation that states it
    (``so 20/4 = $5``, written without a calculator mark) becomes the final step. The program
    recomputes every step, so a wrong annotation still fails the check.
    """
    if not annotations:
        return None, "no calculator annotations"
    lines: List[str] = []
    answer_step = len(annotations)
    found = gold is None
    for k, ann in enumerate(annotations, 1):
        lhs, _, rhs = ann.rpartition("=") if "=" in ann else (ann, "", "")
        expr = normalize_expression(lhs)
        why = _check_arith(expr)
        if why:
            return None, f"annotation {k} {ann!r}: {why}"
        lines.append(f"step{k} = {expr}")
        if gold is not None and answers_match(parse_number(rhs.strip()), gold):
            answer_step, found = k, True
    if not found and rationale:
        for expr, stated in reversed(_text_steps(rationale)):
            if answers_match(stated, gold):
                answer_step = len(annotations) + 1
                lines.append(f"step{answer_step} = {expr}  # written in the rationale without a calculator mark")
                break
    lines.append(f"answer = step{answer_step}")
    return "\n".join(lines) + "\n", None


def gold_program(problem: Problem) -> GoldProgram:
    """The gold program of a loaded problem, from whatever annotation its source kept in ``meta``."""
    meta = problem.meta or {}
    if "annotations" in meta:
        return gsm8k_program(meta["annotations"], problem.answer, meta.get("rationale"))
    if "equations" in meta:
        return multiarith_program(meta["equations"])
    if "equation" in meta:
        return svamp_program(meta["equation"])
    return None, f"no gold equation or annotations for source {problem.source!r}"
