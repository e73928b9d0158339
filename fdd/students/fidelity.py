"""Tokenizer fidelity: every text a student trains on must come back from ``decode(encode(.))``.

Some tokenizers lose characters a program needs. T5's SentencePiece model turns newlines into
spaces, collapses runs of spaces (indentation) and has no piece for ``{``, ``}`` or ``<``. The
fix is a reversible escape (a ``Codec``): each lost character, and every whitespace the
tokenizer would not keep, becomes one private-use character registered as an added token
(``normalized=False``, so no normaliser touches it). The student trains and generates through
``FaithfulTokenizer``, which escapes before encoding and restores after decoding, so the text
that is executed or parsed is the text the teacher wrote. The codec is saved as
``fidelity.json`` beside the tokenizer files (which hold the added tokens), so a reloaded
student decodes the same way. Texts that still do not survive are reported per reason.
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

log = logging.getLogger(__name__)

CODEC_FILE = "fidelity.json"
_BASE = 0xE000  # Unicode private-use area: no real text of ours uses it
_RESERVED = re.compile("[\ue000-\uf8ff]")
SPACE_RUNS = (8, 4, 2, 1)  # a run of n escaped spaces is written greedily with these
_WS_NAMES = {"\n": "new line", "\t": "tab", "\r": "carriage return", "\x0b": "vertical tab", "\x0c": "form feed"}
MAX_MARKERS = 128  # more lost characters than this means the tokenizer is not fit for the data


class UnrepresentableError(ValueError):
    """Most training texts cannot survive the student's tokenizer, even with the escape."""


@dataclass
class Codec:
    """Reversible escape of what a tokenizer loses. ``table`` maps an original piece (a lost
    character, a whitespace character, or a run of spaces) to its marker character. With
    ``spaces`` on, every space except a single one between two kept characters is escaped
    (the tokenizer collapses or drops the rest); ``strip_after_marker`` removes the space
    the tokenizer's decoder puts before the text that follows a marker (SentencePiece's
    ``▁`` prefix)."""

    table: Dict[str, str] = field(default_factory=dict)
    spaces: bool = False
    strip_after_marker: bool = False

    @property
    def identity(self) -> bool:
        return not self.table

    def _chars(self) -> Dict[str, str]:
        return {k: v for k, v in self.table.items() if set(k) != {" "}}

    def escape(self, text: str) -> str:
        if self.identity:
            return text
        chars = self._chars()
        out = "".join(chars.get(c, c) for c in text)
        if not self.spaces:
            return out
        markers = set(self.table.values())

        def spaces(m: re.Match) -> str:
            a, b = m.start(), m.end()
            left = out[a - 1] if a > 0 else ""
            right = out[b] if b < len(out) else ""
            if b - a == 1 and left and right and left not in markers and right not in markers:
                return " "  # a single space between two kept characters survives as is
            n, pieces = b - a, []
            for size in SPACE_RUNS:
                k, n = divmod(n, size)
                pieces.append(self.table[" " * size] * k)
            return "".join(pieces)

        return re.sub(" +", spaces, out)

    def restore(self, text: str) -> str:
        if self.identity:
            return text
        inverse = {v: k for k, v in self.table.items()}
        if self.strip_after_marker:
            text = re.sub("([" + "".join(sorted(inverse)) + "]) ", r"\1", text)
        return "".join(inverse.get(c, c) for c in text)

    def save(self, folder) -> None:
        if self.identity:
            return
        Path(folder, CODEC_FILE).write_text(
            json.dumps(
                {"table": self.table, "spaces": self.spaces, "strip_after_marker": self.strip_after_marker},
                ensure_ascii=True,
                indent=1,
            ),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, folder) -> Codec:
        path = Path(folder, CODEC_FILE)
        if not path.is_file():
            return cls()
        d = json.loads(path.read_text(encoding="utf-8"))
        return cls(dict(d["table"]), bool(d["spaces"]), bool(d["strip_after_marker"]))

    def descriptions(self) -> Dict[str, str]:
        """Marker -> words describing it, to initialise its embedding from their pieces."""
        out = {}
        for piece, marker in self.table.items():
            if set(piece) == {" "}:
                out[marker] = f"{len(piece)} space" + ("s" if len(piece) > 1 else "")
            elif piece in _WS_NAMES:
                out[marker] = _WS_NAMES[piece]
            else:
                out[marker] = unicodedata.name(piece, "symbol").lower()
        return out


def _roundtrip(tok, text: str) -> str:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def fit_codec(tok, corpus: Optional[Iterable[str]] = None) -> Codec:
    """Probe ``tok`` for what it loses and add one marker token per lost piece. The probe covers
    the characters of the ``corpus`` texts that do not survive (without a corpus: printable
    ASCII, newline and tab), so a tokenizer that already keeps the run's texts is left exactly
    as it is. Mutates ``tok`` (added tokens)."""
    from tokenizers import AddedToken

    if corpus is not None:
        # Only what the run's texts need: a tokenizer that keeps them all stays as it is.
        failing = [t for t in dict.fromkeys(corpus) if _roundtrip(tok, t) != t]
        if not failing:
            return Codec()
        chars = set("".join(failing))
    else:
        chars = set(string.printable) - set("\x0b\x0c")
    chars -= set(_RESERVED.findall("".join(chars)))
    ws = sorted(c for c in chars if c.isspace() and c != " ")
    probes = [f"a{c}b" for c in ws] + (["a  b", "a \nb", " a"] if " " in chars else [])
    spaces = any(_roundtrip(tok, p) != p for p in probes)
    lost = sorted(c for c in chars if not c.isspace() and _roundtrip(tok, f"a{c}a") != f"a{c}a")
    pieces = ([*ws, *(" " * n for n in SPACE_RUNS)] if spaces else []) + lost
    if len(pieces) > MAX_MARKERS:
        log.warning("the tokenizer loses %d characters; escaping only the first %d", len(pieces), MAX_MARKERS)
        pieces = pieces[:MAX_MARKERS]
    if not pieces:
        return Codec()
    table = {p: chr(_BASE + i) for i, p in enumerate(pieces)}
    tok.add_tokens([AddedToken(m, normalized=False, special=False) for m in table.values()])
    m = next(iter(table.values()))
    codec = Codec(table, spaces=spaces, strip_after_marker=_roundtrip(tok, m + "x") == m + " x")
    log.info("tokenizer fidelity: %d marker tokens added for %s", len(table), ", ".join(repr(p) for p in pieces))
    return codec


