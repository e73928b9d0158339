"""A lean greedy decoding loop over a Hugging Face model's forward and its KV cache.

It gives the tokens ``model.generate(do_sample=False, num_beams=1)`` gives for the same padded
batch, with less work:

* finished rows (EOS, or the caller's stop rule firing) leave the batch once they are an eighth
  of it: their cache rows, mask rows (and for seq2seq, encoder states) are dropped
  (``Cache.batch_select_indices``), where ``generate`` computes them to the end of the batch;
* the self-attention cache is allocated once per batch and written in place, where
  ``DynamicCache`` concatenates (copies) the whole cache at every step;
* causal steps get their one-query mask from here instead of transformers rebuilding it;
* no logits processors, stopping-criteria objects or per-step input preparation: one forward,
  one argmax and one host read of the new tokens per step.

A row's computation is the one ``generate`` does for it (same kernels on the same values), so
the greedy tokens are the same; tests/test_fast_paths.py checks it for causal and seq2seq
students, rows ending early and a stop rule.

Causal batches are left-padded (``position_ids`` from the mask, as ``generate`` computes them);
seq2seq batches run the encoder once and the decoder from ``decoder_start_token_id``. Sampling is
not done here: callers keep ``generate`` for it.
"""

from __future__ import annotations

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
    """A ``DynamicCache`` whose full-attention layers preallocate ``capacity`` positions."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    grow = _grow_layer_class()
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [grow(capacity) for _ in cache.layers]
    return cache


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
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    # the head on the last position only, where the model takes it (as generate decides)
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    from transformers import DynamicCache, EncoderDecoderCache

    if seq2seq:
        cache = EncoderDecoderCache(_growing_cache(model.config, max_new_tokens + 1), DynamicCache(config=model.config))
        encoder_out = model.get_encoder()(input_ids=ids, attention_mask=mask)
        start = model.generation_config.decoder_start_token_id
        if start is None:
            start = model.config.decoder_start_token_id
        step_in = torch.full((n_rows, 1), int(start), dtype=torch.long, device=device)
        logits = model(
            encoder_outputs=encoder_out, attention_mask=mask, decoder_input_ids=step_in, cache=cache, use_cache=True
        ).logits
    else:
        cache = _growing_cache(model.config, ids.shape[1] + max_new_tokens)
        pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        logits = model(
            input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True, **keep_last
        ).logits
        pos = pos[:, -1:]
    rows = list(range(n_rows))  # the original row of each live row; -1 once it has finished
    n_done = 0
    # Causal steps get their 4D boolean mask from here (what transformers' mask functions build
    # from the 2D mask for one query: the row's padding, or None when no live row has any),
    # instead of having it rebuilt inside every forward.
    padded = not seq2seq and not bool(mask.all())
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
            keep = torch.tensor(live, dtype=torch.long, device=device)
            rows = [rows[j] for j in live]
            cache.batch_select_indices(keep)
            nxt, mask = nxt[keep], mask[keep]
            if seq2seq:
                encoder_out.last_hidden_state = encoder_out.last_hidden_state[keep]
            else:
                pos = pos[keep]
                padded = padded and not bool(mask.all())
        step_in = nxt[:, None]
        if seq2seq:
            logits = model(
                encoder_outputs=encoder_out, attention_mask=mask, decoder_input_ids=step_in, cache=cache, use_cache=True
            ).logits
        else:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            pos = pos + 1
            logits = model(
                input_ids=step_in,
                attention_mask=mask.bool()[:, None, None, :] if padded else None,
                position_ids=pos,
                cache=cache,
                use_cache=True,
                **keep_last,
            ).logits
    return out
