"""A lean greedy decoding loop over a Hugging Face model's forward and its KV cache.

It gives the tokens ``model.generate(do_sample=False, num_beams=1)`` gives for the same padded
batch, with less work:

* finished rows (EOS, or the caller's stop rule firing) leave the batch once they are an eighth
  of it: their cache rows, mask rows (and for seq2seq, encoder states) are dropped
  (``Cache.batch_select_indices``), where ``generate`` computes them to the end of the batch;
* the self-attention cache is allocated once per batch and written in place, where
  ``DynamicCache`` concatenates (copies) the whole cache at every step;
* causal steps get their one-query mask from here instead of transformers rebuilding it;
* a T5 on sdpa runs block by block with its attention biases merged with the padding mask once
  per batch (``_T5Runner``), where ``T5Stack`` rebuilds that batch x heads x queries x keys
  tensor in every layer of every forward;
* no logits processors, stopping-criteria objects or per-step input preparation: one forward,
  one argmax and one host read of the new tokens per step.

A row's computation is the one ``generate`` does for it (same kernels on the same values), so
the greedy tokens are the same; tests/test_fast_paths.py checks it for causal and seq2seq
students, rows ending early and a stop rule. A batch shrinks to ``MIN_ROWS`` rows at the least:
BLAS takes other kernels for a product over very few rows, whose rounding would differ.

A runner per kind of model holds the prefill, one step and the removal of finished rows:
causal batches are left-padded (``position_ids`` from the mask, as ``generate`` computes them);
seq2seq batches run the encoder once and the decoder from ``decoder_start_token_id``. Sampling is
not done here: callers keep ``generate`` for it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Collection, List, Optional

import torch


def token_ids_containing(tokenizer, piece: str) -> List[int]:
    """Ids of the vocabulary entries whose decoded text contains ``piece``."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return [i for i, t in enumerate(texts) if piece in t]


def _grow_layer_class():
    from transformers.cache_utils import DynamicLayer

    class GrowLayer(DynamicLayer):
        """A full-attention cache layer in a buffer allocated once for the whole decode: each
        step writes its keys and values in place and the layer hands out views, where
        ``DynamicLayer`` concatenates (copying the whole cache every step). The views hold the
        same values, so attention sees the same keys and values."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity, self.length = capacity, 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.device = key_states.device
                b, h, _, d = key_states.shape
                self._k = key_states.new_empty((b, h, self.capacity, d))
                self._v = value_states.new_empty((b, h, self.capacity, value_states.shape[-1]))
                self.is_initialized = True
            end = self.length + key_states.shape[-2]
            if end > self.capacity:  # never with the capacity greedy_decode sets; grow all the same
                grow = end - self.capacity
                self._k = torch.cat([self._k, self._k.new_empty((*self._k.shape[:2], grow, self._k.shape[3]))], 2)
                self._v = torch.cat([self._v, self._v.new_empty((*self._v.shape[:2], grow, self._v.shape[3]))], 2)
                self.capacity = end
            self._k[:, :, self.length : end] = key_states
            self._v[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized:
                self._k, self._v = self._k[indices], self._v[indices]
                self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    return GrowLayer


def _growing_cache(config, capacity: int):
    """A ``DynamicCache`` whose full-attention layers preallocate ``capacity`` positions. Without
    a ``config`` (an encoder-decoder's decoder, whose layer count the config may not give: a T5's
    ``num_hidden_layers`` is its encoder's) the layers are made as the decoder first reaches them."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    grow = _grow_layer_class()
    if config is None:
        cache = DynamicCache()
        cache.layer_class_to_replicate = functools.partial(grow, capacity)
        return cache
    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [grow(capacity) for _ in cache.layers]
    return cache


class _CausalRunner:
    """A causal model through its own forward: a left-padded prefill (``position_ids`` from the
    mask, as ``generate`` computes them), then one token per row and step. Steps get their 4D
    boolean mask from here (what transformers' mask functions build from the 2D mask for one
    query: the row's padding, or None once no live row has any) instead of rebuilding it."""

    def __init__(self, model, ids, mask, max_new_tokens: int):
        self.model = model
        # the head on the last position only, where the model takes it (as generate decides)
        params = inspect.signature(model.forward).parameters
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache = _growing_cache(model.config, ids.shape[1] + max_new_tokens)
        pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        self.logits = model(
            input_ids=ids, attention_mask=mask, position_ids=pos, cache=self.cache, use_cache=True, **self.keep_last
        ).logits
        self.pos, self.mask = pos[:, -1:], mask.bool()  # boolean once, not at every step
        self.padded = not bool(mask.all())

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask, self.pos = self.mask[rows], self.pos[rows]
        self.padded = self.padded and not bool(self.mask.all())

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=-1)
        self.pos = self.pos + 1
        return self.model(
            input_ids=tokens,
            attention_mask=self.mask[:, None, None, :] if self.padded else None,
            position_ids=self.pos,
            cache=self.cache,
            use_cache=True,
            **self.keep_last,
        ).logits


