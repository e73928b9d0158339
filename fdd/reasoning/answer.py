"""The one numeric-answer normaliser used everywhere (data loading, rationale checks, accuracy).

``parse_number`` turns an answer string into a float: thousands separators, currency, percent,
signs (ASCII and Unicode minus), fractions, mixed numbers, trailing punctuation, trailing units and
simple LaTeX (``\\boxed{}``, ``\\frac{}{}``). Anything symbolic that the fast regex path cannot read
(``\\sqrt{2}``, ``sqrt(2)``, ``-(1/3)``) falls back to ``math_verify``'s LaTeX parser, which builds a
SymPy expression without ``eval`` (so it is safe on model output).

``answers_match`` compares with a tolerance, never with ``round()``: rounding makes 0.5 vs 0.4999
flip depending on the digit, and hides real errors on large numbers.

Conventions (each one is a choice; the tests in tests/test_answer.py pin them down):

* **Integers compare exactly.** Two integral answers match only when they are the same integer, at
  any size (``1000000000001`` is not ``1000000000000``). Strings, ``int``, ``Fraction`` and
  ``Decimal`` are read exactly; a binary ``float`` above 2**53 holds no exact integer, so there the
  other side must round to the same float.
* **Non-integers** match within ``abs_tol`` (5e-5: float noise such as 14.399999999 vs 14.4, and a
  rounded 0.3333 for 1/3); a relative term of one float epsilon applies only when a side is a binary
  float, to absorb its rounding. Answers closer than 5e-5 are the same answer by design.
* **Mixed numbers** (``1 1/2``, ``-2 3/4``) are read as whole + proper fraction, the sign applying
  to the whole (``-2 3/4`` = -2.75); an improper or zero-denominator part (``1 3/2``, ``1 1/0``)
  is refused. ``last_number`` reads a trailing mixed number the same way.
* **Thousands groupings** use commas only (``1,234,567``). Dots as group separators
  (``1.234.567``), decimal commas (``1,23``, ``1.234,5``), badly placed groups (``12,34``) and
  space-separated digit groups (``1 000``) are ambiguous and refused (``None``), by
  ``parse_number`` and by ``last_number`` when such a token is the last number, rather than read
  as a different number.
* **Scientific notation** (``1e3``, ``1.5E-2``, ``2.5e+20``) is read as the number it states, as a
  whole (never as its mantissa or exponent alone); exponents beyond +-400 are refused, and so are
  numbers written with more than 400 digits (a 5000-digit number in a reply or a data file is no
  answer, not a crash).
* **"The answer is"**: ``answer_phrase_tail`` returns the text after the *last* "the (final)
  answer is" / ``####`` of the rationale, also when several stand on one line.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
from decimal import Decimal
from fractions import Fraction
from typing import Any, Optional, Union

log = logging.getLogger(__name__)

__all__ = [
    "parse_number",
    "parse_exact",
    "last_number",
    "answers_match",
    "to_float",
    "answer_phrase_tail",
    "boxed_content",
]

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
# last_number: every number-like token of running text. The token is taken greedily with its dots,
# commas and slashes ("1.234.567", "1,23", "3/4/2024") and then validated as a whole, so an
# ambiguous token is refused instead of being read as one of its pieces. A mixed number needs
# exactly one space ("3 1/2").
_TOKEN = re.compile(
    r"(?<![\w.])(?P<sign>-)?\$?\s?"
    r"(?:(?P<whole>\d+) (?P<fn>\d+)/(?P<fd>\d+)(?![\w/.,]\w)"
    r"|(?P<raw>\d[\d.,/]*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))"
    r"(?P<pct>%)?"
)
_PLAIN = re.compile(r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?|(?P<n>\d+)/(?P<d>\d+)")
_MAX_EXP = 400  # 10**400 is past any float; a bigger exponent is refused rather than computed
_MAX_DIGITS = 400  # the same bound on a number's digits: "7" * 5000 is refused, never read
_DIGIT_GROUPS = ("whole", "fn", "fd", "n", "d", "num", "exp")
# "The answer is 42", "the final answer is: $1,200", "#### 42"
_ANSWER_PHRASE = re.compile(r"(?:the\s+(?:final\s+)?answer\s+is\s*:?|####)", re.I)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FRAC = re.compile(r"(-)?\s*\\[dt]?frac\s*\{\s*([-+]?\d+(?:\.\d+)?)\s*\}\s*\{\s*([-+]?\d+(?:\.\d+)?)\s*\}")
_FRAC_BARE = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")  # \frac12
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{([^{}]*)\}")
_MATH_CHARS = re.compile(r"^[-+*/^()\[\]{}\\.\d\sA-Za-z,]*$")
_SYMBOLIC_MARK = re.compile(r"\\|sqrt|\bpi\b|\^|\(|π|√")


def boxed_content(s: str) -> Optional[str]:
    """Content of the last \\boxed{...} (brace-matched), or None."""
    last = None
    for m in _BOXED.finditer(s):
        depth, i = 1, m.end()
        while i < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[i], 0)
            i += 1
        if depth == 0:
            last = s[m.end() : i - 1]
    return last


def _clean(text: str) -> str:
    s = text.translate(_MINUS).strip()
    boxed = boxed_content(s)
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


def _exact(g: dict) -> Optional[Fraction]:
    """The exact value of a number matched by _NUM/_TOKEN/_PLAIN groups, or None when refused."""
    if any(len(v) > _MAX_DIGITS for k, v in g.items() if v and k in _DIGIT_GROUPS):
        return None  # past any float, and past Python's int-from-string limit (a ValueError)
    if g.get("whole") is not None:
        num, den = int(g["fn"]), int(g["fd"])
        if den == 0 or num >= den:  # "1 3/2" and "1 1/0" are not mixed numbers
            return None
        v = int(g["whole"]) + Fraction(num, den)
    elif g.get("n") is not None:
        if Fraction(g["d"]) == 0:
            return None
        v = Fraction(g["n"]) / Fraction(g["d"])
    else:
        num = g["num"].replace(",", "").rstrip(".")
        exp = int(g["exp"][1:]) if g.get("exp") else 0
        if abs(exp) > _MAX_EXP:
            return None
        v = Fraction(num) * Fraction(10) ** exp
    return -v if g.get("sign") == "-" else v


def _as_float(v: Optional[Fraction]) -> Optional[float]:
    if v is None:
        return None
    try:
        return _finite(float(v))
    except OverflowError:
        return None


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


_STRICT_REFUSED = Fraction(0)  # a distinct object: "a number, but strict mode refuses its tail"


def _lead_exact(s: str, strict: bool) -> Optional[Fraction]:
    """The exact number a cleaned answer string starts with, or None (see parse_number)."""
    m = _LEAD.match(s)
    if not m:
        return None
    rest = s[m.end() :]
    # The match must not be the prefix of something else: "3:30", "1,23" (decimal comma),
    # "2x", "3.4.5", "12/0", "1 000" (space-grouped digits) etc. are not numbers we can trust.
    bad_continuation = re.match(
        r"^(?:[:/\d]|[.,]\d|\s+\d|[A-Za-z_]\w*\s*[=(/*^+]|\s*(?:\*\*|[-+*/^])\s*[\d(\\{])", rest
    )
    if bad_continuation:
        return None
    if strict and not re.fullmatch(r"\s*(?:\([^()]*\))?\s*[.,!]?\s*", rest):
        return _STRICT_REFUSED
    # "45%" stays 45: the datasets state percentages in percent, not as fractions.
    return _exact(m.groupdict())


def parse_exact(text: str, strict: bool = False) -> Optional[Fraction]:
    """The exact value (a Fraction) of a plain numeric answer string, or None.

    Same reading as :func:`parse_number` without the symbolic fallback: integers, decimals,
    fractions, mixed numbers and scientific notation, with currency, units and punctuation."""
    if not isinstance(text, str):
        return None
    s = _clean(text)
    v = _lead_exact(s, strict) if s else None
    return None if v is _STRICT_REFUSED else v


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
    exact = _lead_exact(s, strict)
    if exact is _STRICT_REFUSED:
        return None
    v = _as_float(exact)
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
    """The last number in running text (``... so she has $1,200.`` -> 1200.0), or None.

    None also when the last number-like token is ambiguous (``1.234.567``, ``1,23``, ``3/4/2024``):
    an earlier number or a piece of the token would be a guess."""
    if not text:
        return None
    s = text.translate(_MINUS)
    boxed = boxed_content(s)
    if boxed is not None:
        v = parse_number(boxed)
        if v is not None:
            return v
    s = _FRAC.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}/{m.group(3)}", s)
    last = None
    for m in _TOKEN.finditer(s):
        last = m
    if last is None:
        return None
    g = dict(last.groupdict())
    if g["raw"] is not None:
        raw = g["raw"].rstrip(".,/")  # sentence punctuation after the number
        plain = _PLAIN.fullmatch(raw)
        if not raw or plain is None:
            return None
        g.update({k: v for k, v in plain.groupdict().items()})
    return _as_float(_exact(g))


def answer_phrase_tail(text: Optional[str]) -> Optional[str]:
    """The rest of the line after the last "the (final) answer is" / ``####``, or None."""
    if not text:
        return None
    last = None
    for m in _ANSWER_PHRASE.finditer(text):
        last = m
    if last is None:
        return None
    return text[last.end() :].split("\n", 1)[0].strip()


