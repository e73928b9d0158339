"""The one numeric-answer normaliser used everywhere (data loading, rationale checks, accuracy).

``parse_number`` turns an answer string into a float: thousands separators, currency, percent,
signs (ASCII and Unicode minus), fractions, mixed numbers, trailing punctuation, trailing units and
simple LaTeX (``\\boxed{}``, ``\\frac{}{}``). Anything symbolic that the fast regex path cannot read
(``\\sqrt{2}``, ``sqrt(2)``, ``-(1/3)``) falls back to ``math_verify``'s LaTeX parser, which builds a
SymPy expression without ``eval`` (so it is safe on model output).

``answers_match`` compares with a tolerance, never with ``round()``: rounding makes 0.5 vs 0.4999
flip depending on the digit, and hides real errors on large numbers.
"""
from __future__ import annotations

import logging
import math
import re
import threading
from decimal import Decimal
from fractions import Fraction
from typing import Any, Optional

log = logging.getLogger(__name__)

__all__ = ["parse_number", "last_number", "answers_match", "to_float"]

# Unicode look-alikes models and datasets write for the minus sign.
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\ufe63": "-", "\uff0d": "-"})
_CURRENCY = re.compile(r"(?:\\\$|[$€£¥₹]|\bUSD\b|\bEUR\b|\bRs\.?)")

# A number at the start of the text: mixed number, fraction, or decimal with optional
# thousands groups and exponent. Groups are named so one regex serves every case.
_NUM = (
    r"(?P<sign>[-+])?\s*"
    r"(?:"
    r"(?P<whole>\d+)\s+(?P<fn>\d+)\s*/\s*(?P<fd>\d+)"  # 1 1/2
    r"|(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<d>\d+(?:\.\d+)?)"  # 3/4
    r"|(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?P<exp>[eE][-+]?\d+)?"  # 1,234.5  12.  .5
    r")"
    r"(?P<pct>\s*%)?"
)
_LEAD = re.compile(r"^\s*" + _NUM)
# last_number: any number in running text (no leading-position requirement, no mixed numbers:
# "3 1/2" in prose is more often two quantities than a mixed number).
_ANY = re.compile(
    r"(?<![\w.])(?P<sign>-)?\$?\s?"
    r"(?:(?P<n>\d+)/(?P<d>\d+)(?![\d/])"
    r"|(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+))"
    r"(?P<pct>%)?"
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FRAC = re.compile(r"(-)?\s*\\[dt]?frac\s*\{\s*([-+]?\d+(?:\.\d+)?)\s*\}\s*\{\s*([-+]?\d+(?:\.\d+)?)\s*\}")
_FRAC_BARE = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")  # \frac12
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{([^{}]*)\}")
_MATH_CHARS = re.compile(r"^[-+*/^()\[\]{}\\.\d\sA-Za-z,]*$")
_SYMBOLIC_MARK = re.compile(r"\\|sqrt|\bpi\b|\^|\(|π|√")


def _boxed_content(s: str) -> Optional[str]:
    """Content of the last \\boxed{...} (brace-matched), or None."""
    last = None
    for m in _BOXED.finditer(s):
        depth, i = 1, m.end()
        while i < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[i], 0)
            i += 1
        if depth == 0:
            last = s[m.end(): i - 1]
    return last


def _clean(text: str) -> str:
    s = text.translate(_MINUS).strip()
    boxed = _boxed_content(s)
    if boxed is not None:
        s = boxed.strip()
    # Display-math delimiters around the whole answer; a lone leading "$" is currency and is
    # handled by _CURRENCY below.
    if len(s) >= 2 and s.startswith("$") and s.endswith("$") and s.count("$") == 2 and "\\" in s:
        s = s[1:-1].strip()
    if s.startswith("\\(") and s.endswith("\\)") or s.startswith("\\[") and s.endswith("\\]"):
        s = s[2:-2].strip()
    s = _TEXT_CMD.sub(r" \1", s)
    s = s.replace("{,}", "").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    s = s.replace("\\%", "%").replace("\\left", "").replace("\\right", "")
    s = _FRAC.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}/{m.group(3)}", s)
    s = _FRAC_BARE.sub(r"\1/\2", s)
    s = _CURRENCY.sub("", s)
    return s.strip()


def _frac(a: str, b: str) -> Optional[float]:
    d = float(b)
    return float(Fraction(a) / Fraction(b)) if d != 0 else None


def _from_match(m: re.Match) -> Optional[float]:
    g = m.groupdict()
    if g.get("whole") is not None:
        if int(g["fd"]) == 0:
            return None
        v: Optional[float] = float(int(g["whole"]) + Fraction(int(g["fn"]), int(g["fd"])))
    elif g.get("n") is not None:
        v = _frac(g["n"], g["d"])
    else:
        num = g["num"].replace(",", "")
        if num.endswith("."):
            num = num[:-1]
        v = float(num + (g.get("exp") or ""))
    if v is None:
        return None
    if g.get("sign") == "-":
        v = -v
    return v


