"""Gold PoT programs from the datasets' own equations/annotations, run through the Sandbox.

SVAMP and MultiArith equations and GSM8K calculator annotations become programs; every program
must reproduce the gold answer, except rows where the dataset itself is inconsistent. Those are
listed one by one, with the reason, in ``fixtures/gold_program_failures.json`` and the test
asserts the exact set (regenerate with ``python tests/test_gold_programs.py --regen``):

* SVAMP ``chal-680``: the file's ``Answer`` (1.0) disagrees with its own ``Equation``
  ``( ( 4.0 - 2.0 ) + 3.0 )`` = 5.0.
* GSM8K (204 train + 51 test rows): no calculator annotation and no plain-text equation in the
  rationale states the final answer: the last step is done in words, rounds, or changes units
  (e.g. dollars -> cents), so no program built from the annotations can give it.

113 GSM8K rows (95 train + 18 test) have no annotations at all and get no program.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fdd.config import SourceConfig
from fdd.data import load_source
from fdd.reasoning.answer import answers_match, parse_number
from fdd.reasoning.gold_programs import gold_program, gsm8k_program, multiarith_program, svamp_program
from fdd.sandbox import Sandbox

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FAILURES = Path(__file__).resolve().parent / "fixtures" / "gold_program_failures.json"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")

SOURCES = {
    "svamp": ("svamp", "test"),
    "multiarith": ("multiarith", "test"),
    "gsm8k-train": ("gsm8k", "train"),
    "gsm8k-test": ("gsm8k", "test"),
}
# rows, rows with a program, expected failures (see the module docstring)
EXPECTED = {
    "svamp": (1000, 1000, 1),
    "multiarith": (600, 600, 0),
    "gsm8k-train": (7473, 7378, 204),
    "gsm8k-test": (1319, 1301, 51),
}


def failure_reason(problem, value) -> str:
    if problem.source == "svamp":
        return f"dataset Answer {problem.answer:g} disagrees with its Equation {problem.meta['equation']} (= {value:g})"
    stated = [parse_number(a.rpartition("=")[2]) for a in problem.meta.get("annotations", [])]
    if any(answers_match(x, problem.answer) for x in stated):
        return f"an annotation states the answer {problem.answer:g} but its expression evaluates to {value}"
    return f"no calculator annotation or text equation states the answer {problem.answer:g} (last step gives {value:g})"


def run_gold(sandbox: Sandbox, key: str):
    loader, split = SOURCES[key]
    problems = load_source(SourceConfig(loader=loader, split=split, path=str(DATA))).problems
    progs = [(p, *gold_program(p)) for p in problems]
    runnable = [(p, g) for p, g, _ in progs if g]
    no_prog = {p.id: why for p, g, why in progs if g is None}
    results = sandbox.run_many([g for _, g in runnable])
    fails = {
        p.id: failure_reason(p, r.value) if r.value is not None else f"sandbox {r.error}: {r.detail}"
        for (p, _), r in zip(runnable, results)
        if not answers_match(r.value, p.answer)
    }
    return problems, runnable, no_prog, fails


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2, timeout_s=2.0) as s:
        yield s


@needs_data
@pytest.mark.parametrize("key", list(SOURCES))
def test_gold_programs_reproduce_answers(sandbox, key):
    problems, runnable, no_prog, fails = run_gold(sandbox, key)
    n_rows, n_prog, n_fail = EXPECTED[key]
    assert (len(problems), len(runnable)) == (n_rows, n_prog)
    assert all(why == "no calculator annotations" for why in no_prog.values())
    known = {
        k: v
        for k, v in json.loads(FAILURES.read_text())["failures"].items()
        if k.startswith(key if key.startswith("gsm8k") else key + "-")
    }
    assert set(fails) == set(known), {k: fails.get(k, known.get(k)) for k in set(fails) ^ set(known)}
    assert len(fails) == n_fail
    assert all(not v.startswith("sandbox") for v in fails.values())  # never the sandbox's fault
    assert fails == known


def test_svamp_and_multiarith_programs():
    assert svamp_program("( 76.0 - 25.0 )") == ("answer = ( 76.0 - 25.0 )\n", None)
    assert multiarith_program(["X=((32.0+42.0)-35.0)"]) == ("answer = ((32.0+42.0)-35.0)\n", None)
    assert multiarith_program(["X+3=5"])[0] is None
    assert svamp_program("")[1] == "no equation"
    assert svamp_program("__import__('os')")[0] is None  # only arithmetic on literals


def test_gsm8k_program_shapes():
    prog, why = gsm8k_program(["48/2=24", "48+24=72"])
    assert why is None and prog == "step1 = 48/2\nstep2 = 48+24\nanswer = step2\n"
    assert gsm8k_program([]) == (None, "no calculator annotations")
    prog, _ = gsm8k_program(["20%*50=10", "3x4=12", "1,000*.01=10", "2^3=8", "$5*2=10", "05+1=6"])
    assert "(20/100)*50" in prog and "3*4" in prog and "1000*0.01" in prog and "2**3" in prog and "5+1" in prog
    # with the gold answer, the step that states it is the answer; a text equation can add the final step
    prog, _ = gsm8k_program(["5*7=35", "75-35=40"], gold=35.0)
    assert prog.endswith("answer = step1\n")
    prog, _ = gsm8k_program(["75-55=20"], gold=5.0, rationale="75-55 = $<<75-55=20>>20\nso 20/4 = $5\n#### 5")
    assert "step2 = 20/4" in prog and prog.endswith("answer = step2\n")


def test_gold_programs_run(sandbox):
    progs = [
        gsm8k_program(["20%*50=10", "10*3=30"])[0],
        svamp_program("( 3.0 + 5.0 )")[0],
        multiarith_program(["X=(5+3)"])[0],
    ]
    assert [r.value for r in sandbox.run_many(progs)] == [30.0, 8.0, 8.0]


def _regen() -> None:  # pragma: no cover - maintenance helper
    out = {}
    with Sandbox(workers=2, timeout_s=2.0) as s:
        for key in SOURCES:
            out.update(run_gold(s, key)[3])
    FAILURES.write_text(
        json.dumps(
            {
                "_doc": "Rows whose gold program cannot reproduce the dataset's answer because the "
                "dataset itself is inconsistent: id -> reason. See tests/test_gold_programs.py.",
                "failures": out,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    print(f"wrote {len(out)} failures to {FAILURES}")


if __name__ == "__main__" and "--regen" in sys.argv:  # pragma: no cover
    _regen()
