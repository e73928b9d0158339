"""Multi-process helpers for the student: how many processes a trainer config asks for, a
launcher that starts them (gloo on CPU, nccl on GPUs), and the gather that puts sharded
generation back in the original order. Who this process is: fdd/runtime/ranks.py."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from fdd.runtime.ranks import rank_world

log = logging.getLogger(__name__)


def requested_world_size(trainer_cfg: Dict) -> int:
    """How many processes a Lightning trainer config asks for (1 unless a ddp strategy)."""
    strategy = str(trainer_cfg.get("strategy", "auto"))
    if not strategy.startswith("ddp"):
        return 1
    devices = trainer_cfg.get("devices", 1)
    num_nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    accel = str(trainer_cfg.get("accelerator", "auto"))
    if isinstance(devices, (list, tuple)):
        n = len(devices)
    elif str(devices) in ("auto", "-1"):
        n = torch.cuda.device_count() if accel in ("gpu", "cuda", "auto") and torch.cuda.is_available() else 1
    else:
        n = int(devices)
    return max(1, n) * num_nodes


def uses_cuda(trainer_cfg: Dict) -> bool:
    return torch.cuda.is_available() and str(trainer_cfg.get("accelerator", "auto")) in ("gpu", "cuda", "auto")


def gather_in_order(local: Dict[int, Any], n: int) -> List[Any]:
    """Every rank's {index: value} merged into one list of length ``n`` (on every rank)."""
    rank, world = rank_world()
    parts: List[Optional[Dict[int, Any]]] = [None] * world
    if world > 1:
        torch.distributed.all_gather_object(parts, local)
    else:
        parts = [local]
    merged: Dict[int, Any] = {}
    for p in parts:
        merged.update(p or {})
    missing = [i for i in range(n) if i not in merged]
    if missing:
        raise RuntimeError(f"sharded generation lost {len(missing)} of {n} outputs (e.g. index {missing[0]})")
    return [merged[i] for i in range(n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn: Callable, world: int, port: int, cuda: bool, args: Sequence) -> None:
    # The variables Lightning's LightningEnvironment reads: with them set, strategy=ddp joins
    # this process group instead of launching processes of its own.
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        NODE_RANK="0",
        GROUP_RANK="0",
        LOCAL_WORLD_SIZE=str(world),
    )
    if cuda:
        torch.cuda.set_device(rank)
    else:  # the ranks share the machine's cores: no oversubscription
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.distributed.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        torch.distributed.destroy_process_group()


def launch(fn: Callable, world: int, args: Sequence = (), cuda: bool = False) -> None:
    """Run ``fn(*args)`` in ``world`` fresh processes (spawn start method) forming one process
    group. ``fn`` must be importable (module level); raises if any rank fails."""
    import torch.multiprocessing as mp

    port = _free_port()
    log.info("launching %d processes (%s)", world, "nccl" if cuda else "gloo")
    mp.start_processes(_entry, args=(fn, world, port, cuda, tuple(args)), nprocs=world, join=True, start_method="spawn")