def _finite(v: Optional[float]) -> Optional[float]:
    return v if v is not None and math.isfinite(v) else None


def to_float(value: Any) -> Optional[float]:
    """A finite float from a Python/NumPy/SymPy number (bool excluded), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Fraction, Decimal)):
        try:
            return _finite(float(value))
        except (OverflowError, ValueError):
            return None
    tname = type(value).__module__
    if tname.startswith("numpy") or tname.startswith("sympy"):
        try:
            if tname.startswith("numpy") and getattr(value, "dtype", None) is not None and value.dtype.kind == "b":
                return None
            return _finite(float(value))
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def parse_number(text: Any, strict: bool = False) -> Optional[float]:
    """The number an answer string states, or None.

    The number must come first (after currency/sign); trailing units, ``%``, ``(apples)`` and
    punctuation are allowed. ``strict=True`` additionally refuses any trailing text other than
    punctuation, ``%`` and a parenthesised unit (used for dataset gold answers such as ASDiv's
    ``8; 40`` which is two answers, not 8).
    """
    if text is None or isinstance(text, bool):
        return None
    if not isinstance(text, str):
        return to_float(text)
    s = _clean(text)
    if not s:
        return None
    m = _LEAD.match(s)
    if m:
        rest = s[m.end():]
        # The match must not be the prefix of something else: "3:30", "1,23" (decimal comma),
        # "2x", "3.4.5", "12/0" etc. are not numbers we can trust.
        bad_continuation = re.match(r"^(?:[:/\d]|[.,]\d|[A-Za-z_]\w*\s*[=(/*^+]|\s*(?:\*\*|[-+*/^])\s*[\d(\\{])", rest)
        if not bad_continuation:
            if strict and not re.fullmatch(r"\s*(?:\([^()]*\))?\s*[.,!]?\s*", rest):
                return None
            v = _finite(_from_match(m))
            # "45%" stays 45: the datasets state percentages in percent, not as fractions.
            if v is not None:
                return v
    return _symbolic(s)


def _symbolic(s: str) -> Optional[float]:
    """math_verify fallback for expressions like \\sqrt{2}, sqrt(2), -(1/3), 2^{10}."""
    if len(s) > 200 or not _MATH_CHARS.match(s) or not _SYMBOLIC_MARK.search(s):
        return None
    latex = re.sub(r"√\s*(\d+(?:\.\d+)?)", r"\\sqrt{\1}", s).replace("π", "\\pi")
    for _ in range(3):  # sqrt(x) -> \sqrt{x}, innermost first
        latex = re.sub(r"(?<!\\)\bsqrt\s*\(([^()]*)\)", r"\\sqrt{\1}", latex)
    latex = re.sub(r"(?<!\\)\bpi\b", r"\\pi", latex)
    try:
        from math_verify import LatexExtractionConfig, parse
    except ImportError:  # pragma: no cover - math_verify is a dependency
        return None
    # math_verify's timeout uses signal.alarm, which only works in the main thread.
    timeout = 2 if threading.current_thread() is threading.main_thread() else None
    try:
        parsed = parse(f"${latex}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=timeout)
    except Exception as e:  # noqa: BLE001 - any parser failure just means "not a number"
        log.debug("math_verify could not parse %r: %s", s, e)
        return None
    for p in parsed:
        if isinstance(p, str):
            continue
        try:
            if getattr(p, "is_number", False) and not getattr(p, "free_symbols", set()):
                v = complex(p.evalf())
                if abs(v.imag) < 1e-12:
                    return _finite(v.real)
        except (TypeError, ValueError, AttributeError, OverflowError):
            continue
    return None


def last_number(text: Optional[str]) -> Optional[float]:
    """The last number in running text (``... so she has $1,200.`` -> 1200.0), or None."""
    if not text:
        return None
    s = text.translate(_MINUS)
    boxed = _boxed_content(s)
    if boxed is not None:
        v = parse_number(boxed)
        if v is not None:
            return v
    s = _FRAC.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}/{m.group(3)}", s)
    last = None
    for m in _ANY.finditer(s):
        last = m
    if last is None:
        return None
    return _finite(_from_match(last))


def answers_match(pred: Any, gold: Any, rel_tol: float = 1e-9, abs_tol: float = 5e-5) -> bool:
    """Whether two answers (numbers or answer strings) are the same number; None never matches.

    The tolerance is absolute (float noise such as 14.399999999 vs 14.4, or 0.3333 vs 1/3): a
    relative one would call 15001 and 15000 equal, and GSM8K answers run into the tens of thousands."""
    p = pred if isinstance(pred, float) else parse_number(pred)
    g = gold if isinstance(gold, float) else parse_number(gold)
    if p is None or g is None or not math.isfinite(p) or not math.isfinite(g):
        return False
    return math.isclose(p, g, rel_tol=rel_tol, abs_tol=abs_tol)
