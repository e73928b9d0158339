"""What a program may use: the import whitelist, the builtins and attributes it may not name,
and the AST check that refuses a program reaching for them before it runs.

The worker enforces the same lists again at run time (fdd/sandbox/worker.py: restricted builtins,
an import hook handing out stripped copies of whitelisted modules), so a name the AST check
misses still fails when it is used.
"""

from __future__ import annotations

import ast
from typing import Optional, Tuple

__all__ = [
    "DEFAULT_MODULES",
    "FORBIDDEN_BUILTINS",
    "FORBIDDEN_ATTRS",
    "DROP_MODULE_ATTRS",
    "MAX_CODE_CHARS",
    "check_ast",
]

DEFAULT_MODULES: Tuple[str, ...] = (
    "math",
    "cmath",
    "fractions",
    "decimal",
    "statistics",
    "itertools",
    "functools",
    "collections",
    "collections.abc",
    "datetime",
    "re",
    "random",
    "string",
    "heapq",
    "bisect",
    "numbers",
    "typing",
)
# Builtins a program may not name at all (AST check) and that are replaced by a raising stub.
FORBIDDEN_BUILTINS = frozenset(
    {
        "open",
        "exec",
        "eval",
        "compile",
        "__import__",
        "input",
        "breakpoint",
        "help",
        "exit",
        "quit",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "memoryview",
        "copyright",
        "credits",
        "license",
    }
)
# Attribute names that lead to frames, code objects or globals without a leading underscore.
FORBIDDEN_ATTRS = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "ag_frame",
        "ag_code",
        "f_back",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_code",
        "tb_frame",
        "tb_next",
        "co_code",
        "mro",
        "format_map",
    }
)
# Names dropped from whitelisted modules that would reach files or evaluate strings as code.
DROP_MODULE_ATTRS = frozenset(
    {
        "load",
        "loads",
        "save",
        "savez",
        "savez_compressed",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "fromfile",
        "tofile",
        "memmap",
        "fromregex",
        "DataSource",
        "ctypeslib",
        "get_type_hints",
        "ForwardRef",
        "sympify",
        "parse_expr",
        "lambdify",
        "S",
        "preview",
        "SystemRandom",
    }
)
MAX_CODE_CHARS = 100_000


def check_ast(tree: ast.AST, allowed: frozenset) -> Optional[str]:
    """Why the program is refused before running, or None."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "") not in allowed:
                return f"import of {node.module!r}"
            if any(a.name.startswith("_") for a in node.names):
                return f"import of a private name from {node.module!r}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name not in allowed:
                    return f"import of {a.name!r}"
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in FORBIDDEN_ATTRS:
                return f"attribute {node.attr!r}"
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_BUILTINS and node.id not in bound:
                return f"use of {node.id!r}"
            if node.id.startswith("__") and node.id not in ("__name__",):
                return f"name {node.id!r}"
    return None
