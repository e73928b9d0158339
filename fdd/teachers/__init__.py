"""Teacher backends, chosen by ``teacher.backend`` and imported only when chosen (so vLLM, torch
or the openai client are needed only by the runs that use them)."""

from __future__ import annotations

import logging
from typing import Optional

from fdd.runtime.registries import TEACHER_BACKENDS, resolve
from fdd.teachers.base import Reply, Teacher, Usage

log = logging.getLogger(__name__)


def teacher_class(backend: str) -> type:
    """The class registered for ``backend`` (imported now)."""
    try:
        target = TEACHER_BACKENDS[backend].teacher
    except KeyError:
        raise ValueError(f"unknown teacher backend {backend!r}; choose one of {sorted(TEACHER_BACKENDS)}") from None
    return resolve(target)


def build_teacher(cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> Teacher:
    """The teacher described by ``cfg`` (a ``TeacherConfig``, or a DictConfig of one).

    ``cache_dir`` is the run's shared cache folder (``paths.cache_dir``); ``cfg.cache_dir``, when
    set, takes precedence."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_object(cfg)
    except ImportError:  # pragma: no cover - omegaconf is a core dependency
        pass
    if isinstance(cfg, dict):  # a DictConfig composed without the schema, or a plain dict
        from fdd.config import TeacherConfig

        cfg = TeacherConfig(**cfg)  # the backend's own config class (TeacherConfig dispatches on backend)
    from fdd.teachers.roles import build_role_teacher, given_roles

    if given_roles(cfg):  # jobs split over backends: one Teacher dispatching them
        return build_role_teacher(cfg, lambda rc: build_teacher(rc, cache_dir=cache_dir, seed=seed))
    cls = teacher_class(cfg.backend)
    log.info(
        "teacher: backend=%s model=%s", cfg.backend, getattr(cfg, "model", None) or getattr(cfg, "gguf_file", None)
    )
    return cls(cfg, cache_dir=cache_dir, seed=seed)


__all__ = ["Reply", "Teacher", "Usage", "build_teacher", "teacher_class"]
