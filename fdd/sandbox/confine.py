"""The OS layer of a worker: rlimits, dropping root, Landlock and a network namespace.

These hold even when the Python-level checks (fdd/sandbox/policy.py) are bypassed, e.g. by a
``().__class__.__base__.__subclasses__()`` escape reaching ``os``:

* rlimits: ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` = 0 (no fork),
  ``RLIMIT_NOFILE``, no core files (``RLIMIT_CPU`` is re-armed per program by the worker);
* a worker running as root first drops to ``nobody`` where it can, because root ignores
  ``RLIMIT_NPROC`` and can read anything;
* **Landlock** (kernel >= 5.13, called through ``ctypes``: the PyPI bindings cover file rules
  only, not the TCP rules of ABI 4) lets the worker write only under its temporary root, refuses
  TCP ``connect``/``bind`` (ABI >= 4) and signals to processes outside the sandbox (ABI >= 6);
* a fresh **network namespace** (``unshare(CLONE_NEWNET)``, as root, or inside a new user
  namespace otherwise) leaves the worker no network at all, loopback included.

Each part is used where the kernel and container allow it; :func:`apply_os_layer` reports what
was applied and what is missing. Everything here runs in the worker process, never the parent
(except :func:`landlock_abi`, which restricts nothing).
"""

from __future__ import annotations

# Every module used here is imported at module level: a worker calls these functions around
# dropping to an unprivileged user that may not be able to import anything any more.
import ctypes
import logging
import os
import platform
import resource
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

__all__ = ["set_limits", "drop_privileges", "landlock_abi", "apply_landlock", "unshare_network", "apply_os_layer"]


def set_limits(memory_mb: int) -> None:
    """The worker's rlimits (module docstring); ``memory_mb`` of address space on top of what it maps now."""

    def setl(which: int, soft: int, hard: Optional[int] = None) -> None:
        try:
            cur_soft, cur_hard = resource.getrlimit(which)
            hard = soft if hard is None else hard
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard) if hard != resource.RLIM_INFINITY else cur_hard
                soft = min(soft, hard) if soft != resource.RLIM_INFINITY else hard
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as e:  # pragma: no cover - platform dependent
            log.debug("setrlimit(%s) failed: %s", which, e)

    # Memory: the budget is on top of what the warm interpreter already maps, so it means the same
    # whatever the worker had imported before its limits were set.
    base = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    base = int(line.split()[1]) * 1024
    except OSError:
        pass
    setl(resource.RLIMIT_AS, base + memory_mb * 1024 * 1024)
    setl(resource.RLIMIT_FSIZE, 1024 * 1024)
    setl(resource.RLIMIT_CORE, 0)
    setl(resource.RLIMIT_NPROC, 0)
    setl(resource.RLIMIT_NOFILE, 64)  # the worker holds a pipe and a few std fds, nothing more


def drop_privileges() -> None:
    """Root ignores RLIMIT_NPROC and can read anything: become nobody when we can."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError as e:  # e.g. user namespaces without a mapping for nobody
        log.debug("could not drop privileges: %s", e)


# ---- Landlock and a network namespace
# Landlock's syscalls have the same numbers on every architecture (they came after the unified
# syscall table); constants from linux/landlock.h.
_LL_CREATE, _LL_ADD_RULE, _LL_RESTRICT = 444, 445, 446
_LL_VERSION_FLAG, _LL_RULE_PATH_BENEATH = 1, 1
_LL_FS_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir: left unrestricted
_LL_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1}  # ABI 3 adds truncate; later ones ioctl (left out)
_LL_NET_TCP = (1 << 0) | (1 << 1)  # bind_tcp, connect_tcp (ABI >= 4)
_LL_SCOPE = (1 << 0) | (1 << 1)  # abstract unix sockets, signals (ABI >= 6)
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: not available here). Restricts nothing."""

    if platform.system() != "Linux":
        return 0
    try:
        v = _libc().syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(_LL_VERSION_FLAG))
    except (OSError, AttributeError):
        return 0
    return max(0, int(v))


def apply_landlock(writable: str) -> Dict[str, bool]:
    """Restrict this process for good: writes only beneath ``writable``, no TCP, no signals out."""

    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available (kernel < 5.13, or disabled in this kernel/container)")
    libc = _libc()

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1  # the kernel struct is packed
        _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    fs = _LL_FS_BY_ABI.get(abi, (1 << 15) - 1) & ~_LL_FS_READ
    attr = RulesetAttr(fs, _LL_NET_TCP if abi >= 4 else 0, _LL_SCOPE if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # older kernels refuse fields they do not know

    def check(ret: int, what: str) -> int:
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return ret

    ruleset = check(
        libc.syscall(ctypes.c_long(_LL_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )
    root = os.open(writable, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = PathBeneath(fs, root)
        check(
            libc.syscall(
                ctypes.c_long(_LL_ADD_RULE),
                ctypes.c_int(ruleset),
                ctypes.c_int(_LL_RULE_PATH_BENEATH),
                ctypes.byref(rule),
                ctypes.c_uint32(0),
            ),
            "landlock_add_rule",
        )
        check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        check(
            libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(root)
        os.close(ruleset)
    return {"landlock_fs": True, "landlock_net": abi >= 4, "landlock_scope": abi >= 6}


def unshare_network() -> None:
    """A new, empty network namespace (loopback down): as root directly, else in a user namespace."""

    flags = _CLONE_NEWNET if os.getuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if _libc().unshare(ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def apply_os_layer(mode: str, writable: str, drop_root: bool = True) -> Dict[str, Any]:
    """Apply what the kernel allows of the OS layer (``mode``: auto | require | off, see
    fdd/sandbox/limits.py), dropping root in between where ``drop_root``; returns what was applied
    and, under ``missing``, what was not and why."""
    layers: Dict[str, Any] = {
        "mode": mode,
        "landlock_abi": landlock_abi(),
        "landlock_fs": False,
        "landlock_net": False,
        "landlock_scope": False,
        "netns": False,
        "missing": [],
    }
    if mode != "off":
        try:
            unshare_network()  # before dropping root: it needs CAP_SYS_ADMIN or a user namespace
            layers["netns"] = True
        except OSError as e:
            layers["missing"].append(f"network namespace ({e})")
    if drop_root:
        drop_privileges()
    if mode != "off":
        try:
            layers.update(apply_landlock(writable))
        except OSError as e:
            layers["missing"].append(f"Landlock ({e})")
    return layers
