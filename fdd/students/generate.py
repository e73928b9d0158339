"""Batched greedy generation: inputs sorted by length (little padding), left padding for causal
models, and each batch stops as soon as every sequence has ended (EOS, or the point a
``stop_rule`` -- the rationale format's, when ``student.generation.stop_at_answer`` is on --
says the answer is complete)."""

from __future__ import annotations

import logging
import weakref
from typing import Callable, Dict, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from fdd.students.data import encode_example
from fdd.students.decode import greedy_decode, token_ids_containing

log = logging.getLogger(__name__)

# A rationale format's ``stop_rule`` (fdd.reasoning.formats): text -> the index just past a
# complete answer, or None. Generation applies it without knowing what an answer looks like.
StopRule = Callable[[str], Optional[int]]


def cut_at_stop(text: str, stop_rule: Optional[StopRule]) -> str:
    """``text`` up to where ``stop_rule`` says its answer is complete (all of it without one)."""
    end = stop_rule(text) if stop_rule is not None else None
    return text if end is None else text[:end]


# Keyed by the tokenizer object itself, held weakly: an ``id()`` key could be reused by a later
# tokenizer (another vocabulary) once the first is collected, and hand it the wrong ids.
_NEWLINE_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def newline_ids(tokenizer) -> List[int]:
    """Ids of the tokens whose text holds a newline, read once per tokenizer (a whole-vocabulary
    decode): an answer ends with its line, so a stop rule is asked only after one of them."""
    try:
        return _NEWLINE_IDS[tokenizer]
    except KeyError:
        ids = _NEWLINE_IDS[tokenizer] = token_ids_containing(tokenizer, "\n")
        return ids
    except TypeError:  # not weakly referenceable: read it every time rather than risk a stale key
        return token_ids_containing(tokenizer, "\n")


def pad_batch(enc: Sequence[List[int]], idx: Sequence[int], pad_id: int, arch: str):
    """``(input_ids, attention_mask)`` of the prompts ``enc[i]`` for ``i`` in ``idx``: left padding
    for causal models (every row continues from its last real token), right padding for seq2seq."""
    n = max(len(enc[i]) for i in idx)
    ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    for row, i in enumerate(idx):
        L = len(enc[i])
        cols = slice(n - L, n) if arch == "causal" else slice(0, L)
        ids[row, cols], mask[row, cols] = torch.tensor(enc[i]), 1
    return ids, mask


class AnswerLineStop:
    """A ``StoppingCriteria`` (duck-typed: transformers calls it with ``(input_ids, scores)``)
    that ends a row once ``stop_rule`` finds a complete answer in its generated text. The rule
    is asked only on steps whose new token contains a newline (an answer ends with its line), so
    the cost is a few decodes per row, not one per token."""

    def __init__(self, tokenizer, prompt_len: int, stop_rule: StopRule):
        self.tokenizer, self.prompt_len, self.stop_rule = tokenizer, prompt_len, stop_rule
        self.done: Optional[torch.Tensor] = None
        self.newline_ids = torch.tensor(newline_ids(tokenizer), dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] <= self.prompt_len:
            return self.done
        last = input_ids[:, -1]
        hit = torch.isin(last, self.newline_ids.to(last.device)) & ~self.done
        for row in hit.nonzero().flatten().tolist():
            text = self.tokenizer.decode(input_ids[row, self.prompt_len :], skip_special_tokens=True)
            if self.stop_rule(text) is not None:
                self.done[row] = True
        return self.done.clone()


def encode_prompts(tokenizer, prompts: Sequence[str], arch: str, max_source_len: int) -> List[List[int]]:
    """Prompt ids; a prompt over ``max_source_len`` keeps its end (the question's last words
    and the cue to answer) and is counted in a warning, never cut silently."""
    full = [encode_example(tokenizer, p, None, arch, 10**9, 0)["input_ids"] for p in prompts]
    over = [len(e) for e in full if len(e) > max_source_len]
    if over:
        log.warning(
            "%d of %d prompts are longer than max_source_len=%d (up to %d tokens) and keep only their last %d tokens",
            len(over),
            len(full),
            max_source_len,
            max(over),
            max_source_len,
        )
    return [e[-max_source_len:] for e in full]


def plan_batches(lengths: Sequence[int], batch_size: int) -> List[List[int]]:
    """Indices grouped into generation batches, longest first. Sharded evaluation hands whole
    batches to ranks, so every batch (and its padding) is the same as in a single process and
    greedy outputs are identical."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


@torch.inference_mode()
def generate_batches(
    model,
    tokenizer,
    enc: Sequence[List[int]],
    batches: Sequence[List[int]],
    arch: str,
    max_new_tokens: int = 128,
    stop_rule: Optional[StopRule] = None,
    progress: bool = False,
    desc: str = "generate",
    sampling: Optional[Dict] = None,
) -> Dict[int, str]:
    """Greedy completions of the encoded prompts named by ``batches``: {index: text}. With
    ``sampling={"temperature": t, "seed": s}`` they are sampled instead, reproducibly (one
    seeded generator for the whole call)."""
    model.eval()
    if sampling is not None:
        torch.manual_seed(int(sampling.get("seed", 0)))
    device = next(model.parameters()).device
    out: Dict[int, str] = {}
    pad = tokenizer.pad_token_id
    bar = tqdm(total=sum(len(b) for b in batches), desc=desc, disable=not progress, leave=False)
    for idx in batches:
        ids, mask = pad_batch(enc, idx, pad, arch)
        n = ids.shape[1]
        if sampling is None:  # greedy: the lean loop (fdd/students/decode.py), the same tokens as generate
            gen = greedy_decode(
                model,
                ids,
                mask,
                max_new_tokens,
                tokenizer.eos_token_id,
                tokenizer=tokenizer,
                stop_rule=stop_rule,
                stop_after_ids=newline_ids(tokenizer) if stop_rule else None,
            )
            for row, i in enumerate(idx):
                out[i] = cut_at_stop(tokenizer.decode(gen[row], skip_special_tokens=True), stop_rule).strip()
            bar.update(len(idx))
            continue
        # sampled: generate, with the stop rule as a stopping criterion
        kw = dict(do_sample=True, temperature=float(sampling["temperature"]), top_k=0, top_p=1.0)
        if stop_rule is not None:
            from transformers import StoppingCriteriaList

            kw["stopping_criteria"] = StoppingCriteriaList(
                [AnswerLineStop(tokenizer, n if arch == "causal" else 0, stop_rule)]
            )
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            num_beams=1,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
            **kw,
        )
        if arch == "causal":
            gen = gen[:, n:]
        for row, i in enumerate(idx):
            text = tokenizer.decode(gen[row], skip_special_tokens=True)
            # The stop fires on the step that completes the line; a multi-character token may
            # carry text past it, which is cut so the output does not depend on token boundaries.
            out[i] = cut_at_stop(text, stop_rule).strip()
        bar.update(len(idx))
    bar.close()
    return out


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    arch: str,
    batch_size: int = 64,
    max_new_tokens: int = 128,
    max_source_len: int = 256,
    progress: bool = False,
    desc: str = "generate",
    stop_rule: Optional[StopRule] = None,
) -> List[str]:
    """Greedy completions of ``prompts``, returned in input order."""
    enc = encode_prompts(tokenizer, prompts, arch, max_source_len)
    got = generate_batches(
        model,
        tokenizer,
        enc,
        plan_batches([len(e) for e in enc], batch_size),
        arch,
        max_new_tokens=max_new_tokens,
        stop_rule=stop_rule,
        progress=progress,
        desc=desc,
    )
    return [got[i] for i in range(len(enc))]
