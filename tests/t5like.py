"""An offline stand-in for a ``google/flan-t5-*`` student folder.

A SentencePiece unigram model trained in seconds with T5's settings (``nmt_nfkc`` normalisation,
``remove_extra_whitespaces``, no byte fallback, pad/eos/unk = 0/1/2), loaded by
``AutoTokenizer`` as ``T5Tokenizer``, beside a small random-init ``T5ForConditionalGeneration``.
Like T5's real vocabulary it has no piece for ``{``, ``}`` or ``<`` (its corpus holds none), and
its normalisation turns newlines into spaces and collapses runs of spaces, so it loses exactly
what flan-t5 loses from a program.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Iterable, List

# Characters T5's vocabulary lacks; the corpus never shows them, so the trained model lacks them too.
MISSING = "{}<"

_ENGLISH = [
    "The answer is {n}.",
    "How many {w} does {name} have left?",
    "{name} buys {n} {w} for ${n} each.",
    "If each box holds {n} {w}, how many boxes are needed?",
    "What is the total cost in dollars?",
    "She gave {n} of them to her friend and kept the rest.",
    "Write a program that computes the answer.",
]
_CODE = [
    "def solution():",
    "    return answer",
    "x{i} = {n} * {n}",
    "answer = x{i} + {n}",
    "# the number of {w}",
    "total = sum([{n}, {n}, {n}])",
    "if x > {n}: answer = x - {n}",
    "prices = dict(a={n}, b={n})",
    "result = round(total / {n}, 2)",
    "print(answer)",
    "for i in range({n}): total += i",
    "x = (a + b) * c - d / e % f ** g == h != i >= j",
    "items = ['a', 'b'] ; s = \"text\"",
]
_WORDS = ["apples", "marbles", "pencils", "cookies", "stickers", "books", "dollars", "minutes", "cents", "eggs"]
_NAMES = ["Tom", "Ana", "Lee", "Sara", "Omar", "Mia", "Ravi", "Zoe"]


def corpus(n: int = 3000, seed: int = 0, extra: Iterable[str] = ()) -> List[str]:
    """Sentences of English word problems and Python-ish code, without ``{``, ``}``, ``<``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.choice(_ENGLISH + _CODE)
        out.append(t.format(n=rng.randint(0, 999), w=rng.choice(_WORDS), name=rng.choice(_NAMES), i=rng.randint(1, 9)))
    out += [t for t in extra]
    out += [str(d) for d in range(100)] + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    out += list("+-*/%=()[]:;,.'\"!?$#&|^~@_`\\>")  # every ASCII symbol except the MISSING ones
    return [t.translate({ord(c): " " for c in MISSING}) for t in out]


def train_spm(texts: Iterable[str], vocab_size: int = 600) -> bytes:
    """A serialized SentencePiece unigram model with T5's normalisation and special ids."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=buf,
        model_type="unigram",
        vocab_size=vocab_size,
        normalization_rule_name="nmt_nfkc",
        remove_extra_whitespaces=True,
        byte_fallback=False,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        split_digits=True,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def build_t5like(
    out_dir,
    vocab_size: int = 600,
    d_model: int = 64,
    layers: int = 2,
    seed: int = 0,
    extra: Iterable[str] = (),
    tie: bool = False,
) -> Path:
    """Write a T5-like student folder (tokenizer + random-init model) to ``out_dir``. ``extra``
    texts join the tokenizer's corpus (as T5's vocabulary knows English words, not only letters).
    flan-t5 (T5 v1.1) unties its output layer; ``tie=True`` ties it, which scales the decoder
    output by ``d_model ** -0.5`` and trains faster from a random init."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spiece.model").write_bytes(train_spm(corpus(seed=seed, extra=extra), vocab_size))
    (out / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 512})
    )
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.save_pretrained(str(out))  # adds tokenizer.json, as a Hub flan-t5 folder has
    conf = T5Config(
        vocab_size=len(tok),
        d_model=d_model,
        d_ff=2 * d_model,
        d_kv=16,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=4,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    T5ForConditionalGeneration(conf).save_pretrained(str(out))
    return out
