"""The one place randomness comes from: every choice is seeded by the config's ``seed`` plus
the purpose and round, so a rerun (or a resumed run) makes the same choices."""

from __future__ import annotations

import random


def rng(seed: int, *purpose) -> random.Random:
    return random.Random("/".join(str(p) for p in (seed, *purpose)))
