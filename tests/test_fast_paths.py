"""The speed paths compute what the plain ones do: packing (same loss, positions restart per
sequence, no attention or label across sequences), padding without a mask and the label-only
head (same loss), fast dropout (same distribution, eval unchanged), and the lean greedy decoder
(the same tokens as ``generate``, with and without a stop rule, with rows finishing early)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from fdd.students.data import IGNORE, CausalNoMaskCollator, Collator, PackingCollator, encode_example
from fdd.students.decode import greedy_decode, token_ids_containing
from fdd.students.model import build_model
from fdd.students.module import StudentModule
from tests.conftest import compose_cfg

pytestmark = pytest.mark.usefixtures("one_thread")


def _tok():
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer()


def _model(tmp_path, student: str, tok, seed: int = 0, spread: bool = False):
    """A tiny random student; ``spread``: weights redrawn wider, so that greedy decoding varies
    from row to row and step to step (a fresh tiny T5 repeats one token)."""
    cfg = compose_cfg([f"student={student}", "logger=none"], tmp_path / student)
    model = build_model(OmegaConf.to_object(cfg.student), tok, seed=seed).eval()
    return _spread(model, seed) if spread else model


def _spread(model, seed: int):
    """``model`` with its weight matrices redrawn wider (seeded)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


PAIRS = [
    ("Q: 3 apples and 4 more?\n", "x1 = 3 + 4\nanswer = x1"),
    ("Q: a long question about 12 pears, 5 eaten, how many left now?\n", "answer = 12 - 5"),
    ("Q: 2*2?\n", "answer = 2 * 2"),
    ("Q: Tom has 10 coins and gives half away. How many?\n", "x1 = 10 / 2\nx2 = 10 - x1\nanswer = x2"),
    ("Q: 7?\n", "answer = 7"),
]


def _rows(tok, arch="causal"):
    return [encode_example(tok, p, t, arch, 256, 128) for p, t in PAIRS]


def _padded_loss(model, rows, pad):
    with torch.no_grad():
        return float(model(**Collator(pad)(rows)).loss)


def test_packed_batch_gives_the_padded_loss(tmp_path):
    tok = _tok()
    model = _model(tmp_path, "tiny-llama", tok)
    rows = _rows(tok)
    module = StudentModule(model, fast=True)
    assert module.head_split is not None  # the label-only head is what is tested here
    for cap in (64, 128, 10_000):  # several rows, and everything in one row
        batch = PackingCollator(tok.pad_token_id, cap)(rows)
        assert "attention_mask" not in batch
        with torch.no_grad():
            packed = float(module.loss(batch))
        assert packed == pytest.approx(_padded_loss(model, rows, tok.pad_token_id), rel=1e-5)
        # the same label tokens, never one at a sequence's first position
        n_labels = sum(sum(1 for x in r["labels"][1:] if x != IGNORE) for r in rows)
        assert int((batch["labels"] != IGNORE).sum()) == n_labels


def test_packed_positions_restart_and_labels_stay_inside(tmp_path):
    tok = _tok()
    rows = _rows(tok)
    col = PackingCollator(tok.pad_token_id, 10_000)
    batch = col(rows)
    assert batch["input_ids"].shape[0] == 1
    pos, labels = batch["position_ids"][0].tolist(), batch["labels"][0].tolist()
    starts = [k for k, p in enumerate(pos) if p == 0]
    order = col.rows(rows)[0]
    assert len(starts) == len(rows) + (1 if sum(len(r["input_ids"]) for r in rows) < len(pos) else 0)
    at = 0
    for i in order:
        n = len(rows[i]["input_ids"])
        assert pos[at : at + n] == list(range(n))
        assert labels[at] == IGNORE  # no label crosses from the previous sequence
        assert labels[at + 1 : at + n] == rows[i]["labels"][1:]
        at += n
    assert all(x == IGNORE for x in labels[at:])


