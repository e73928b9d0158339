"""Tokenizer fidelity and length accounting, on an offline T5-like student (tests/t5like.py)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies

from fdd.config import SourceConfig
from fdd.students.data import OverlongError, encode_training_set
from fdd.students.fidelity import CODEC_FILE, Codec, FaithfulTokenizer, UnrepresentableError, check_texts, fit_codec
from tests.t5like import MISSING, build_t5like

# What real teachers write for `rationale=pot`: fenced functions, indentation, comments, dict and
# set literals, comparisons with `<`, f-strings with braces, a tab, trailing spaces, blank lines.
TEACHER_REPLIES = [
    "```python\ndef solution():\n    # Tom has 3 boxes of 12 eggs\n    boxes = 3\n    eggs_per_box = 12\n"
    "    total = boxes * eggs_per_box\n    return total\n```",
    "```python\ndef solution():\n    prices = {'apple': 0.5, 'pear': 0.75}\n    counts = {'apple': 4, 'pear': 2}\n"
    "    cost = sum(prices[k] * counts[k] for k in prices)\n\n    return cost\n```\n",
    "def solution():\n    seen = {1, 2, 3}\n    if len(seen) < 4:\n        answer = 10 - len(seen)\n"
    "    elif len(seen) <= 8:  \n        answer = 0\n    else:\n        answer = -1\n    return answer\n",
    'def solution():\n\tx = 7\n\ty = x << 1  # shift\n\tprint(f"{x} < {y}")\n\treturn y\n',
    "```python\nclass Box:\n    def __init__(self, n):\n        self.n = n\n\n\ndef solution():\n"
    "    boxes = [Box(i) for i in range(5) if i < 3]\n    return {b.n: b.n ** 2 for b in boxes}[2]\n```",
    "x1 = 6 * 4\nx2 = x1 + 2\nanswer = x2",
]


@pytest.fixture(scope="session")
def t5like_dir(tmp_path_factory):
    """A T5-like student folder (SentencePiece unigram + random-init T5), built offline once."""
    return build_t5like(tmp_path_factory.mktemp("t5like") / "student")


def _student(t5like_dir, tmp_path, **overrides):
    from omegaconf import OmegaConf

    from fdd.config import StudentConfig
    from fdd.reasoning.formats import get_format
    from fdd.students.student import Student

    cfg = OmegaConf.to_object(
        OmegaConf.merge(
            OmegaConf.structured(StudentConfig),
            {"name": "t5like", "arch": "seq2seq", "pretrained": str(t5like_dir), **overrides},
        )
    )
    return Student(cfg, {"accelerator": "cpu", "devices": 1}, get_format("pot"), 0, str(tmp_path / "tokenizer"))


def _plain(tok, text):
    return tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True)


def test_t5like_tokenizer_loses_what_flan_t5_loses(t5like_dir):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(t5like_dir)
    assert type(tok).__name__ == "T5Tokenizer"
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert _plain(tok, "x1 = 6 * 4\nx2 = x1") == "x1 = 6 * 4 x2 = x1"  # newline -> space
    assert _plain(tok, "def f():\n    return 1") == "def f(): return 1"  # indentation gone
    assert _plain(tok, "a  b\tc") == "a b c"  # runs of spaces, tabs collapsed
    for c in MISSING:
        assert c not in _plain(tok, f"a {c} b")
    assert _plain(tok, "answer = x2 + 7") == "answer = x2 + 7"  # what it has, it keeps
    assert AutoModelForSeq2SeqLM.from_pretrained(t5like_dir).config.model_type == "t5"


def test_student_tokenizer_roundtrips_teacher_replies_and_reloads(t5like_dir, tmp_path):
    st = _student(t5like_dir, tmp_path)
    tok = st.tokenizer()  # no corpus: probes printable ASCII
    assert isinstance(tok, FaithfulTokenizer) and not tok.codec.identity
    for text in TEACHER_REPLIES:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True) == text
    assert check_texts(tok, TEACHER_REPLIES) == [None] * len(TEACHER_REPLIES)
    # The saved folder carries the added tokens and the codec: a reload decodes the same way.
    saved = Path(tmp_path / "tokenizer")
    assert (saved / CODEC_FILE).is_file()
    added = json.loads((saved / "tokenizer.json").read_text())["added_tokens"]
    assert {t["content"] for t in added} >= set(tok.codec.table.values())
    assert all(not t["normalized"] for t in added if t["content"] in tok.codec.table.values())
    again = _student(t5like_dir, tmp_path).tokenizer()
    for text in TEACHER_REPLIES:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert again(text, add_special_tokens=False)["input_ids"] == ids
        assert again.decode(ids, skip_special_tokens=True) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strategies.text(alphabet="ab1 \n\t{}<>=:#()'", max_size=40))
def test_any_program_like_text_survives_the_t5like_student(t5like_tokenizer, text):
    tok = t5like_tokenizer
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True) == text


@pytest.fixture(scope="session")
def t5like_tokenizer(t5like_dir, tmp_path_factory):
    return _student(t5like_dir, tmp_path_factory.mktemp("tok")).tokenizer()


def _gold_programs(data: Path, name: str, n: int = 200):
    from fdd.data import load_source
    from fdd.reasoning.gold_programs import gold_program, svamp_program

    split = "test" if name != "gsm8k" else "train"
    problems = load_source(SourceConfig(loader=name, split=split, path=str(data))).problems[:n]
    out = []
    for p in problems:
        prog, _ = gold_program(p)
        if prog is None and (p.meta or {}).get("formula"):  # ASDiv keeps a formula such as "7+2=9"
            prog, _ = svamp_program(p.meta["formula"].split("=")[0])
        if prog is not None:
            out.append((p.question, prog))
    return out


@pytest.mark.parametrize("name", ["gsm8k", "svamp", "asdiv", "multiarith"])
def test_gold_programs_survive_the_t5like_student(t5like_dir, tmp_path, shared_data, name):
    pairs = _gold_programs(shared_data, name)
    assert len(pairs) >= 150
    plain = FaithfulTokenizer(_student(t5like_dir, tmp_path / "plain", fidelity=False).tokenizer(), Codec())
    assert sum(r is not None for r in check_texts(plain, [p for _, p in pairs])) > len(pairs) // 2  # lost without
    tok = _student(t5like_dir, tmp_path).tokenizer()
    lost = [
        p for _, p in pairs if tok.decode(tok(p, add_special_tokens=False)["input_ids"], skip_special_tokens=True) != p
    ]
    assert lost == []


def test_tokenizer_that_keeps_everything_is_left_alone():
    from transformers import ByT5Tokenizer

    from fdd.students.tokenizer import train_wordlevel

    texts = TEACHER_REPLIES + ["Question: Tom has 3 boxes.\nProgram:"]
    for tok in (ByT5Tokenizer(), train_wordlevel(texts)):
        n = len(tok)
        assert fit_codec(tok, texts).identity and len(tok) == n


def test_unrepresentable_items_counted_and_most_lost_fails(t5like_dir, tmp_path):
    from fdd.types import Item

    items = [
        Item(id=f"i{k}", question=f"Tom has {k} eggs.", answer=float(k), source="t", rationale=f"x1 = {k}\nanswer = x1")
        for k in range(6)
    ]
    st = _student(t5like_dir, tmp_path, fidelity=False)
    with pytest.raises(UnrepresentableError, match="6 of 6 training targets cannot be represented"):
        st._encode(items)
    st = _student(t5like_dir, tmp_path / "b")
    st.tokenizer([it.rationale for it in items])  # the codec is fitted on round 1's texts ...
    later = items + [Item(id="new", question="Ann has 2 pens.", answer=1.0, source="t", rationale="answer = ½ * 2")]
    data = st._encode(later)  # ... a later round's new character is dropped and counted, not mangled
    assert len(data) == 6 and data.summary["unrepresentable"] == 1
    assert data.summary["unrepresentable_by_reason"] == {"target_normalized_char": 1}


def test_overlong_items_dropped_truncated_or_refused():
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    pairs = [("Q: short", "x = 1"), ("Q: " + "long " * 20, "x = 2"), ("Q: a", "answer = " + "1 + " * 10 + "1")]
    rows, rep = encode_training_set(tok, pairs, "seq2seq", 40, 20, overlong="drop")
    assert len(rows) == 1 and rep.dropped == 2 and dict(rep.overlong) == {"prompt": 1, "target": 1}
    assert rep.target_lengths == [6, 6, 51] and rep.prompt_lengths[0] == 8
    rows, rep = encode_training_set(tok, pairs, "causal", 40, 20, overlong="truncate")
    assert len(rows) == 3 and rep.overlong_items == 2 and max(len(r["input_ids"]) for r in rows) <= 60
    with pytest.raises(OverlongError, match="item b: prompt longer"):
        encode_training_set(tok, pairs, "seq2seq", 40, 20, overlong="error", ids=["a", "b", "c"])


def test_metrics_rows_carry_fidelity_and_length_counts(tiny_cfg, tmp_path, one_thread):
    from fdd.main import run
    from fdd.runtime.io import read_jsonl

    run(tiny_cfg("rounds=2", "student.epochs=1", "student.max_target_len=24"))
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2]
    for r in rows[1:]:
        assert r["unrepresentable"] == 0 and r["unrepresentable_by_reason"] == {} and r["lossy_prompts"] >= 0
        assert r["overlong"] == r["overlong_dropped"] == sum(r["overlong_by_kind"].values()) > 0
        assert r["token_lengths"]["target"]["max"] > 24 >= r["token_lengths"]["target"]["p50"]
        assert r["trained_on"] - r["overlong_dropped"] > 0


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


@pytest.mark.slow
def test_t5like_student_learns_programs_on_the_synthetic_world(tiny_cfg, tmp_path, one_thread):
    from fdd.main import run
    from fdd.runtime.io import read_jsonl
    from fdd.sim.world import generate, render

    # The vocabulary knows the world's words (other seeds than the run's), as T5's knows English.
    world = [t for p in generate(400, seed=99, split="train") for t in render(p.meta["world"])[:2]]
    folder = build_t5like(tmp_path / "student", vocab_size=1000, d_model=128, layers=3, extra=world)
    rows = run(
        tiny_cfg(
            "student=tiny-t5",
            f"student.pretrained={folder}",
            "student.tokenizer=auto",
            "rounds=1",
            "dataset.train.n=100",
            "student.epochs=80",
            "student.lr=3e-3",
            "student.max_target_len=96",
            "student.generation.max_new_tokens=96",
            "sandbox.timeout_s=10",
        )
    )
    acc = rows[-1]["accuracy"]["synthetic"]
    preds = read_jsonl(tmp_path / "run" / "round_1" / "eval_synthetic.jsonl")
    parsed = [p for p in preds if _parses(p["output"])]
    assert acc > 0 and len(parsed) >= 0.7 * len(preds), (acc, [p["output"] for p in preds[:3]])
