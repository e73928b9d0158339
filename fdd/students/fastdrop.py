"""Dropout with a faster random generator on CPU (``student.fast_train``).

On CPU, torch draws dropout masks with a Mersenne twister at ~14 ns an element; in a tiny T5
that is a quarter of a training step (its attention-probability dropout alone draws
batch x heads x query x key numbers per layer). Here the keep-mask comes from numpy's PCG64,
seeded by one draw from torch's generator, so ``seed_everything`` still makes a fit
reproducible: its raw 64-bit output read as two 32-bit integers each, compared with p x 2^32
in numpy (finer than a float32 uniform's 2^-24 steps, and a quarter of the time of drawing
those uniforms). 2.7M elements, forward and backward: ~10 ms, against ~17 ms drawing float32
uniforms and ~21 ms for torch's dropout. Same distribution (keep with probability 1-p to within
2^-32, scaled to an unbiased mean), different draws. Other devices keep torch's own dropout."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Keep-mask scaled by 1/(1-p') (p' = p to within 2^-32), shaped like ``x``."""
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    n = x.numel()
    bits = np.random.PCG64(seed).random_raw((n + 1) // 2).view(np.uint32)[:n]
    cut = min(round(p * 2**32), 2**32 - 1)  # drop when bits < cut: probability cut / 2^32
    keep = torch.from_numpy(bits >= np.uint32(cut)).view(x.shape)
    # a float mask, not the boolean one: backward multiplies by it, and a product with a
    # boolean tensor converts it again on every use
    return keep.to(x.dtype).mul_(1.0 / (1.0 - cut / 2**32))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0 or x.device.type != "cpu":
        return nn.functional.dropout(x, p, training)
    if p >= 1.0:
        return x * 0.0
    return x * keep_mask(x, p)


class FastDropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def _t5_eager_fast_dropout(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, position_bias=None, **kw
):
    """transformers' T5 eager attention with this module's dropout on the probabilities."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if position_bias is not None:
        w = w + position_bias
    if attention_mask is not None:
        w = w + attention_mask
    w = nn.functional.softmax(w, dim=-1)
    w = globals()["dropout"](w, dropout, module.training)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


ATTN = "fdd_t5_fast_dropout"


def use_fast_dropout(model) -> int:
    """Swap the ``nn.Dropout`` modules of ``model`` (in place) for ``FastDropout``, and a T5's
    attention for eager attention with it; returns how many were swapped."""
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and child.p > 0:
                setattr(parent, name, FastDropout(child.p, child.inplace).train(child.training))
                n += 1
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "model_type", None) == "t5" and getattr(cfg, "dropout_rate", 0) > 0:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

        AttentionInterface.register(ATTN, _t5_eager_fast_dropout)
        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN, eager_mask)  # eager's additive masks
        model._fdd_attn_before = cfg._attn_implementation
        model.set_attn_implementation(ATTN)
    return n


def restore_attention(model) -> None:
    """Back to the default attention before the model is saved or used for generation."""
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "_attn_implementation", None) == ATTN:
        model.set_attn_implementation(getattr(model, "_fdd_attn_before", None) or "sdpa")
