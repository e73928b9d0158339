"""The one place random generators come from: every choice is seeded by the config's ``seed``
plus its purpose (and round), so a rerun (or a resumed run) makes the same choices.

Torch's generators are seeded from the same numbers where a fit or a sampled generation starts
(``seed + round``, ``seed`` for a random init, the feedback's sampling seed)."""

from __future__ import annotations

import random


def rng(seed, *purpose) -> random.Random:
    """The generator of one purpose, e.g. ``rng(cfg.seed, "probe", round_idx)``: the parts,
    joined with "/", seed it, so equal parts give equal streams and different purposes never
    share one."""
    return random.Random("/".join(str(p) for p in (seed, *purpose)))


def shuffle_rng(seed: int) -> random.Random:
    """The generator of a data source's ``shuffle``: seeded with the integer itself (not as
    :func:`rng` does), as it always was, so a seed keeps choosing the same problems."""
    return random.Random(seed)
