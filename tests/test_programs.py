"""Reply conventions of real models (issue 22): every way Qwen2.5-Coder-1.5B-Instruct stated a PoT
answer or a CoT answer, read by the one documented convention (fdd/reasoning/programs.py).

The texts are real replies (llama.cpp, temperature 0.7, the default prompts), cut to what each test
needs; tests/fixtures/real_replies.jsonl holds whole replies with their problems and gold answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fdd.reasoning.formats import cot_answer, get_format
from fdd.reasoning.programs import ANSWER_READER, normalize_program, program_fingerprint, read_answer, read_result
from fdd.sandbox import ExecResult, Sandbox, SandboxLimits
from fdd.teachers.llm import parse_program

FIXTURE = Path(__file__).parent / "fixtures" / "real_replies.jsonl"

SOLUTION_WITH_USAGE = """```python
# Define the function solution()
def solution():
    # Total number of contestants
    total_contestants = 18

    # Fraction of contestants that are female
    female_fraction = 1/3

    # Calculate the number of male contestants
    male_contestants = total_contestants - female_fraction * total_contestants

    # Return the number of male contestants
    return male_contestants

# Call the function and print the result
print(solution())
```"""

USAGE_WITH_OUTPUT_COMMENT = """```python
def solution():
    original_price = 22  # Initial price of the shirt in dollars
    payment = 16    # Amount paid by Megan in dollars
    discount = original_price - payment  # Calculate the discount
    return discount

print(solution())  # Output: 6
```"""

USAGE_THROUGH_A_VARIABLE = """```python
def solution():
    boat_width = 3  # feet
    spacing = 2  # feet
    river_length = 42  # feet
    return river_length // (boat_width + spacing)

# Call the function to get the result
result = solution()
print("Number of boats that can race:", result)
```"""

PRINT_SCRIPT = """```python
# Define the prices of the shoes
nike_price = 150
work_boots_price = 120

# Calculate the subtotal before tax
subtotal = nike_price + work_boots_price

# Calculate the tax
tax_rate = 0.10
tax_amount = subtotal * tax_rate

# Calculate the total amount paid
total_amount_paid = subtotal + tax_amount

# Print the final amount paid
print(total_amount_paid)
```"""

MODULE_RETURN = """```python
# Define the cost of Marion's bike
marion_bike_cost = 356

# Calculate the cost of Stephanie's bike, which is twice as much as Marion's
stephanie_bike_cost = 2 * marion_bike_cost

# Calculate the total price of both bikes
total_price = marion_bike_cost + stephanie_bike_cost

# Return the total price
return total_price
```"""

SCRIPT_WITHOUT_RESULT = """```python
# Initial number of pencils on Monday
pencils_monday = 20

# Number of pencils bought on Tuesday
pencils_tuesday = 18

# Number of pencils bought on Wednesday (triple the number of Tuesday's pencils)
pencils_wednesday = 3 * pencils_tuesday

# Total number of pencils after buying on Wednesday
total_pencils = pencils_monday + pencils_tuesday + pencils_wednesday
```"""


@pytest.fixture(scope="module")
def pot():
    with Sandbox(SandboxLimits(workers=1, timeout_s=2.0)) as sb:
        fmt = get_format("pot")
        yield lambda text: fmt.extract([parse_program(text)], sb)[0]


@pytest.mark.parametrize(
    "reply, value, convention",
    [
        (SOLUTION_WITH_USAGE, 12.0, "solution"),
        (USAGE_WITH_OUTPUT_COMMENT, 6.0, "solution"),
        (USAGE_THROUGH_A_VARIABLE, 8.0, "solution"),
        (PRINT_SCRIPT, 297.0, "print"),
        (MODULE_RETURN, 1068.0, "module_return"),
    ],
    ids=["solution+print", "usage-output-comment", "usage-via-variable", "print-script", "module-return"],
)
def test_each_program_convention_reads_its_answer(pot, reply, value, convention):
    res = pot(reply)
    assert res.ok and res.value == pytest.approx(value) and res.convention == convention, res


def test_a_script_that_never_states_its_result_has_no_answer(pot):
    res = pot(SCRIPT_WITHOUT_RESULT)
    assert res.error == "no_answer" and res.value is None  # the last assignment is a guess, not a convention


def test_example_usage_is_stripped_from_what_the_student_learns(pot):
    for reply in (SOLUTION_WITH_USAGE, USAGE_WITH_OUTPUT_COMMENT, USAGE_THROUGH_A_VARIABLE):
        target = pot(reply).text
        assert (
            target is not None
            and target.rstrip().endswith("return male_contestants")
            or "return" in (target.strip().splitlines()[-1])
        ), target
        assert "print" not in target and "Call the function" not in target and "result = solution()" not in target
        assert normalize_program(target).code == target  # idempotent: the target reads as itself


def test_a_module_level_return_becomes_a_solution_function(pot):
    target = pot(MODULE_RETURN).text
    assert target.startswith("def solution():\n    # Define the cost of Marion's bike\n")
    assert target.rstrip().endswith("    return total_price")
    assert normalize_program(target) == normalize_program(target)  # runs as the solution convention
    assert pot(target).convention == "solution"


def test_a_print_script_is_learnt_as_written(pot):
    assert pot(PRINT_SCRIPT).text is None  # nothing to change: the print is its answer


def test_answer_variable_and_solution_returning_none_that_prints(pot):
    assert pot("x = 4\nanswer = x * 2\n").convention == "answer"
    res = pot("def solution():\n    print(7 * 6)\n")
    assert res.ok and res.value == 42.0 and res.convention == "print"


def test_usage_that_other_code_reads_is_kept():
    code = "def solution():\n    return 3\n\nanswer = solution()\nprint(answer)\n"
    norm = normalize_program(code)
    assert "answer = solution()" in norm.code and "print" not in norm.code  # the answer line stays
    code = "def solution():\n    return 3\n\nr = solution()\nanswer = r * 2\n"
    assert normalize_program(code).code == code  # r is read by the answer line: not usage


def test_main_guard_is_usage():
    code = 'def solution():\n    return 3\n\nif __name__ == "__main__":\n    print(solution())\n'
    assert normalize_program(code).code == "def solution():\n    return 3\n"


def test_fingerprint_ignores_names_comments_and_layout():
    a = "def solution():\n    # apples\n    apples = 3\n    return apples * 2\n"
    b = "def solution():\n    x = 3  # three\n\n    return x * 2\n"
    c = "def solution():\n    x = 3\n    return x * 3\n"
    assert program_fingerprint(a) == program_fingerprint(b) != program_fingerprint(c)
    assert program_fingerprint("The answer is  5.") == program_fingerprint("The answer is 5.")


# ---- CoT ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value, convention",
    [
        ("She has 3 + 4 = 7 apples.\nThe answer is 7.", 7.0, "answer_is"),
        ("Total: 120 - 45 = 75 dollars.\n\nSo she has $\\boxed{75}$ left.", 75.0, "boxed"),
        ("Each box holds 12, so 5 boxes hold 12 * 5 = 60.\n\\[\\boxed{60}\\]", 60.0, "boxed"),
        ("She has 3 + 4 = 7 apples left.", 7.0, "last_number"),
    ],
)
def test_cot_conventions(text, value, convention):
    res = cot_answer(text)
    assert res.ok and res.value == value and res.convention == convention


REAL_BOXED = """Step 3: Add the additional dimes Dan finds to the number he originally had.
Dan finds 2 more dimes, so we add these to the 50 dimes he originally had:
\\[
50 + 2 = 52
\\]
Therefore, Dan has \\(\\boxed{52}\\) dimes."""

REAL_PLACEHOLDER = """Next, we need to find the relative speed of the rabbit with respect to the cat. This is the \
difference between the rabbit's speed and the cat's speed of 20 miles per hour.

