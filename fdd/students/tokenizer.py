"""Student tokenizers: the pretrained one, bytes (ByT5), or a small word-level one trained on
the run's own corpus (the fast embedded default: numbers split into digits, so any number is
representable, and spaces kept attached to words so decoding restores programs exactly), and
the student's own: one of those behind its fidelity escape, saved once per run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

from fdd.students.fidelity import Codec, FaithfulTokenizer, fit_codec

log = logging.getLogger(__name__)

SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "eos_token": "</s>", "bos_token": "<s>"}
# A word with its leading space, one digit, a newline, or one other symbol with its leading space.
_PIECES = r" ?[A-Za-z_]+| ?\d|\d|\n| ?[^\sA-Za-z\d]| +"


def train_wordlevel(texts: Iterable[str], min_frequency: int = 1):
    """A ``PreTrainedTokenizerFast`` whose vocabulary is the pieces of ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECES), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIALS.values()), min_frequency=min_frequency)
    tok.train_from_iterator(list(texts) + [str(d) for d in range(10)], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)


def build_tokenizer(cfg, corpus: Optional[Iterable[str]] = None, saved: Optional[str] = None):
    """The tokenizer a student config asks for. ``saved`` (a folder) wins when it exists, so
    every round of a run shares the tokenizer of its first round."""
    from transformers import AutoTokenizer

    if saved and Path(saved, "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    if cfg.tokenizer == "byt5":
        from transformers import ByT5Tokenizer

        return ByT5Tokenizer()
    if cfg.tokenizer == "wordlevel":
        if corpus is None:
            raise ValueError("student.tokenizer=wordlevel needs the training corpus to build its vocabulary")
        tok = train_wordlevel(corpus)
        log.info("trained a word-level tokenizer: %d pieces", len(tok))
        return tok
    from fdd.runtime.modeling import load_tokenizer

    return load_tokenizer(cfg.pretrained or "", gguf_file=cfg.gguf_file)


def student_tokenizer(cfg, tokenizer_dir: str, corpus: Optional[Sequence[str]] = None) -> FaithfulTokenizer:
    """The student's tokenizer behind its fidelity escape (fdd/students/fidelity.py). The first
    call of a run builds it (``corpus``: the training texts) and saves it, codec included, to
    ``tokenizer_dir``; every later call (a later round, a resumed run, a launched rank) reads
    that folder back, so all of them share one vocabulary and one codec."""
    tok = build_tokenizer(cfg, corpus=corpus, saved=tokenizer_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    saved = Path(tokenizer_dir, "tokenizer_config.json").is_file()
    # The codec is fitted once, with the tokenizer, and read back with it afterwards.
    codec = Codec.load(tokenizer_dir) if saved else fit_codec(tok, corpus) if cfg.fidelity else Codec()
    tok = FaithfulTokenizer(tok, codec)
    if not saved:
        tmp = tokenizer_dir + ".tmp"
        tok.save_pretrained(tmp)
        os.replace(tmp, tokenizer_dir)
    return tok
