"""Turning distillation items into batches: prompt/target encoding with the loss on the
rationale tokens only, dynamic padding, and length-grouped batches."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from fdd.runtime.ranks import rank_world
from fdd.runtime.seeding import rng as seeded_rng

IGNORE = -100
OVERLONG = ("drop", "truncate", "error")
log = logging.getLogger(__name__)


class OverlongError(ValueError):
    """An item is longer than the student's limits and ``student.overlong=error``."""


def encode_example(
    tokenizer, prompt: str, target: Optional[str], arch: str, max_source: int, max_target: int
) -> Dict[str, List[int]]:
    """Token ids for one example. Prompt and target are tokenized separately so the boundary is
    exact whatever the tokenizer (the loss must cover the rationale and nothing else)."""
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"][-max_source:]
    if target is None:  # generation input
        return {"input_ids": p_ids}
    t_text = target if arch == "seq2seq" else "\n" + target
    t_ids = tokenizer(t_text, add_special_tokens=False)["input_ids"][: max_target - 1] + [tokenizer.eos_token_id]
    if arch == "seq2seq":
        return {"input_ids": p_ids, "labels": t_ids}
    return {"input_ids": p_ids + t_ids, "labels": [IGNORE] * len(p_ids) + t_ids}


@dataclass
class LengthReport:
    """What encoding a training set did about length: token lengths before any cut, and the
    items over ``max_source_len`` / ``max_target_len`` by kind (an item can count in both)."""

    prompt_lengths: List[int] = field(default_factory=list)
    target_lengths: List[int] = field(default_factory=list)
    overlong: Counter = field(default_factory=Counter)
    overlong_items: int = 0
    dropped: int = 0


def encode_training_set(
    tokenizer,
    pairs: Sequence[Tuple[str, str]],
    arch: str,
    max_source: int,
    max_target: int,
    overlong: str = "drop",
    ids: Optional[Sequence[str]] = None,
) -> Tuple[List[Dict[str, List[int]]], LengthReport]:
    """Encode (prompt, target) pairs; an item over a limit is dropped, truncated or refused
    (``overlong``) and always counted -- never cut silently. Target lengths count the EOS."""
    if overlong not in OVERLONG:
        raise ValueError(f"overlong must be one of {OVERLONG}, got {overlong!r}")
    rows, rep = [], LengthReport()
    for k, (prompt, target) in enumerate(pairs):
        full = encode_example(tokenizer, prompt, target, arch, 10**9, 10**9)
        n_t = sum(1 for x in full["labels"] if x != IGNORE)
        n_p = len(full["input_ids"]) - (n_t if arch == "causal" else 0)
        rep.prompt_lengths.append(n_p)
        rep.target_lengths.append(n_t)
        kinds = [kind for kind, n, limit in (("prompt", n_p, max_source), ("target", n_t, max_target)) if n > limit]
        if kinds:
            rep.overlong.update(kinds)
            rep.overlong_items += 1
            if overlong == "error":
                name = ids[k] if ids is not None else f"#{k}"
                raise OverlongError(
                    f"item {name}: {' and '.join(kinds)} longer than the student's limit ({n_p} prompt tokens, "
                    f"max_source_len={max_source}; {n_t} target tokens, max_target_len={max_target}); raise the limit "
                    f"or set student.overlong=drop|truncate"
                )
            if overlong == "drop":
                rep.dropped += 1
                continue
            full = encode_example(tokenizer, prompt, target, arch, max_source, max_target)  # truncate
        rows.append(full)
    if rep.overlong_items:
        log.warning(
            "%d of %d items are over the length limits (%s): %s",
            rep.overlong_items,
            len(pairs),
            dict(rep.overlong),
            "dropped" if overlong == "drop" else "truncated",
        )
    return rows, rep


class EncodedDataset(Dataset):
    def __init__(self, rows: Sequence[Dict[str, List[int]]], summary: Optional[Dict] = None):
        self.rows = list(rows)
        self.summary = dict(summary or {})  # what encoding counted (unrepresentable, over-long, lengths)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Dict[str, List[int]]:
        return self.rows[i]

    def lengths(self) -> List[int]:
        return [len(r["input_ids"]) + len(r.get("labels", [])) for r in self.rows]


@dataclass
class Collator:
    """Pads a batch to its own longest sequence (right padding; labels padded with -100)."""

    pad_id: int

    def __call__(self, rows: List[Dict[str, List[int]]]) -> Dict[str, torch.Tensor]:
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if "labels" in rows[0]:
            m = max(len(r["labels"]) for r in rows)
            labels = torch.full((len(rows), m), IGNORE, dtype=torch.long)
            for i, r in enumerate(rows):
                labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
            batch["labels"] = labels
        return batch


