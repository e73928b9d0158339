"""The student's loss covers the rationale tokens only (``fdd.students.data``)."""

from __future__ import annotations

from fdd.students.data import IGNORE, Collator, encode_example


class WordTokenizer:
    """One id per whitespace word (a newline is a word of its own); eos is 1."""

    eos_token_id = 1

    def __init__(self):
        self.vocab = {}

    def __call__(self, text, add_special_tokens=False):
        toks = text.replace("\n", " \n ").split(" ")
        return {"input_ids": [self.vocab.setdefault(t, len(self.vocab) + 2) for t in toks if t]}


def test_causal_labels_mask_the_prompt_and_keep_the_rationale_and_eos():
    tok = WordTokenizer()
    ex = encode_example(tok, "Q: two plus two", "answer = 4", "causal", max_source=64, max_target=64)
    prompt = tok("Q: two plus two")["input_ids"]
    target = tok("\nanswer = 4")["input_ids"] + [1]
    assert ex["input_ids"] == prompt + target
    assert ex["labels"] == [IGNORE] * len(prompt) + target
    assert len(ex["labels"]) == len(ex["input_ids"])


def test_seq2seq_labels_are_the_target_alone():
    tok = WordTokenizer()
    ex = encode_example(tok, "Q: two plus two", "answer = 4", "seq2seq", max_source=64, max_target=64)
    assert ex["input_ids"] == tok("Q: two plus two")["input_ids"]
    assert ex["labels"] == tok("answer = 4")["input_ids"] + [1]


def test_truncation_keeps_the_end_of_the_prompt_and_always_ends_with_eos():
    tok = WordTokenizer()
    ex = encode_example(tok, "a b c d e", "w x y z", "seq2seq", max_source=2, max_target=3)
    assert ex["input_ids"] == tok("d e")["input_ids"]
    assert ex["labels"] == tok("w x")["input_ids"] + [1] and len(ex["labels"]) == 3
    assert encode_example(tok, "a b c", None, "causal", 2, 3) == {"input_ids": tok("b c")["input_ids"]}


def test_collator_pads_inputs_with_pad_and_labels_with_ignore():
    rows = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = Collator(pad_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert "labels" not in Collator(pad_id=0)([{"input_ids": [3]}])