def test_packed_rows_keep_attention_within_each_sequence(tmp_path):
    tok = _tok()
    model = _model(tmp_path, "tiny-llama", tok)
    rows = _rows(tok)
    col = PackingCollator(tok.pad_token_id, 10_000)
    order = col.rows(rows)[0]
    a, b = order[0], order[1]  # A comes first in the row, B right after it
    changed = [dict(r) for r in rows]
    changed[a] = {k: list(v) for k, v in rows[a].items()}
    changed[b] = {"input_ids": [(x + 7) % 250 + 3 for x in rows[b]["input_ids"]], "labels": rows[b]["labels"]}
    with torch.no_grad():
        x = model(**{k: v for k, v in col(rows).items() if k != "labels"}, use_cache=False).logits[0]
        y = model(**{k: v for k, v in col(changed).items() if k != "labels"}, use_cache=False).logits[0]
    n_a, n_b = len(rows[a]["input_ids"]), len(rows[b]["input_ids"])
    assert torch.equal(x[:n_a], y[:n_a])  # A never sees B (which follows it)
    assert not torch.allclose(x[n_a : n_a + n_b], y[n_a : n_a + n_b])  # B's own change shows
    # and B's logits are those of B alone: attention and positions start over at B
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([changed[b]["input_ids"]])).logits[0]
    torch.testing.assert_close(y[n_a : n_a + n_b], alone, rtol=1e-4, atol=1e-5)


def test_no_mask_and_label_only_head_give_the_padded_loss(tmp_path):
    tok = _tok()
    model = _model(tmp_path, "tiny-llama", tok)
    rows = _rows(tok)
    batch = CausalNoMaskCollator(tok.pad_token_id)(rows)
    assert "attention_mask" not in batch
    with torch.no_grad():
        plain = float(model(**batch).loss)
        fast = float(StudentModule(model, fast=True).loss(batch))
    ref = _padded_loss(model, rows, tok.pad_token_id)
    assert plain == pytest.approx(ref, rel=1e-5)
    assert fast == pytest.approx(ref, rel=1e-5)


def test_training_collator_follows_the_options(tmp_path):
    from fdd.students.data import training_collator

    cfg = lambda *o: OmegaConf.to_object(compose_cfg(["logger=none", *o], tmp_path).student)  # noqa: E731
    assert type(training_collator(cfg("student=tiny-llama"), 0)) is Collator  # the default is unchanged
    assert type(training_collator(cfg("student=tiny-llama", "student.fast_train=true"), 0)) is CausalNoMaskCollator
    packing = training_collator(cfg("student=tiny-llama", "student.packing=true", "student.pack_max_tokens=300"), 0)
    assert isinstance(packing, PackingCollator) and packing.max_tokens == 300
    assert type(training_collator(cfg("student=tiny-t5", "student.packing=true"), 0)) is Collator


def test_fast_dropout_same_eval_and_keep_rate(tmp_path):
    from fdd.students.fastdrop import FastDropout, restore_attention, use_fast_dropout

    tok = _tok()
    model = _model(tmp_path, "tiny-t5", tok)
    rows = _rows(tok, "seq2seq")
    before = _padded_loss(model, rows, tok.pad_token_id)
    assert use_fast_dropout(model) > 0
    assert _padded_loss(model, rows, tok.pad_token_id) == pytest.approx(before, rel=1e-6)  # eval: no dropout
    restore_attention(model)
    assert model.config._attn_implementation == "sdpa"
    drop = FastDropout(0.25).train()
    torch.manual_seed(0)
    y = drop(torch.ones(200_000))
    assert torch.all((y == 0) | torch.isclose(y, torch.tensor(1 / 0.75)))
    assert float((y > 0).float().mean()) == pytest.approx(0.75, abs=0.01)
    torch.manual_seed(0)
    assert torch.equal(drop(torch.ones(200_000)), y)  # seeded by torch's generator
    x = torch.randn(1000, requires_grad=True)
    out = drop(x)
    out.backward(torch.ones_like(out))
    kept = out != 0
    assert torch.equal(x.grad, kept.float() / 0.75) and torch.allclose(out[kept], x[kept] / 0.75)


# -- the lean greedy decoder ------------------------------------------------------------------


def _batch(tok, prompts, arch):
    enc = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    n = max(map(len, enc))
    ids = torch.full((len(enc), n), tok.pad_token_id)
    mask = torch.zeros((len(enc), n), dtype=torch.long)
    for r, e in enumerate(enc):
        sl = slice(n - len(e), n) if arch == "causal" else slice(0, len(e))
        ids[r, sl], mask[r, sl] = torch.tensor(e), 1
    return ids, mask


PROMPTS = [p for p, _ in PAIRS] + ["Q: what is 1 + 1 + 1?\n", "Q:\n", "Q: 100 birds fly, 30 land. Left?\n"]


