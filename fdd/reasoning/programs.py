"""Program-of-Thought programs as real models write them, made into one runnable form.

Asked for ``def solution()``, capable models still write other shapes (measured on
Qwen2.5-Coder-1.5B-Instruct behind llama.cpp, issue 22): a plain script that prints its result,
a script whose last line is a module-level ``return`` (a SyntaxError as Python), or a correct
``solution()`` followed by "example usage" (``print(solution())``, ``if __name__ == "__main__":``).
Rejecting them threw away correct rationales; keeping the example usage taught the student to
write it. The one documented convention (docs/reference.md "Program-of-Thought answers"):

1. ``solution()`` is defined: its return value is the answer (``solution``). Example usage after
   it is stripped from the program the student learns.
2. else a top-level ``answer`` variable (``answer``).
3. else the last number the program printed (``print``): a script that prints its result.
4. A script with a module-level ``return`` is first wrapped into ``def solution():`` (the body
   indented as written), so it is rule 1 with the convention ``module_return``.

:func:`normalize_program` does the text side (1's stripping and 4's wrapping) in the parent, before
the sandbox runs the program; it is pure and idempotent: a normalized program normalizes to itself.
:func:`read_answer` applies rules 1-3 inside the sandbox worker, which gets its source
(:data:`ANSWER_READER`), and :func:`read_result` reads a number out of a text answer (a string, or
what was printed) in the parent; :func:`run_programs` does both around ``Sandbox.run_many``.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Set, Tuple

from fdd.reasoning.answer import last_number, parse_number
from fdd.sandbox import ExecResult, Sandbox

__all__ = [
    "NormalizedProgram",
    "normalize_program",
    "program_fingerprint",
    "CONVENTIONS",
    "read_answer",
    "ANSWER_READER",
    "read_result",
    "run_programs",
]

# Every answer convention a PoT result can carry (ExecResult.convention), in the order above.
CONVENTIONS = ("solution", "answer", "print", "module_return")

_COMMENT_OR_BLANK = re.compile(r"^\s*(#.*)?$")


@dataclass(frozen=True)
class NormalizedProgram:
    """The program to run and to learn, and what was changed to get it."""

    code: str
    wrapped: bool = False  # a module-level return was wrapped into def solution()
    stripped: int = 0  # top-level statements of example usage removed


def _parse(code: str) -> Optional[ast.Module]:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _has_module_return(tree: ast.Module) -> bool:
    """A ``return`` outside any function (ast.parse accepts it; compiling refuses it)."""
    todo: List[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Return):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return False


def _has_multiline_string(tree: ast.Module) -> bool:
    return any(
        isinstance(n, (ast.Constant, ast.JoinedStr))
        and (isinstance(n, ast.JoinedStr) or isinstance(n.value, str))
        and (n.end_lineno or n.lineno) > n.lineno
        for n in ast.walk(tree)
    )


def _wrap(code: str) -> str:
    """The script as the body of ``def solution():`` (every line indented by four spaces)."""
    body = "\n".join(("    " + line) if line.strip() else "" for line in code.strip("\n").split("\n"))
    return "def solution():\n" + body + "\n"


def _calls_solution(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "solution" for n in ast.walk(node)
    )


def _is_print(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "print"
    )


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (
        isinstance(t, ast.Compare)
        and isinstance(t.left, ast.Name)
        and t.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in t.comparators)
    )


def _usage_statements(tree: ast.Module) -> List[ast.stmt]:
    """Top-level statements after ``def solution`` that only exercise it: prints, a
    ``__main__`` guard, and assignments of ``solution()`` that only those prints read.
    ``answer = solution()`` stays: it is the answer line (and the student's stop rule)."""
    body = tree.body
    defs = [i for i, n in enumerate(body) if isinstance(n, ast.FunctionDef) and n.name == "solution"]
    if not defs:
        return []
    usage: List[ast.stmt] = []
    for node in body[defs[-1] + 1 :]:
        if any(isinstance(n, ast.NamedExpr) for n in ast.walk(node)):
            continue  # it binds a name (print(t := solution())): later code may read it
        if _is_main_guard(node) or _is_print(node):
            usage.append(node)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id != "answer"
            and _calls_solution(node.value)
        ):
            usage.append(node)
        elif isinstance(node, ast.Expr) and _calls_solution(node.value):  # a bare solution() call
            usage.append(node)
    # An assignment a kept statement uses in any way (reads it, or updates it with +=) is not usage
    # after all; and a statement sharing a line with a kept one stays (lines are removed whole).
    kept = [node for node in body if node not in usage]
    kept_names = {n.id for node in kept for n in ast.walk(node) if isinstance(n, ast.Name)}
    kept_lines = {i for node in kept for i in range(node.lineno, (node.end_lineno or node.lineno) + 1)}
    return [
        n
        for n in usage
        if not (isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id in kept_names)
        and not kept_lines & set(range(n.lineno, (n.end_lineno or n.lineno) + 1))
    ]


