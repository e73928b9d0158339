"""CPU threading that holds its speed when other work shares the machine.

torch's OpenMP threads spin-wait between operations by default. The default student's operations
are tiny, so its threads spend much of a step waiting for each other; on a CPU that other
processes also use, the spinning threads take turns with them and a step gets several times
slower (benchmarks/cpu_under_load.py: 2 threads, 2 busy processes beside them, about 2x slower
spinning than sleeping). A sleeping wait costs a little when the machine is idle and changes no
arithmetic (the same threads split the same work), so results stay the same.

OpenMP reads the setting once, when torch is first imported: the entry points call this before
anything imports torch. A value the user exported wins."""

from __future__ import annotations

import os

POLICY = "OMP_WAIT_POLICY"


def prefer_passive_wait() -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already; returns the policy in force."""
    return os.environ.setdefault(POLICY, "PASSIVE")