def _greedy(model, ids, mask, mnt, eos, pad, **kw):
    """``model.generate``, greedy, on a padded batch (``kw``: more generate arguments)."""
    with torch.inference_mode():
        return model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=mnt,
            pad_token_id=pad,
            eos_token_id=eos,
            **kw,
        )


def _hf(model, ids, mask, mnt, eos, pad, stop=None):
    from transformers import StoppingCriteriaList

    kw = {"stopping_criteria": StoppingCriteriaList([stop])} if stop else {}
    g = _greedy(model, ids, mask, mnt, eos, pad, **kw)
    g = g[:, ids.shape[1] :] if not model.config.is_encoder_decoder else g[:, 1:]
    return _norm(g.tolist(), eos, pad)


def _norm(rows, eos, pad):
    """Rows cut after EOS, trailing pads dropped (generate pads the rows that finished first)."""
    out = []
    for row in rows:
        row = list(row)
        if eos in row:
            row = row[: row.index(eos) + 1]
        while row and row[-1] == pad and pad != eos:
            row.pop()
        out.append(row)
    return out


@pytest.mark.parametrize("student,arch", [("tiny-llama", "causal"), ("tiny-t5", "seq2seq")])
def test_greedy_decode_gives_generate_tokens(tmp_path, student, arch):
    tok = _tok()
    model = _model(tmp_path, student, tok, seed=1, spread=True)
    ids, mask = _batch(tok, PROMPTS, arch)
    pad = tok.pad_token_id
    # the real EOS, and a frequent token used as EOS so that rows finish at different steps
    free = _hf(model, ids, mask, 40, tok.eos_token_id, pad)
    counts = torch.bincount(torch.tensor([t for r in free for t in r[5:]], dtype=torch.long), minlength=len(tok))
    counts[tok.eos_token_id] = 0
    for eos in (tok.eos_token_id, int(counts.argmax())):
        want = _hf(model, ids, mask, 40, eos, pad)
        got = greedy_decode(model, ids, mask, 40, eos)
        assert _norm(got, eos, pad) == want
        if eos != tok.eos_token_id:
            assert len({len(r) for r in got}) > 1  # rows did finish early and leave the batch


def _t5(tok, seed: int, attn: str = "sdpa", **variant):
    """A tiny T5 with spread weights; ``variant``: config fields (e.g. flan-t5's gated-gelu and
    untied head)."""
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(
        vocab_size=len(tok),
        d_model=64,
        d_ff=128,
        d_kv=16,
        num_layers=2,
        num_heads=4,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
        **variant,
    )
    return _spread(T5ForConditionalGeneration._from_config(cfg, attn_implementation=attn).eval(), seed)


