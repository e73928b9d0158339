"""The GPU's memory plan: one heavy tenant at a time.

Every engine that holds GPU memory outside the student's fit (the vLLM teacher, the student's
vLLM engine, the student's generation model) lives in an :class:`EngineSlot`. A slot builds its
engine lazily, at the first request that needs it, and registers with the process's
:class:`GpuPlan`. Taking a slot (``slot.get``) first releases every other live slot, so two
engines never hold memory together; the loop calls :func:`release_all` before each fit (and
after a round's student generation), so the fit has the card to itself.

A slot releases its engine in one of two ways (``mode``):

* ``release``: the engine is shut down and dropped; the next request builds it again.
* ``sleep``: ``engine.sleep(level=1)`` (vLLM's sleep mode: weights offloaded to CPU memory, KV
  cache discarded), then ``engine.wake_up()`` at the next request -- much faster than a rebuild
  for a large teacher, at the cost of host memory. Engines without ``sleep`` are released.

An engine that cannot be built (out of memory, bad engine arguments, an unsupported model) is an
:class:`EngineBuildError`: a setup error reported in one line (exit 2), never a teacher outage.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import weakref
from typing import Any, Callable, Iterator, List, Optional, Tuple

from fdd.runtime.modeling import ModelUnavailableError

log = logging.getLogger(__name__)

RELEASE_MODES = ("release", "sleep")


class EngineBuildError(ModelUnavailableError):
    """A GPU engine could not be built; the message names the engine, the model and the cause."""


def free_device_cache() -> None:
    """Give freed blocks back to the driver, so the next tenant (another process included) sees them."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


@contextlib.contextmanager
def only_this_device(local_rank: Optional[int]) -> Iterator[None]:
    """While an engine is built, show its worker process only this rank's GPU (vLLM starts its
    engine in a child process that uses the first visible device). No-op outside DDP."""
    if local_rank is None:
        yield
        return
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = old.split(",") if old else None
    os.environ["CUDA_VISIBLE_DEVICES"] = (
        visible[local_rank] if visible and local_rank < len(visible) else str(local_rank)
    )
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


class GpuPlan:
    """The slots of one process and the log of what happened to them (``events``: (action, slot))."""

    def __init__(self) -> None:
        self._slots: weakref.WeakSet[EngineSlot] = weakref.WeakSet()  # a slot's owner decides its life
        self.events: List[Tuple[str, str]] = []

    @property
    def slots(self) -> List[EngineSlot]:
        return list(self._slots)

    def register(self, slot: EngineSlot) -> None:
        self._slots.add(slot)

    def record(self, action: str, name: str) -> None:
        self.events.append((action, name))
        log.info("gpu plan: %s %s", action, name)

    def make_room(self, keep: EngineSlot) -> None:
        """Release every live slot but ``keep``."""
        for slot in self.slots:
            if slot is not keep and slot.live:
                slot.release()

    def release_all(self, reason: str = "") -> None:
        """Release every live slot (e.g. before a fit)."""
        if any(s.live for s in self.slots):
            log.info("gpu plan: releasing all engines (%s)", reason or "requested")
        for slot in self.slots:
            if slot.live:
                slot.release()


PLAN = GpuPlan()  # the process's plan; ranks launched for DDP each have their own


def release_all(reason: str = "") -> None:
    """Release every engine of this process's plan (the loop calls it around fits)."""
    PLAN.release_all(reason)


class EngineSlot:
    """Holds at most one engine, built on demand and released when another tenant needs the GPU.

    ``get(key, build)`` returns the engine for ``key`` (e.g. a checkpoint folder), building it
    with ``build()`` when the slot is empty or holds another key, waking it when asleep."""

    def __init__(self, name: str, mode: str = "release", plan: Optional[GpuPlan] = None) -> None:
        if mode not in RELEASE_MODES:
            raise ValueError(f"engine release mode must be one of {RELEASE_MODES}, got {mode!r}")
        self.name, self.mode = name, mode
        self.plan = plan or PLAN
        self.plan.register(self)
        self.key: Any = None
        self.engine: Any = None
        self.asleep = False

    @property
    def live(self) -> bool:
        """Holds GPU memory now (built and awake)."""
        return self.engine is not None and not self.asleep

    def get(self, key: Any, build: Callable[[], Any]) -> Any:
        if self.engine is not None and self.key != key:
            self.close()  # another model (e.g. the next round's checkpoint): its memory is not reusable
        self.plan.make_room(self)
        if self.engine is None:
            self.plan.record("build", self.name)
            try:
                self.engine = build()
            except (ImportError, ModelUnavailableError):
                raise  # already say what to do
            except Exception as exc:  # noqa: BLE001 - translated into one actionable line
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise EngineBuildError(
                    f"could not start the {self.name} engine for {key}: {type(exc).__name__}: {first} "
                    f"(check the model path and the engine arguments, e.g. gpu_memory_utilization, "
                    f"max_model_len)"
                ) from exc
            self.key, self.asleep = key, False
        elif self.asleep:
            self.plan.record("wake", self.name)
            self.engine.wake_up()
            self.asleep = False
        return self.engine

    def release(self) -> None:
        """Free the GPU for another tenant: sleep (when asked and offered) or shut down."""
        if not self.live:
            return
        if self.mode == "sleep" and callable(getattr(self.engine, "sleep", None)):
            self.plan.record("sleep", self.name)
            self.engine.sleep(level=1)
            self.asleep = True
            free_device_cache()
            return
        self.close()

    def close(self) -> None:
        """Shut the engine down for good (sleeping or not)."""
        if self.engine is None:
            return
        self.plan.record("release", self.name)
        engine, self.engine, self.key, self.asleep = self.engine, None, None, False
        _shutdown(engine)
        del engine
        free_device_cache()


def _shutdown(engine: Any) -> None:
    """Stop a vLLM engine's worker process now rather than whenever the garbage collector runs."""
    core = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
    stop = getattr(core, "shutdown", None) or getattr(engine, "shutdown", None)
    if callable(stop):
        try:
            stop()
        except Exception:  # noqa: BLE001 - the engine is being dropped anyway
            log.warning("engine shutdown failed; its memory is freed when the process ends", exc_info=True)