The answer is N, where N is the time in hours it will take for the rabbit to catch up to the cat."""


def test_real_cot_replies_boxed_and_a_placeholder():
    res = cot_answer(REAL_BOXED)
    assert (res.value, res.convention) == (52.0, "boxed")
    res = cot_answer(REAL_PLACEHOLDER)  # was read as 20 (the last number) before
    assert res.error == "no_answer" and "placeholder" in res.detail


def test_the_answer_phrase_wins_over_an_earlier_box():
    res = cot_answer("First \\boxed{3} apples, then 4 more.\nThe answer is 7.")
    assert (res.value, res.convention) == (7.0, "answer_is")


# ---- every recorded real reply -------------------------------------------------------------------


def _recorded():
    if not FIXTURE.is_file():
        return []
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("rec", _recorded(), ids=lambda r: f"{r['format']}-{r['id']}")
def test_recorded_real_replies_read_as_recorded(pot, rec):
    """Each reply with the answer and convention the hand check recorded (tests/fixtures/real_replies.jsonl)."""
    res = pot(rec["reply"]) if rec["format"] == "pot" else cot_answer(rec["reply"])
    assert (res.value, res.convention, res.error) == (rec["value"], rec["convention"], rec["error"]), res


def test_a_5000_digit_number_is_no_answer_not_a_crash(pot):
    """Python refuses int() of more than 4300 digits with a ValueError; a reply holding such a number
    (cached, it would crash every rerun) is read as having no answer (issue 23's bad input)."""
    from fdd.reasoning.answer import answers_match, last_number, parse_number

    huge = "7" * 5000
    assert parse_number(huge) is None and last_number(f"so {huge}") is None and not answers_match(huge, 7)
    assert cot_answer(f"The answer is {huge}.").error == "no_answer"
    assert pot(f"print({huge})").error == "error"  # the literal is refused when the program is parsed
    assert pot("print(7 ** 6000)").error == "error"  # and printing one fails inside the program
    assert pot(f"answer = '{huge}'").error == "non_numeric"
    assert pot("answer = 10 ** 5000").error == "non_numeric"


def test_usage_that_kept_code_still_needs_stays():
    """Found in review: removing these broke programs that ran."""
    augmented = "def solution():\n    return 3\n\nx = solution()\nx += 1\nprint(x)\n"
    assert "x = solution()" in normalize_program(augmented).code  # x += 1 needs it
    walrus = "def solution():\n    return 3\n\nprint(t := solution())\nanswer = t\n"
    assert normalize_program(walrus).code == walrus  # the print binds t
    same_line = "def solution():\n    return 3\n\nprint(solution()); answer = 7\n"
    assert normalize_program(same_line).code == same_line  # lines go whole: the answer line stays


def test_a_script_with_a_multiline_string_is_not_wrapped(pot):
    code = 'x = """a\nb"""\nreturn len(x)\n'
    assert normalize_program(code) == normalize_program(code) and not normalize_program(code).wrapped
    assert pot(code).error == "error"  # its return stays outside a function: refused, not changed


def test_fingerprint_keeps_builtins_apart():
    assert program_fingerprint("answer = sum(x)") != program_fingerprint("answer = max(x)")
    assert program_fingerprint("answer = round(7 / 2)") != program_fingerprint("answer = int(7 / 2)")


def test_a_huge_exponent_is_refused_too():
    from fdd.reasoning.answer import last_number, parse_number

    assert parse_number("1e" + "9" * 5000) is None and last_number("x = 1e" + "9" * 5000) is None


# ---------------------------------------------------------------------------- the convention's two halves
def test_read_answer_applies_rules_1_to_3_in_order():
    """read_answer, the half that runs in the sandbox worker, on namespaces as a program leaves them."""
    said = lambda text: lambda: text  # printed(): what the program printed (None: nothing)
    assert read_answer({"solution": lambda: 5, "answer": 9}, said("1\n")) == ("solution", 5)
    assert read_answer({"solution": 3, "answer": 9}, said(None)) == ("answer", 9)  # not callable: not rule 1
    assert read_answer({"answer": None}, said("x 12\n")) == ("print", "x 12\n")
    assert read_answer({"solution": lambda: None}, said(None)) == ("solution", None)  # None: not a number, later
    assert read_answer({"solution": lambda: None}, said("7\n")) == ("print", "7\n")
    assert read_answer({}, said("")) == ("print", "")  # print(end="") still printed
    assert read_answer({}, said(None)) == (None, "no solution(), no top-level answer and nothing printed")
    assert read_answer({}, said("9" * 3000))[1] == "9" * 2000  # the end of what was printed
    out = []
    assert read_answer({"solution": lambda: out.append("6\n")}, lambda: "".join(out) or None) == ("print", "6\n")


def test_the_answer_reader_is_self_contained_source():
    """The worker gets ANSWER_READER as text and runs it with builtins only (fdd/sandbox/worker.py)."""
    namespace: dict = {"__builtins__": __builtins__}
    exec(compile(ANSWER_READER, "<answer reader>", "exec"), namespace)
    assert set(namespace) == {"__builtins__", "read_answer"}
    assert namespace["read_answer"]({"answer": 4}, lambda: None) == ("answer", 4)


def test_read_result_reads_numbers_out_of_text_answers():
    """read_result, the half in the parent: what the sandbox reports as text becomes a number here."""
    text = lambda t, conv: ExecResult(None, "non_numeric", f"string {t[:80]!r}", conv, answer_text=t)
    assert read_result(text("$1,200", "answer")) == ExecResult(1200.0, None, convention="answer")
    assert read_result(text("step 1\nresult: 42\n", "print")) == ExecResult(42.0, None, convention="print")
    assert read_result(text("twelve", "solution")) == ExecResult(None, "non_numeric", "string 'twelve'", "solution")
    assert read_result(text("done\n", "print")) == ExecResult(
        None, "no_answer", "printed no number: 'done\\n'", "print"
    )
    number = ExecResult(3.0, None, convention="answer")
    assert read_result(number) is number
