"""A sandbox for model-written Program-of-Thought programs (teacher and student).

One job per module:

* :mod:`~fdd.sandbox.limits`: :class:`SandboxLimits`, the settings of ``sandbox:`` in one value;
* :mod:`~fdd.sandbox.result`: :class:`ExecResult`, what running one program gave;
* :mod:`~fdd.sandbox.policy`: what a program may import and name, and the AST check;
* :mod:`~fdd.sandbox.confine`: the OS layer of a worker (rlimits, dropping root, Landlock, a
  network namespace), which holds even where the Python-level checks are bypassed;
* :mod:`~fdd.sandbox.worker`: the worker process, which runs programs one by one;
* :mod:`~fdd.sandbox.pool`: :class:`Sandbox`, the parent's pool of workers (clean start, wall
  clock, outage detection).

The sandbox runs programs and reports what they gave; what counts as a program's answer (the PoT
convention: ``solution()``, ``answer``, printed numbers; fences) is fdd/reasoning/programs.py's.

This is a defence for *model-written* code, not a hardened jail for adversaries with kernel
exploits: run real untrusted workloads in a container as well.
"""

from fdd.sandbox.confine import landlock_abi
from fdd.sandbox.limits import OS_LAYER_MODES, OSLayerMode, SandboxLimits
from fdd.sandbox.policy import DEFAULT_MODULES
from fdd.sandbox.pool import Sandbox, SandboxUnavailableError
from fdd.sandbox.result import ERRORS, ExecResult

__all__ = [
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailableError",
    "ExecResult",
    "ERRORS",
    "DEFAULT_MODULES",
    "OS_LAYER_MODES",
    "OSLayerMode",
    "landlock_abi",
]
