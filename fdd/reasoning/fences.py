"""Markdown code fences around programs: the one reader of them, for teacher replies
(fdd/teachers/llm.py) and for every program the sandbox runs."""

from __future__ import annotations

import re
from typing import Optional

# An opening fence with an optional language tag, the code, and a closing fence at the start of
# a line (or the end of the text: a reply cut by max_tokens). Backticks inside a line of code
# (a string, a comment) do not close it.
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:^[ \t]*```|\Z)", re.S | re.M)


def fenced_code(text: str) -> Optional[str]:
    """The code inside the first fenced block (with its last newline), or None without one."""
    m = _FENCE.search(text)
    return m.group(1) if m else None


def strip_fences(text: str) -> str:
    """The code inside the first fenced block, else the text itself."""
    code = fenced_code(text)
    return text if code is None else code