def _remove_lines(code: str, nodes: List[ast.stmt]) -> str:
    lines = code.split("\n")
    drop = set()
    for n in nodes:
        drop.update(range(n.lineno - 1, (n.end_lineno or n.lineno)))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    # Comments and blank lines left dangling at the end ("# Example usage:") go with the usage.
    while kept and _COMMENT_OR_BLANK.match(kept[-1]):
        kept.pop()
    return "\n".join(kept) + "\n"


def normalize_program(code: str) -> NormalizedProgram:
    """The program in the documented convention (module docstring); text that does not parse is
    returned as it is, for the sandbox to reject with its own reason."""
    tree = _parse(code)
    if tree is None:
        return NormalizedProgram(code, False, 0)
    wrapped = False
    if _has_module_return(tree) and not _has_multiline_string(tree):  # indenting would change the string
        candidate = _wrap(code)
        wrapped_tree = _parse(candidate)
        if wrapped_tree is not None:
            code, tree, wrapped = candidate, wrapped_tree, True
    usage = _usage_statements(tree)
    if usage:
        code = _remove_lines(code, usage)
    return NormalizedProgram(code, wrapped, len(usage))


class _Canonical(ast.NodeTransformer):
    """The program's own names numbered by first appearance and docstrings dropped: two programs
    that differ only in naming, comments or layout get one fingerprint. Builtins and modules keep
    their names (``sum(x)`` and ``max(x)`` are different programs)."""

    def __init__(self, bound: Set[str]) -> None:
        self.bound = bound
        self.names: dict = {}

    def _name(self, name: str) -> str:
        if name not in self.bound:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._name(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._name(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._name(node.name)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        node.returns = None
        self.generic_visit(node)
        return node


def program_fingerprint(code: str) -> Tuple[str, str]:
    """``(kind, key)``: the program's structure with names, comments and layout abstracted away
    (``("ast", ...)``), or its whitespace-normalized text where it does not parse."""
    tree = _parse(code)
    if tree is None:
        return ("text", " ".join(code.split()))
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return ("ast", ast.dump(_Canonical(bound).visit(tree), annotate_fields=False))


# -------------------------------------------------------------------------------------------- answers
def read_answer(namespace, printed):
    """Rules 1-3 on a program that has run: ``(convention, value)``, or ``(None, why)`` where it
    states no answer. ``namespace`` is its globals; ``printed()`` what it has printed so far
    (None: nothing), asked after ``solution()`` ran, since that may be what prints.

    This runs inside the sandbox worker, which gets its source (:data:`ANSWER_READER`): it may use
    builtins only, and no annotations, imports or module-level names."""
    if callable(namespace.get("solution")):
        convention, value = "solution", namespace["solution"]()
    elif "answer" in namespace:
        convention, value = "answer", namespace["answer"]
    else:
        convention, value = None, None
    if value is None and printed() is not None:
        return "print", printed()[-2000:]  # its last number is the answer (read_result)
    if convention is None:
        return None, "no solution(), no top-level answer and nothing printed"
    return convention, value


# The answer reader the sandbox runs after each PoT program (fdd/sandbox/worker.py).
ANSWER_READER = inspect.getsource(read_answer)


def read_result(res: ExecResult) -> ExecResult:
    """The result with a number read out of a text answer: the last number of what a program
    printed (``print``), a string that states a number (``"$1,200"``) otherwise."""
    text = res.answer_text
    if text is None:
        return res
    if res.convention == "print":
        v = last_number(text)
        if v is None:
            return ExecResult(None, "no_answer", f"printed no number: {text[-80:]!r}", res.convention)
        return ExecResult(v, None, convention=res.convention)
    v = parse_number(text[:1000])
    if v is None:
        return ExecResult(None, "non_numeric", f"string {text[:80]!r}", res.convention)
    return ExecResult(v, None, convention=res.convention)


def run_programs(sandbox: Sandbox, codes: Sequence[str], progress: bool = False) -> List[ExecResult]:
    """Run programs as they are (normalize them first) and read each one's answer by rules 1-3."""
    results = sandbox.run_many(codes, progress=progress, answer_reader=ANSWER_READER)
    return [read_result(r) for r in results]