@pytest.mark.parametrize(
    "variant",
    [{}, {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}],
    ids=["t5", "flan-t5-style"],
)
def test_t5_runner_gives_generate_tokens(variant):
    """The block-by-block T5 (biases merged once per batch) gives generate's tokens, padded or
    not, with rows finishing at different steps; an eager-attention T5 takes the plain runner."""
    from fdd.students.decode import _runner, _Seq2SeqRunner, _T5Runner

    tok = _tok()
    model = _t5(tok, seed=3, **variant)
    padded = _batch(tok, PROMPTS, "seq2seq")
    same_length = _batch(tok, ["Q: 12 + 30?\n", "Q: 40 - 17?\n", "Q: 80 * 99?\n"], "seq2seq")
    assert bool(padded[1].all()) is False and bool(same_length[1].all()) is True
    assert isinstance(_runner(model, *padded, 2), _T5Runner)
    for ids, mask in (padded, same_length):
        with torch.inference_mode():  # the first step's logits are the model's, bit for bit
            start = torch.full((ids.shape[0], 1), model.config.decoder_start_token_id)
            want_logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).logits
            assert torch.equal(_runner(model, ids, mask, 2).logits, want_logits)
        free = _hf(model, ids, mask, 30, tok.eos_token_id, tok.pad_token_id)
        counts = torch.bincount(torch.tensor([t for r in free for t in r[3:]]), minlength=len(tok))
        counts[tok.eos_token_id] = 0
        for eos in (tok.eos_token_id, int(counts.argmax())):
            want = _hf(model, ids, mask, 30, eos, tok.pad_token_id)
            assert _norm(greedy_decode(model, ids, mask, 30, eos), eos, tok.pad_token_id) == want
    eager = _t5(tok, seed=3, attn="eager", **variant)
    assert isinstance(_runner(eager, *padded, 2), _Seq2SeqRunner)
    want = _hf(eager, *padded, 30, tok.eos_token_id, tok.pad_token_id)
    assert _norm(greedy_decode(eager, *padded, 30, tok.eos_token_id), tok.eos_token_id, tok.pad_token_id) == want


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_t5_runner_in_half_precision(tmp_path, monkeypatch, dtype):
    """Loaded in half precision (T5 keeps its ``wo`` layers in fp32, so the residual stream is
    fp32 in places): generate's tokens and first logits, and every mask sdpa gets is in its
    queries' dtype (CUDA kernels reject, or misread, a mask of another dtype)."""
    from transformers import T5ForConditionalGeneration

    from fdd.students.decode import _runner, _T5Runner

    tok = _tok()
    _t5(tok, seed=3, feed_forward_proj="gated-gelu", tie_word_embeddings=False).save_pretrained(tmp_path / "m")
    model = T5ForConditionalGeneration.from_pretrained(tmp_path / "m", dtype=dtype).eval()
    if dtype == torch.float16:  # transformers keeps T5's wo in fp32 for fp16 only
        assert model.decoder.block[0].layer[-1].DenseReluDense.wo.weight.dtype == torch.float32
    ids, mask = _batch(tok, PROMPTS, "seq2seq")
    real = torch.nn.functional.scaled_dot_product_attention
    seen = []

    def spy(q, k, v, attn_mask=None, **kw):
        seen.append((q.dtype, None if attn_mask is None else attn_mask.dtype))
        return real(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.inference_mode():  # as greedy_decode runs it (grad mode may pick other kernels)
        runner = _runner(model, ids, mask, 2)
        start = torch.full((ids.shape[0], 1), model.config.decoder_start_token_id)
        want_logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).logits
    assert isinstance(runner, _T5Runner) and seen
    assert all(m is None or m == q for q, m in seen), set(seen)
    assert torch.equal(runner.logits, want_logits)
    want = _hf(model, ids, mask, 20, tok.eos_token_id, tok.pad_token_id)
    assert _norm(greedy_decode(model, ids, mask, 20, tok.eos_token_id), tok.eos_token_id, tok.pad_token_id) == want


def test_students_t5_takes_the_t5_runner(tmp_path):
    """The tiny-t5 student as build_model makes it runs block by block (not silently the plain path)."""
    from fdd.students.decode import _runner, _T5Runner

    tok = _tok()
    model = _model(tmp_path, "tiny-t5", tok)
    assert isinstance(_runner(model, *_batch(tok, PROMPTS[:2], "seq2seq"), 2), _T5Runner)


class _TextStop:
    """A StoppingCriteria ending a row once ``rule`` fires on its generated text."""

    def __init__(self, tok, rule, prompt_len):
        self.tok, self.rule, self.n, self.done = tok, rule, prompt_len, None

    def __call__(self, input_ids, scores=None, **kw):
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        for r in range(input_ids.shape[0]):
            if not self.done[r] and input_ids.shape[1] > self.n:
                if self.rule(self.tok.decode(input_ids[r, self.n :], skip_special_tokens=True)) is not None:
                    self.done[r] = True
        return self.done.clone()


@pytest.mark.parametrize("student,arch", [("tiny-llama", "causal"), ("tiny-t5", "seq2seq")])
def test_greedy_decode_with_a_stop_rule(tmp_path, student, arch):
    tok = _tok()
    model = _model(tmp_path, student, tok, seed=1, spread=True)
    ids, mask = _batch(tok, PROMPTS, arch)
    free = _hf(model, ids, mask, 40, tok.eos_token_id, tok.pad_token_id)
    # a rule on the text: stop once the row's text holds its 6th distinct character
    text_of = [tok.decode(r, skip_special_tokens=True) for r in free]
    common = max(set("".join(text_of)), key="".join(text_of).count)

    def rule(text):
        k = text.find(common, 1)
        return None if k < 0 else k + 1

    stop = _TextStop(tok, rule, ids.shape[1] if arch == "causal" else 1)
    want = _hf(model, ids, mask, 40, tok.eos_token_id, tok.pad_token_id, stop=stop)
    got = greedy_decode(model, ids, mask, 40, tok.eos_token_id, tokenizer=tok, stop_rule=rule)
    assert _norm(got, tok.eos_token_id, tok.pad_token_id) == want
    assert len({len(r) for r in got}) > 1
    # checking only after given tokens: the same where the rule can only fire on them
    ids_with = token_ids_containing(tok, common)
    again = greedy_decode(
        model, ids, mask, 40, tok.eos_token_id, tokenizer=tok, stop_rule=rule, stop_after_ids=ids_with
    )
    assert again == got


