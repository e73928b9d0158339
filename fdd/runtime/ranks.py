"""Who this process is in a process group (torchrun, SLURM, the student's launcher): the one
place rank, world size and device index are read."""

from __future__ import annotations

import os
from typing import Optional, Tuple


def rank_world() -> Tuple[int, int]:
    """(rank, world size) of an initialized process group, else (0, 1)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency; this keeps the module light
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rank() -> Optional[int]:
    """This process's device index inside a process group of more than one, else None."""
    rank, world = rank_world()
    return int(os.environ.get("LOCAL_RANK", rank)) if world > 1 else None


def externally_launched() -> bool:
    """True inside processes started by torchrun/SLURM/our launcher (Lightning then creates none)."""
    return ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ) or rank_world()[1] > 1


def is_main_process() -> bool:
    """True on rank 0 (and outside any process group): the one writer of shared files."""
    return rank_world()[0] == 0