def _decoder_start(model, ids: torch.Tensor) -> torch.Tensor:
    """The first decoder input of every row: ``decoder_start_token_id``, as ``generate`` takes it."""
    start = model.generation_config.decoder_start_token_id
    start = model.config.decoder_start_token_id if start is None else start
    return torch.full((ids.shape[0], 1), int(start), dtype=torch.long, device=ids.device)


class _Seq2SeqRunner:
    """An encoder-decoder model through its own forward: the encoder once per batch, then the
    decoder one token per row and step from ``decoder_start_token_id``."""

    def __init__(self, model, ids, mask, max_new_tokens: int):
        from transformers import DynamicCache, EncoderDecoderCache

        self.model, self.mask = model, mask
        self.cache = EncoderDecoderCache(
            _growing_cache(model.config, max_new_tokens + 1), DynamicCache(config=model.config)
        )
        self.encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
        self.logits = self.step(_decoder_start(model, ids))

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]
        self.encoded.last_hidden_state = self.encoded.last_hidden_state[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(
            encoder_outputs=self.encoded,
            attention_mask=self.mask,
            decoder_input_ids=tokens,
            cache=self.cache,
            use_cache=True,
        ).logits


def _lean_t5(model) -> bool:
    """Whether ``_T5Runner`` computes this model's forward: a T5 on sdpa attention, with the
    stack layout and config fields the runner reads (anything else takes ``_Seq2SeqRunner``)."""
    cfg = model.config
    if getattr(cfg, "model_type", None) != "t5" or getattr(cfg, "_attn_implementation", None) != "sdpa":
        return False
    enc, dec = getattr(model, "encoder", None), getattr(model, "decoder", None)
    return (
        hasattr(cfg, "scale_decoder_outputs")
        and hasattr(model, "model_dim")
        and hasattr(model, "lm_head")
        and all(hasattr(stack, a) for stack in (enc, dec) for a in ("block", "embed_tokens", "final_layer_norm"))
        # the bias every layer shares is made by block 0, as T5Stack takes it
        and all(getattr(s.block[0].layer[0].SelfAttention, "has_relative_attention_bias", False) for s in (enc, dec))
    )


class _T5Runner:
    """A T5 driven block by block, with its attention biases built once per batch.

    ``T5Stack`` rebuilds, in every layer of every forward, the additive mask that sdpa gets: the
    relative position bias merged with the padding mask (``torch.where``), a batch x heads x
    queries x keys tensor. Here the encoder's is built once per batch (all layers share the bias
    and the mask), the cross-attention's once per batch (a zero bias under the padding), and the
    decoder's per-step bias is a slice of one table. sdpa receives the same values as it does
    inside ``generate`` (the bias where the mask keeps a key, the dtype's minimum elsewhere; a
    slice of the table holds the embedding rows ``compute_bias`` looks up at that step), and
    every layer is the model's own module, so the tokens are ``generate``'s."""

    def __init__(self, model, ids, mask, max_new_tokens: int):
        from transformers import DynamicCache, EncoderDecoderCache

        self.model, self.enc, self.dec = model, model.get_encoder(), model.get_decoder()
        n, device = ids.shape[1], ids.device
        kept = mask.bool()[:, None, None, :]
        padded = not bool(mask.all())
        # contiguous first (compute_bias returns a permuted view): the merged mask then comes out
        # contiguous, where sdpa would otherwise copy the batch x heads x n x n tensor again
        bias = self.enc.block[0].layer[0].SelfAttention.compute_bias(n, n, device=device).contiguous()
        h = self.enc.dropout(self.enc.embed_tokens(ids))
        # masked keys get the minimum of the keys' dtype (the embeddings'), as sdpa's mask does
        merged = torch.where(kept, bias, torch.finfo(h.dtype).min) if padded else bias
        for block in self.enc.block:
            h = block(h, None, merged)[0]
        self.encoded = self.enc.dropout(self.enc.final_layer_norm(h))
        # The cross-attention's zero bias in the queries' dtype, with the keys' minimum under the
        # padding: both are the encoder output's dtype (its final norm casts to the half weights;
        # a T5 keeps its ``wo`` in fp32, so the residual stream before that norm may be fp32).
        qdtype = self.encoded.dtype
        zero = torch.zeros((1, self.dec.block[0].layer[0].SelfAttention.n_heads, 1, n), dtype=qdtype, device=device)
        self.cross = torch.where(kept, zero, torch.finfo(qdtype).min).contiguous() if padded else zero
        self.table = (
            self.dec.block[0].layer[0].SelfAttention.compute_bias(max_new_tokens + 1, max_new_tokens + 1, device=device)
        )
        self.cache = EncoderDecoderCache(_growing_cache(None, max_new_tokens + 1), DynamicCache())
        self.t = 0
        self.logits = self.step(_decoder_start(model, ids))

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.encoded = self.encoded[rows]
        if self.cross.shape[0] > 1:
            self.cross = self.cross[rows]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        t = self.t
        self.t += 1
        y = self.dec.dropout(self.dec.embed_tokens(tokens))
        bias = self.table[:, :, t : t + 1, : t + 1].contiguous()  # once, not in every layer
        for block in self.dec.block:
            y = block(y, None, bias, self.encoded, None, self.cross, cache=self.cache)[0]
        y = self.dec.dropout(self.dec.final_layer_norm(y))
        if self.model.config.scale_decoder_outputs:
            y = y * (self.model.model_dim**-0.5)
        return self.model.lm_head(y)


def _runner(model, ids, mask, max_new_tokens: int):
    if not getattr(model.config, "is_encoder_decoder", False):
        return _CausalRunner(model, ids, mask, max_new_tokens)
    if _lean_t5(model):
        return _T5Runner(model, ids, mask, max_new_tokens)
    return _Seq2SeqRunner(model, ids, mask, max_new_tokens)


# A batch shrinks no further than this many rows. BLAS computes a matrix product over a few
# rows with other kernels than over many (here a product over 1-3 rows rounds differently from
# the same rows in a batch of 64), so a row left nearly alone would get logits that differ from
# generate's in the last bits, and now and then another token. Finished rows fill up to it.
MIN_ROWS = 8


def _with_ballast(live: List[int], n: int) -> List[int]:
    """The rows to keep: the live ones, and finished ones up to ``min(MIN_ROWS, n)`` rows."""
    short = min(MIN_ROWS, n) - len(live)
    if short <= 0:
        return live
    alive = set(live)
    done = [j for j in range(n) if j not in alive][:short]
    return sorted(live + done)


@torch.inference_mode()
def greedy_decode(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: Optional[int],
    tokenizer=None,
    stop_rule: Optional[Callable[[str], Optional[int]]] = None,
    stop_after_ids: Optional[Collection[int]] = None,
) -> List[List[int]]:
    """Greedy continuations of a padded batch (left padding for causal models, right for
    seq2seq): one list of new token ids per row, ending with EOS where the row produced one.

    ``stop_rule`` (text -> end index or None) also ends a row once it returns an index for the
    row's text so far (``tokenizer.decode(..., skip_special_tokens=True)``); it is tried only on
    steps whose new token is in ``stop_after_ids`` when that is given (e.g. the ids holding a
    newline, for a rule about complete lines), else on every step. The caller cuts the text at
    the index; the tokens returned run to the step where the rule fired, as ``generate`` with an
    equivalent stopping criterion would give."""
    if stop_rule is not None and tokenizer is None:
        raise ValueError("a stop rule needs the tokenizer to read the text")
    device = next(model.parameters()).device
    ids = input_ids.to(device)
    mask = attention_mask.to(device)
    n_rows = ids.shape[0]
    out: List[List[int]] = [[] for _ in range(n_rows)]
    if max_new_tokens <= 0 or n_rows == 0:
        return out
    check = None if stop_after_ids is None else set(int(i) for i in stop_after_ids)
    runner = _runner(model, ids, mask, max_new_tokens)
    logits = runner.logits
    rows = list(range(n_rows))  # the original row of each live row; -1 once it has finished
    n_done = 0
    for step in range(max_new_tokens):
        nxt = logits[:, -1].float().argmax(-1)
        for j, t in enumerate(nxt.tolist()):
            r = rows[j]
            if r < 0:
                continue
            out[r].append(t)
            if t == eos_token_id or (
                stop_rule is not None
                and (check is None or t in check)
                and stop_rule(tokenizer.decode(out[r], skip_special_tokens=True)) is not None
            ):
                rows[j] = -1
                n_done += 1
        if step == max_new_tokens - 1 or n_done == n_rows:
            break
        live = [j for j, r in enumerate(rows) if r >= 0]
        # Finished rows leave the batch once they are an eighth of it (each removal copies the
        # cache); until then they are computed and ignored, as generate does to the end.
        if len(live) < len(rows) and len(rows) - len(live) >= max(1, len(rows) // 8):
            kept = _with_ballast(live, len(rows))
            if len(kept) < len(rows):
                keep = torch.tensor(kept, dtype=torch.long, device=device)
                rows = [rows[j] for j in kept]
                runner.keep(keep)
                nxt = nxt[keep]
        logits = runner.step(nxt[:, None])
    return out