def test_a_row_left_nearly_alone_keeps_generates_logits_bit_for_bit(tmp_path, monkeypatch):
    """Rows leave the batch as they finish, but the batch keeps ``MIN_ROWS`` rows: a matrix
    product over 1-3 rows rounds differently from the same rows in a full batch, and the last
    live rows would get logits that differ from generate's (seen here before the rule). The rule
    is in greedy_decode, the same for every runner; a causal student shows it (the tiny T5's rows
    that decode to no text never meet the stop rule below)."""
    student, arch = "tiny-llama", "causal"
    import torch.nn.functional as F

    import fdd.students.decode as decode

    x, w = torch.randn(16, 64, generator=torch.Generator().manual_seed(0)), torch.randn(64, 64)
    if not torch.equal(F.linear(x[: decode.MIN_ROWS], w), F.linear(x, w)[: decode.MIN_ROWS]):
        pytest.skip("this BLAS rounds a product over MIN_ROWS rows differently from a larger batch")
    tok = _tok()
    model = _model(tmp_path, student, tok, seed=1, spread=True)
    ids, mask = _batch(tok, PROMPTS * 2, arch)  # 16 rows: row 1 and its twin 9 survive below
    g = _greedy(model, ids, mask, 30, None, tok.pad_token_id, output_logits=True, return_dict_in_generate=True)
    new = g.sequences[:, ids.shape[1] :]
    want = tok.decode(new[1], skip_special_tokens=True)

    def rule(text):  # every row ends after 4 characters unless it is row 1's text so far
        return None if len(text) < 4 or want.startswith(text) else len(text)

    seen = []
    runner = decode._CausalRunner
    step = runner.step

    def spy(self, tokens):
        logits = step(self, tokens)
        seen.append(logits[:, -1].clone())
        return logits

    monkeypatch.setattr(runner, "step", spy)
    got = greedy_decode(model, ids, mask, 30, None, tokenizer=tok, stop_rule=rule)
    assert got[1] == new[1].tolist()
    assert min(s.shape[0] for s in seen) == decode.MIN_ROWS  # rows stopped early: the batch shrank to the floor
    for t, logits in enumerate(seen, start=1):  # row 1's logits at every step, bit for bit
        assert any(torch.equal(row, g.logits[t][1]) for row in logits), f"step {t}"


def test_newline_ids_are_read_per_tokenizer_object():
    """The newline ids are cached per tokenizer object and leave with it: a key by ``id()``
    would hand a later tokenizer at the same address the first one's ids."""
    import gc

    from fdd.students.generate import _NEWLINE_IDS, newline_ids

    gc.collect()  # tokenizers that earlier tests left in reference cycles leave now, not below
    tok = _tok()
    assert newline_ids(tok) == token_ids_containing(tok, "\n") and newline_ids(tok) is newline_ids(tok)
    before = len(_NEWLINE_IDS)
    del tok
    gc.collect()
    assert len(_NEWLINE_IDS) == before - 1


def test_generate_batches_greedy_matches_generate_texts(tmp_path):
    """The student's path (generate_batches) gives generate's texts, PoT stop included."""
    from fdd.reasoning.formats import answer_line_end
    from fdd.students.generate import AnswerLineStop, cut_at_stop, encode_prompts, generate_batches, plan_batches

    tok = _tok()
    model = _model(tmp_path, "tiny-llama", tok, seed=2, spread=True)
    enc = encode_prompts(tok, PROMPTS, "causal", 256)
    batches = plan_batches([len(e) for e in enc], 3)
    for stop in (False, True):
        rule = answer_line_end if stop else None
        got = generate_batches(model, tok, enc, batches, "causal", max_new_tokens=24, stop_rule=rule)
        for idx in batches:
            ids, mask = _batch(tok, [PROMPTS[i] for i in idx], "causal")
            crit = AnswerLineStop(tok, ids.shape[1], rule) if stop else None
            want = _hf(model, ids, mask, 24, tok.eos_token_id, tok.pad_token_id, stop=crit)
            for row, i in enumerate(idx):
                text = tok.decode(want[row], skip_special_tokens=True)
                assert got[i] == cut_at_stop(text, rule).strip()