class FaithfulTokenizer:
    """A tokenizer seen through its codec: ``__call__``/``encode`` escape, ``decode`` restores.
    Everything else is the wrapped tokenizer's (``pad_token_id``, ``len``, ...)."""

    def __init__(self, tok, codec: Codec) -> None:
        self.__dict__.update(tok=tok, codec=codec)

    def __getattr__(self, name):
        if name in ("tok", "codec") or name.startswith("__"):  # unpickling: before __dict__ is set
            raise AttributeError(name)
        return getattr(self.tok, name)

    def __setattr__(self, name, value) -> None:
        setattr(self.tok, name, value)

    def __len__(self) -> int:
        return len(self.tok)

    def _esc(self, text):
        if isinstance(text, str):
            return self.codec.escape(text)
        return [self.codec.escape(t) for t in text]

    def __call__(self, text, *args, **kw):
        return self.tok(self._esc(text), *args, **kw)

    def encode(self, text, *args, **kw):
        return self.tok.encode(self._esc(text), *args, **kw)

    def decode(self, ids, **kw) -> str:
        kw.setdefault("clean_up_tokenization_spaces", False)  # "a ." must stay "a ."
        return self.codec.restore(self.tok.decode(ids, **kw))

    def batch_decode(self, seqs, **kw) -> List[str]:
        return [self.decode(s, **kw) for s in seqs]

    def restore(self, text: str) -> str:
        return self.codec.restore(text)

    def marker_ids(self) -> Dict[int, str]:
        """Added marker token id -> its description."""
        desc = self.codec.descriptions()
        return {self.tok.convert_tokens_to_ids(m): d for m, d in desc.items()}

    def save_pretrained(self, folder, **kw):
        out = self.tok.save_pretrained(folder, **kw)
        self.codec.save(folder)
        return out


def why_lost(tok: FaithfulTokenizer, text: str) -> Optional[str]:
    """None when ``text`` survives ``tok``; otherwise the reason it does not."""
    if tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True) == text:
        return None
    if not tok.codec.identity and _RESERVED.search(text):
        return "reserved_char"
    for c in dict.fromkeys(text):
        if c.isspace() and c not in tok.codec.table and c != " ":
            probe = f"a{c}b"
        elif not c.isspace():
            probe = f"a{c}a"
        else:
            continue
        if tok.decode(tok(probe, add_special_tokens=False)["input_ids"], skip_special_tokens=True) != probe:
            if unicodedata.normalize("NFKC", c) != c:
                return "normalized_char"
            if tok.unk_token_id is not None and tok.unk_token_id in tok.tok(c, add_special_tokens=False)["input_ids"]:
                return "unknown_char"
            return "lost_char"
    if tok.unk_token_id is not None and tok.unk_token_id in tok(text, add_special_tokens=False)["input_ids"]:
        return "unknown_word"
    return "mismatch"


def check_texts(tok, texts: Sequence[str]) -> List[Optional[str]]:
    """The reason each text does not survive ``tok`` (None where it does)."""
    if not isinstance(tok, FaithfulTokenizer):
        tok = FaithfulTokenizer(tok, Codec())
    return [why_lost(tok, t) for t in texts]


def init_marker_embeddings(model, tok: FaithfulTokenizer) -> int:
    """Each marker row (input and, when untied, output embeddings) = mean of the rows of its
    description's pieces (e.g. "left curly bracket"), so new tokens start near related ones
    rather than at random. Returns the number of rows set."""
    import torch

    ids = tok.marker_ids()
    if not ids:
        return 0
    mats = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != mats[0].data_ptr():
        mats.append(out.weight)
    marker_set = set(ids)
    with torch.no_grad():
        for w in mats:
            known = [i for i in range(min(len(tok), w.shape[0])) if i not in marker_set]
            fallback = w[known].mean(0)
            for mid, desc in ids.items():
                pieces = [
                    i
                    for i in tok.tok(desc, add_special_tokens=False)["input_ids"]
                    if i != tok.unk_token_id and i not in marker_set and i < w.shape[0]
                ]
                w[mid] = w[pieces].mean(0) if pieces else fallback
    return len(ids)


def percentiles(values: Sequence[int]) -> Dict[str, int]:
    """p50 / p95 / max of token lengths (nearest-rank), 0 for an empty list."""
    if not values:
        return {"p50": 0, "p95": 0, "max": 0}
    v = sorted(values)

    def rank(q: float) -> int:
        return v[max(0, math.ceil(q * len(v)) - 1)]

    return {"p50": rank(0.50), "p95": rank(0.95), "max": v[-1]}


def count(reasons: Iterable[Optional[str]]) -> Dict[str, int]:
    return dict(Counter(r for r in reasons if r))
