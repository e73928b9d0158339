"""The limits of a sandbox, in one value: what ``sandbox:`` in the config sets and
:class:`~fdd.sandbox.pool.Sandbox` takes whole. The one place these settings are validated."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

__all__ = ["SandboxLimits", "OSLayerMode", "OS_LAYER_MODES"]

# auto: Landlock and a network namespace where the kernel allows them (logged once where not);
# require: refuse to run without Landlock; off: neither (the AST check and rlimits still apply).
OSLayerMode = Literal["auto", "require", "off"]
OS_LAYER_MODES = get_args(OSLayerMode)


@dataclass(frozen=True)
class SandboxLimits:
    """How many workers, and what one program may use: ``timeout_s`` of wall clock, ``memory_mb``
    of address space on top of the warm worker's, ``cpu_s`` CPU seconds; ``os_layer`` is one of
    :data:`OS_LAYER_MODES`. Invalid values raise ValueError naming the ``sandbox.`` config key."""

    workers: int = 2
    timeout_s: float = 2.0
    memory_mb: int = 512
    cpu_s: int = 2
    os_layer: OSLayerMode = "auto"

    def __post_init__(self) -> None:
        for name, kind in (("workers", int), ("timeout_s", float), ("memory_mb", int), ("cpu_s", int)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        _require(self.timeout_s > 0, f"sandbox.timeout_s must be > 0 seconds, got {self.timeout_s}")
        _require(self.workers >= 1, f"sandbox.workers must be >= 1, got {self.workers}")
        _require(self.cpu_s >= 1, f"sandbox.cpu_s must be >= 1 second, got {self.cpu_s}")
        _require(self.memory_mb >= 16, f"sandbox.memory_mb must be >= 16, got {self.memory_mb}")
        _require(
            self.os_layer in OS_LAYER_MODES,
            f"sandbox.os_layer must be one of {'|'.join(OS_LAYER_MODES)}, got {self.os_layer!r}",
        )

    @classmethod
    def from_config(cls, cfg: Any) -> SandboxLimits:
        """The limits a ``sandbox:`` config section (``fdd.config.SandboxConfig`` or a DictConfig) sets."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)
