"""Batched greedy generation: inputs sorted by length (little padding), left padding for causal
models, and each batch stops as soon as every sequence has ended."""
from __future__ import annotations

from typing import List, Sequence

import torch
from tqdm.auto import tqdm

from fdd.students.data import encode_example


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[str], arch: str, batch_size: int = 64, max_new_tokens: int = 128,
             max_source_len: int = 256, progress: bool = False, desc: str = "generate") -> List[str]:
    """Greedy completions of ``prompts``, returned in input order."""
    model.eval()
    device = next(model.parameters()).device
    enc = [encode_example(tokenizer, p, None, arch, max_source_len, 0)["input_ids"] for p in prompts]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    out: List[str] = [""] * len(enc)
    pad = tokenizer.pad_token_id
    bar = tqdm(total=len(enc), desc=desc, disable=not progress, leave=False)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        n = max(len(enc[i]) for i in idx)
        ids = torch.full((len(idx), n), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for row, i in enumerate(idx):
            L = len(enc[i])
            if arch == "causal":  # left padding so every row continues from its last real token
                ids[row, n - L:], mask[row, n - L:] = torch.tensor(enc[i]), 1
            else:
                ids[row, :L], mask[row, :L] = torch.tensor(enc[i]), 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False, num_beams=1,
                             max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        if arch == "causal":
            gen = gen[:, n:]
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[row], skip_special_tokens=True).strip()
        bar.update(len(idx))
    bar.close()
    return out