Number = Union[Fraction, float]


def _value(x: Any) -> Optional[Number]:
    """An exact Fraction where the input states one (str, int, Fraction, Decimal), else a float."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, int):
        return Fraction(x)
    if isinstance(x, Fraction):
        return x
    if isinstance(x, Decimal):
        return Fraction(x) if x.is_finite() else None
    if isinstance(x, str):
        exact = parse_exact(x)
        return exact if exact is not None else parse_number(x)
    return to_float(x)


def _integral(v: Number) -> bool:
    return v.is_integer() if isinstance(v, float) else v.denominator == 1


def answers_match(pred: Any, gold: Any, rel_tol: float = sys.float_info.epsilon, abs_tol: float = 5e-5) -> bool:
    """Whether two answers (numbers or answer strings) are the same number; None never matches.

    Integers compare exactly; otherwise the tolerance is absolute (float noise such as
    14.399999999 vs 14.4, or 0.3333 vs 1/3), plus ``rel_tol`` times the magnitude only when a side
    is a binary float. A relative tolerance of 1e-9 would call 1000000000001 and 1000000000000
    equal. See the module docstring for every convention."""
    p, g = _value(pred), _value(gold)
    if p is None or g is None:
        return False
    floaty = isinstance(p, float) or isinstance(g, float)
    if _integral(p) and _integral(g):
        if not floaty or max(abs(p), abs(g)) <= 2**53:
            return Fraction(p) == Fraction(g)
        # Beyond 2**53 a float is not an exact integer: the other side must round to it.
        return _as_float(Fraction(p)) == _as_float(Fraction(g))
    if not floaty:
        return abs(p - g) <= Fraction(abs_tol)
    pf, gf = _as_float(Fraction(p)), _as_float(Fraction(g))
    if pf is None or gf is None:
        return False
    return abs(pf - gf) <= abs_tol + rel_tol * max(abs(pf), abs(gf))
