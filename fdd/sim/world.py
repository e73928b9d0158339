"""A built-in synthetic world of multi-step arithmetic word problems (the embedded default).

Every problem is rendered from a structured *spec*: a base scenario (shopping, rates, fractions,
percentages, ...) that yields a first quantity, followed by modifier steps (buy more, give some
away, share equally, pay a tax, spend a fraction, ...) that each add one reasoning step. The
spec is the ground truth: it renders the question, a Program-of-Thought program, a
Chain-of-Thought rationale and the exact answer (computed with ``Fraction``).

The world also knows how to make a problem *harder* (append a modifier step) and how to make a
*similar* one (same base and modifier kinds, other people, items and numbers), which is what the
offline teacher (``fdd.sim.oracle``) uses. It is a simulator for tests and demos that need
no network; it is not a language model.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from fdd.config import ConfigError
from fdd.data.base import LoadResult
from fdd.runtime.seeding import rng as seeded_rng
from fdd.types import Problem, content_id

NAMES = [
    "Ava",
    "Ben",
    "Carla",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jamal",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
]
ITEMS = [
    "apple",
    "pencil",
    "notebook",
    "sticker",
    "marble",
    "cookie",
    "book",
    "ticket",
    "candle",
    "shirt",
    "plant",
    "cup",
    "ball",
    "card",
    "lemon",
    "brush",
]
FRIENDS = ["friends", "classmates", "cousins", "neighbors", "teammates"]
PRONOUN = {
    n: (
        "she"
        if n
        in {"Ava", "Carla", "Elena", "Grace", "Ines", "Kira", "Maya", "Olga", "Priya", "Rosa", "Uma", "Wen", "Yara"}
        else "he"
    )
    for n in NAMES
}


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("sh", "ch", "s", "x")) else "s")


def _fmt(x: Fraction) -> str:
    """A number as the world writes it in questions and programs (integers without '.0')."""
    if x.denominator == 1:
        return str(x.numerator)
    return repr(float(x))


# ---------------------------------------------------------------------------------------------
# Base scenarios: (sentences, program lines, first quantity, unit). Each is 1 or 2 steps.
# ---------------------------------------------------------------------------------------------


@dataclass
class Rendered:
    sentences: List[str]
    ops: List[Tuple[str, Fraction]]  # (expression over previous vars and literals, value)
    unit: str  # "money" or "count"


# One-step bases: (sentence, operator of a and b, unit).
_ONE_STEP = {
    "shopping": ("{name} sells {a} {items} for ${b} each.", "*", "money"),
    "collection": ("{name} has {a} {items} and finds {b} more.", "+", "count"),
    "rate": ("{name} earns ${a} per hour and works for {b} hours.", "*", "money"),
    "boxes": ("{name} fills {a} boxes with {b} {items} in each box.", "*", "count"),
}


def _one_step(kind: str) -> Callable[[dict], Rendered]:
    sentence, op, unit = _ONE_STEP[kind]

    def render(p: dict) -> Rendered:
        a, b = p["a"], p["b"]
        value = Fraction(a * b) if op == "*" else Fraction(a + b)
        text = sentence.format(name=p["name"], a=a, b=b, items=plural(p["item"]))
        return Rendered([text], [(f"{a} {op} {b}", value)], unit)

    return render


def _base_fraction(p: dict) -> Rendered:
    a, q = p["a"] * p["q"], p["q"]  # a multiple of q so the fraction is whole
    taken = Fraction(a, q)
    return Rendered(
        [f"{p['name']} has {a} {plural(p['item'])} and gives away 1/{q} of them."],
        [(f"{a} / {q}", taken), (f"{a} - x1", Fraction(a) - taken)],
        "count",
    )


def _base_discount(p: dict) -> Rendered:
    a, pct = p["a"] * 4, p["pct"]
    off = Fraction(a * pct, 100)
    return Rendered(
        [f"A {p['item']} costs ${a}. {p['name']} buys it at {pct}% off."],
        [(f"{a} * {pct} / 100", off), (f"{a} - x1", Fraction(a) - off)],
        "money",
    )


BASES: Dict[str, Callable[[dict], Rendered]] = {
    **{kind: _one_step(kind) for kind in _ONE_STEP},
    "fraction": _base_fraction,
    "discount": _base_discount,
}


def _base_params(kind: str, rng: random.Random) -> dict:
    p = {"name": rng.choice(NAMES), "item": rng.choice(ITEMS), "a": rng.randint(2, 12), "b": rng.randint(2, 12)}
    if kind == "fraction":
        p["q"] = rng.choice([2, 3, 4, 5])
    if kind == "discount":
        p["pct"] = rng.choice([10, 20, 25, 50])
    return p


# ---------------------------------------------------------------------------------------------
# Modifiers: one extra reasoning step each. ``pick`` chooses numbers that keep answers tidy.
# ---------------------------------------------------------------------------------------------


def _mod_more(v: Fraction, p: dict, ctx: dict) -> Tuple[str, str, Fraction]:
    noun = "dollars" if ctx["unit"] == "money" else f"{plural(ctx['item'])}"
    verb = "earns" if ctx["unit"] == "money" else "gets"
    return f"Then {ctx['pron']} {verb} {p['n']} more {noun}.", f"{{v}} + {p['n']}", v + p["n"]


def _mod_less(v: Fraction, p: dict, ctx: dict) -> Tuple[str, str, Fraction]:
    noun = "dollars" if ctx["unit"] == "money" else f"{plural(ctx['item'])}"
    verb = "spends" if ctx["unit"] == "money" else "loses"
    return f"After that {ctx['pron']} {verb} {p['n']} {noun}.", f"{{v}} - {p['n']}", v - p["n"]


def _mod_times(v: Fraction, p: dict, ctx: dict) -> Tuple[str, str, Fraction]:
    return f"{ctx['Pron']} repeats this {p['n']} times in total.", f"{{v}} * {p['n']}", v * p["n"]


def _mod_share(v: Fraction, p: dict, ctx: dict) -> Tuple[str, str, Fraction]:
    return (
        f"{ctx['Pron']} splits everything equally among {p['n']} {p['who']}, keeping one share.",
        f"{{v}} / {p['n']}",
        v / p["n"],
    )


def _mod_tax(v: Fraction, p: dict, ctx: dict) -> Tuple[str, str, Fraction]:
    return (
        f"A fee of {p['pct']}% is added on top.",
        f"{{v}} + {{v}} * {p['pct']} / 100",
        v + v * Fraction(p["pct"], 100),
    )


def _mod_half(v: Fraction, p: dict, ctx: dict) -> Tuple[str, str, Fraction]:
    return f"{ctx['Pron']} then puts 1/{p['q']} of it aside.", f"{{v}} - {{v}} / {p['q']}", v - v / p["q"]


MODIFIERS: Dict[str, Callable[[Fraction, dict, dict], Tuple[str, str, Fraction]]] = {
    "more": _mod_more,
    "less": _mod_less,
    "times": _mod_times,
    "share": _mod_share,
    "tax": _mod_tax,
    "half": _mod_half,
}


def _mod_params(kind: str, v: Fraction, rng: random.Random) -> Optional[dict]:
    """Numbers for a modifier applied to value ``v``; None when the modifier cannot apply cleanly."""
    if kind == "more":
        return {"n": rng.randint(2, 15)}
    if kind == "less":
        if v <= 3:
            return None
        return {"n": rng.randint(1, int(min(v - 1, 15)))}
    if kind == "times":
        return {"n": rng.randint(2, 4)} if v <= 200 else None
    if kind == "share":
        divs = [d for d in (2, 3, 4, 5) if v.denominator == 1 and v.numerator % d == 0]
        return {"n": rng.choice(divs), "who": rng.choice(FRIENDS)} if divs else None
    if kind == "tax":
        pcts = [p for p in (10, 20, 25, 50) if (v * p / 100).denominator == 1]
        return {"pct": rng.choice(pcts)} if pcts else None
    if kind == "half":
        qs = [q for q in (2, 3, 4) if v.denominator == 1 and v.numerator % q == 0]
        return {"q": rng.choice(qs)} if qs else None
    raise KeyError(kind)


QUESTIONS = {"money": "How much money does {name} have now?", "count": "How many {items} does {name} have now?"}


# ---------------------------------------------------------------------------------------------
# Specs: render, create, make harder, make similar
# ---------------------------------------------------------------------------------------------


def _evaluate(spec: dict) -> Tuple[List[str], List[Tuple[str, Fraction]], str]:
    """Sentences, program steps (expressions with x<i> references) and unit of a spec."""
    base = BASES[spec["base"]](spec["params"])
    sentences, steps = list(base.sentences), list(base.ops)
    pron = PRONOUN[spec["params"]["name"]]
    ctx = {"unit": base.unit, "item": spec["params"]["item"], "pron": pron, "Pron": pron.capitalize()}
    v = steps[-1][1]
    for kind, mp in spec["mods"]:
        sentence, expr, v = MODIFIERS[kind](v, mp, ctx)
        sentences.append(sentence)
        steps.append((expr.replace("{v}", f"x{len(steps)}"), v))
    return sentences, steps, base.unit


def render(spec: dict) -> Tuple[str, str, str, Fraction]:
    """(question, PoT program, CoT rationale, exact answer) of a spec."""
    sentences, steps, unit = _evaluate(spec)
    q = QUESTIONS[unit].format(items=plural(spec["params"]["item"]), **spec["params"])
    question = " ".join(sentences + [q])
    lines = [f"x{i + 1} = {expr}" for i, (expr, _) in enumerate(steps)]
    program = "\n".join(lines + [f"answer = x{len(steps)}"])
    cot_parts = []
    for i, (expr, val) in enumerate(steps):
        shown = expr
        for j in range(i, 0, -1):  # substitute earlier results so each CoT step is self-contained
            shown = shown.replace(f"x{j}", _fmt(steps[j - 1][1]))
        cot_parts.append(f"{shown} = {_fmt(val)}.")
    answer = steps[-1][1]
    cot = " ".join(cot_parts) + f" The answer is {_fmt(answer)}."
    return question, program, cot, answer


def n_steps(spec: dict) -> int:
    return len(_evaluate(spec)[1])


def _try_add_mod(spec: dict, rng: random.Random, kinds: Sequence[str]) -> bool:
    v = _evaluate(spec)[1][-1][1]
    for kind in rng.sample(list(kinds), len(kinds)):
        mp = _mod_params(kind, v, rng)
        if mp is not None:
            spec["mods"].append([kind, mp])
            return True
    return False


def make_spec(rng: random.Random, steps: int, families: Optional[Dict[str, float]] = None) -> dict:
    """A random problem with about ``steps`` reasoning steps; ``families`` weights the base
    scenarios (None or empty = uniform)."""
    if families:
        kinds = sorted(families)
        base = rng.choices(kinds, weights=[families[k] for k in kinds])[0]
    else:
        base = rng.choice(sorted(BASES))
    spec = {"base": base, "params": _base_params(base, rng), "mods": []}
    while n_steps(spec) < steps and _try_add_mod(spec, rng, sorted(MODIFIERS)):
        pass
    return spec


def harder(spec: dict, rng: random.Random) -> Optional[dict]:
    """The same problem with one more reasoning step (None if no step applies)."""
    new = copy.deepcopy(spec)
    return new if _try_add_mod(new, rng, sorted(MODIFIERS)) else None


def similar(spec: dict, rng: random.Random) -> Optional[dict]:
    """Same base and modifier kinds, fresh people, items and numbers (None if it cannot be made)."""
    for _ in range(20):
        new = {"base": spec["base"], "params": _base_params(spec["base"], rng), "mods": []}
        ok = True
        for kind, _old in spec["mods"]:
            mp = _mod_params(kind, _evaluate(new)[1][-1][1], rng)
            if mp is None:
                ok = False
                break
            new["mods"].append([kind, mp])
        if ok and render(new)[0] != render(spec)[0]:
            return new
    return None


def to_problem(spec: dict, source: str = "synthetic") -> Problem:
    question, _program, _cot, answer = render(spec)
    return Problem(
        id=content_id(question, prefix="syn-"),
        question=question,
        answer=float(answer),
        source=source,
        meta={"world": spec},
    )


def check_families(families: Dict[str, float]) -> Dict[str, float]:
    """Base-family weights of a scenario, refused when a name or weight makes no sense."""
    unknown = sorted(set(families) - set(BASES))
    if unknown:
        raise ConfigError(f"synthetic families: unknown {unknown}; the world's families are {sorted(BASES)}")
    if any(w < 0 for w in families.values()) or (families and sum(families.values()) <= 0):
        raise ConfigError(f"synthetic families: weights must be >= 0 with a positive sum, got {dict(families)}")
    return dict(families)


def family(problem: Problem) -> Optional[str]:
    """The base family of a synthetic problem (None for problems from elsewhere)."""
    spec = (problem.meta or {}).get("world")
    return spec.get("base") if isinstance(spec, dict) else None


def generate(
    n: int, seed: int, split: str, min_steps: int = 1, max_steps: int = 3, families: Optional[Dict[str, float]] = None
) -> List[Problem]:
    """``n`` distinct problems; ``split`` salts the random stream so train and test differ.
    ``families`` weights the base scenarios (a scenario: e.g. a seed set that under-represents
    some families while the held-out set covers all)."""
    families = check_families(families or {})
    rng = seeded_rng("fdd-synthetic", seed, split)  # the world's own salt first: its stream since the start
    seen, out = set(), []
    attempts = 0
    while len(out) < n and attempts < n * 50:
        attempts += 1
        prob = to_problem(make_spec(rng, rng.randint(min_steps, max_steps), families), source=f"synthetic-{split}")
        if prob.id not in seen:
            seen.add(prob.id)
            out.append(prob)
    return out


def load(spec, seed: int = 0) -> LoadResult:
    """Loader entry point for ``dataset=synthetic`` (see ``fdd.data.load_source``)."""
    n = int(spec.n) if spec.n else 200
    # Overlap with the training problems is removed for every loader in fdd.data.load_problems.
    families = {k: float(v) for k, v in dict(getattr(spec, "families", None) or {}).items()}
    return LoadResult(
        problems=generate(n, seed, spec.split, spec.min_steps, spec.max_steps, families),
        source=f"synthetic-{spec.split}",
    )