@dataclass
class PackingCollator:
    """Padding-free batches for causal students: the batch's sequences are concatenated into
    rows of at most ``max_tokens`` tokens (first-fit, longest first; a longer sequence gets a row
    of its own), with ``position_ids`` restarting at 0 for each sequence and no
    ``attention_mask``. From position ids that restart, transformers' masking utilities
    (``find_packed_sequence_indices``) build a block-diagonal causal mask, so attention stays
    within each sequence; the first token of every sequence has label -100 (as unpacked: no
    token predicts it), so no label ever crosses a boundary. The row's tail padding continues
    its positions as a sequence of its own, labelled -100. The label tokens, and so the mean
    loss over them, are those of the padded batch."""

    pad_id: int
    max_tokens: int = 1024

    def rows(self, rows: List[Dict[str, List[int]]]) -> List[List[int]]:
        """Which sequences share each packed row (indices into ``rows``)."""
        packed: List[List[int]] = []
        room: List[int] = []
        for i in sorted(range(len(rows)), key=lambda j: (-len(rows[j]["input_ids"]), j)):
            n = len(rows[i]["input_ids"])
            k = next((k for k, r in enumerate(room) if r >= n), None)
            if k is None:
                packed.append([i])
                room.append(self.max_tokens - n)
            else:
                packed[k].append(i)
                room[k] -= n
        return packed

    def __call__(self, rows: List[Dict[str, List[int]]]) -> Dict[str, torch.Tensor]:
        plan = self.rows(rows)
        width = max(sum(len(rows[i]["input_ids"]) for i in row) for row in plan)
        ids = torch.full((len(plan), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(plan), width), IGNORE, dtype=torch.long)
        pos = torch.empty((len(plan), width), dtype=torch.long)
        for k, row in enumerate(plan):
            at = 0
            for i in row:
                r = rows[i]
                n = len(r["input_ids"])
                ids[k, at : at + n] = torch.tensor(r["input_ids"])
                labels[k, at + 1 : at + n] = torch.tensor(r["labels"][1:n])
                pos[k, at : at + n] = torch.arange(n)
                at += n
            pos[k, at:] = torch.arange(width - at)
        return {"input_ids": ids, "labels": labels, "position_ids": pos}


@dataclass
class CausalNoMaskCollator(Collator):
    """Right-padded causal batches without ``attention_mask``: with right padding no real token
    can see a pad (they come after it), pads carry label -100, so the loss and its gradients are
    those of the masked batch; without a mask, sdpa runs its causal kernel (``is_causal``) instead
    of a dense masked one."""

    def __call__(self, rows: List[Dict[str, List[int]]]) -> Dict[str, torch.Tensor]:
        batch = super().__call__(rows)
        batch.pop("attention_mask")
        return batch


def training_collator(cfg, pad_id: int):
    """The collator ``Student.fit`` uses: padding (default), padding without a mask for causal
    students under ``student.fast_train``, or packing for causal students (``student.packing``)."""
    if cfg.packing:
        if cfg.arch != "causal":
            log.warning("student.packing applies to causal students only; %s batches are padded", cfg.arch)
        else:
            return PackingCollator(pad_id, int(cfg.pack_max_tokens))
    if cfg.fast_train and cfg.arch == "causal":
        return CausalNoMaskCollator(pad_id)
    return Collator(pad_id)


class _Epoch:
    """Holds the epoch; Lightning calls ``set_epoch`` on ``batch_sampler.sampler``."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class LengthGroupedBatchSampler(torch.utils.data.Sampler):
    """Batches of similar length (less padding), in a seeded random order that changes each
    epoch. Under torch.distributed each rank takes an equal share of the batches."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int = 0, group_by_length: bool = True, mega: int = 50
    ):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.group_by_length, self.mega = group_by_length, mega
        self.sampler = _Epoch()

    def _batches(self) -> List[List[int]]:
        rng = seeded_rng(self.seed, self.sampler.epoch)
        idx = list(range(len(self.lengths)))
        rng.shuffle(idx)
        if self.group_by_length:
            chunk = self.batch_size * self.mega
            idx = [
                i for s in range(0, len(idx), chunk) for i in sorted(idx[s : s + chunk], key=lambda j: -self.lengths[j])
            ]
        batches = [idx[s : s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        rng.shuffle(batches)
        rank, world = rank_world()
        if world > 1:
            per = len(batches) // world  # equal counts keep the ranks' collective calls in step
            batches = batches[rank * per : (rank + 1) * per]
        return batches

    def __iter__(self):
        return iter(self._batches())

    def __len__(self) -> int:
        n = -(-len(self.lengths) // self.batch_size)
        return n // rank_world()[1]
