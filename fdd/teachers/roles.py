"""The teacher's jobs on different backends (``teacher.roles``), behind the one ``Teacher``
interface the loop sees.

Roles: ``rationale`` (seed problems), ``new_rationale`` (problems the teacher generated; they
have no gold), ``harder`` and ``similar`` (``problems`` sets both). Each names a backend config:
a ``fdd/conf/teacher/<name>.yaml``, or a mapping of teacher config fields with a ``backend``
(``config: <name>`` starts from that file; either way the backend's own config class checks the
keys). Unset roles fall back to the top-level teacher config; ``new_rationale`` first falls back to the ``rationale`` role's backend when that one can write rationales for
generated problems (an LLM can, the gold teacher cannot).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from fdd.teachers.base import Reply, Teacher
from fdd.teachers.llm import CONF_TEACHER
from fdd.types import Problem

log = logging.getLogger(__name__)

JOB_ROLES = ("rationale", "new_rationale", "harder", "similar")


def _config_error(msg: str):
    from fdd.config import ConfigError

    return ConfigError(msg)


def _schema_backend(entry) -> Optional[str]:
    """``/teacher_<backend>_schema@_here_`` (a teacher file's schema default) -> ``<backend>``."""
    if isinstance(entry, str):
        m = re.fullmatch(r"/?teacher_(\w+?)_schema(@_here_)?", entry)
        return m.group(1) if m else None
    return None


def _config_class(backend):
    """The backend's config class; the common base for an unknown one (refused by name later)."""
    from fdd.config import TEACHER_CONFIGS, TeacherConfig

    return TEACHER_CONFIGS.get(backend, TeacherConfig)


def load_teacher_config(name: str, overrides: Optional[dict] = None, conf_dir: Path = CONF_TEACHER):
    """``fdd/conf/teacher/<name>.yaml`` (with its prompts) as its backend's config, plus ``overrides``."""
    from omegaconf import OmegaConf

    path = conf_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yaml"))
        raise _config_error(f"teacher role config {name!r}: no {path}; choose one of {known}")
    raw = OmegaConf.load(path)
    defaults = list(raw.pop("defaults", []))
    backend = next((b for b in map(_schema_backend, defaults) if b), None) or raw.get("backend")
    merged = OmegaConf.structured(_config_class(backend))
    for entry in defaults:
        if _schema_backend(entry) or entry == "_self_":
            continue
        if not (hasattr(entry, "keys") and list(entry.keys()) == ["prompts"]):
            raise _config_error(f"teacher role config {name!r}: unsupported defaults entry {entry!r}")
        merged.prompts = OmegaConf.load(conf_dir / "prompts" / f"{entry['prompts']}.yaml")
    try:
        merged = OmegaConf.merge(merged, raw, OmegaConf.create(dict(overrides or {})))
    except Exception as exc:  # noqa: BLE001 - an unknown key or a wrong type, named for the user
        raise _config_error(f"teacher role config {name!r}: {str(exc).splitlines()[0]}") from exc
    return OmegaConf.to_object(merged)


def load_teacher_config_from(fields: dict):
    """A mapping of teacher config fields (with ``backend``), typed and checked like a composed config."""
    from omegaconf import OmegaConf

    try:
        schema = OmegaConf.structured(_config_class(fields.get("backend")))
        return OmegaConf.to_object(OmegaConf.merge(schema, fields))
    except Exception as exc:  # noqa: BLE001
        raise _config_error(f"teacher role config {fields!r}: {str(exc).splitlines()[0]}") from exc


def role_config(value):
    """A role's value (a config name, or a mapping) -> ``TeacherConfig``."""
    from omegaconf import DictConfig, OmegaConf

    from fdd.config import TeacherConfig

    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, str):
        return load_teacher_config(value)
    if isinstance(value, dict):
        value = dict(value)
        if "config" in value:
            return load_teacher_config(value.pop("config"), value)
        try:
            return load_teacher_config_from(value)
        except TypeError as exc:
            raise _config_error(f"teacher role config {value!r}: {exc}") from exc
    if isinstance(value, TeacherConfig):
        return value
    raise _config_error(f"teacher role config {value!r}: expected a config name or a mapping")


def given_roles(cfg) -> Dict[str, object]:
    """The roles set in ``cfg.roles`` (a ``TeacherRoles`` or a mapping): role -> value."""
    roles = cfg.roles or {}
    if dataclasses.is_dataclass(roles):
        roles = dataclasses.asdict(roles)
    return {k: v for k, v in dict(roles).items() if v is not None}


def resolve_roles(cfg) -> Dict[str, object]:
    """Role -> ``TeacherConfig`` for each of JOB_ROLES (``cfg`` is the top-level one)."""
    from fdd.config import TEACHER_BACKENDS, TeacherRoles, check_choices
    from fdd.teachers import teacher_class

    roles = given_roles(cfg)
    base = dataclasses.replace(cfg, roles=TeacherRoles())
    given = {k: role_config(v) for k, v in roles.items()}
    for k, c in given.items():
        if c.backend not in TEACHER_BACKENDS:
            raise _config_error(f"teacher.roles.{k}: backend must be one of {TEACHER_BACKENDS}, got {c.backend!r}")
        if given_roles(c):
            raise _config_error(f"teacher.roles.{k}: a role's config cannot have roles of its own")
        check_choices(c, f"teacher.roles.{k}.")  # validate() walks the main teacher config, not the roles
    out = {"rationale": given.get("rationale", base)}
    if "new_rationale" in given:
        out["new_rationale"] = given["new_rationale"]
    elif teacher_class(out["rationale"].backend).writes_new_rationales:
        out["new_rationale"] = out["rationale"]
    else:
        out["new_rationale"] = base
    for job in ("harder", "similar"):
        out[job] = given.get(job, given.get("problems", base))
    return out


def check_roles(obj) -> None:
    """Fail at start-up (one line) when an augmenting run's problem or new-rationale writer
    cannot do its job, instead of in round 1's augment stage."""
    from fdd.teachers import teacher_class

    a = obj.augmentation
    if a.mode == "none" or obj.rounds < 2:
        return  # nothing is generated
    roles = resolve_roles(obj.teacher)
    needed = {
        "fdd": ("harder", "similar"),
        "random": ("harder", "similar"),
        "easy_only": ("harder",),
        "hard_only": ("similar",),
    }.get(a.mode, ())
    needed = [j for j in needed if (a.per_easy if j == "harder" else a.per_hard) > 0]
    for job in needed:
        if not teacher_class(roles[job].backend).writes_problems:
            raise _config_error(
                f"augmentation.mode={a.mode} needs a teacher that writes {job} problems, but that role's backend "
                f"{roles[job].backend!r} cannot; set teacher.roles.problems=<an LLM teacher config, e.g. openai> "
                f"or augmentation=none"
            )
    if needed and not teacher_class(roles["new_rationale"].backend).writes_new_rationales:
        raise _config_error(
            f"generated problems have no gold, but the new_rationale role's backend {roles['new_rationale'].backend!r} "
            f"needs it; set teacher.roles.new_rationale=<an LLM teacher config, e.g. openai>"
        )


class RoleTeacher(Teacher):
    """Dispatches each job to its role's backend. Roles with the same config share one backend
    (one server pool, one cache). ``usage`` is kept per role: {role: {requests, failed, ...}}."""

    def __init__(self, role_teachers: Dict[str, Teacher], backends: Dict[str, str]) -> None:
        super().__init__()
        self.roles, self.backends = role_teachers, backends

    def _call(self, role: str, fn, *args) -> List[List[Reply]]:
        teacher = self.roles[role]
        before = teacher.usage.snapshot()
        out = fn(teacher, *args)
        after = teacher.usage.snapshot()
        for job, counts in after.items():
            delta = {k: v - before.get(job, {}).get(k, 0) for k, v in counts.items()}
            self.usage.add(role, **{k: v for k, v in delta.items() if v})
        return out

    def by_rule(self, role: str) -> bool:
        return self.roles[role].by_rule(role)

    def write_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        return self._call("rationale", lambda t, *a: t.write_rationales(*a, first=first), problems, k, fmt)

    def write_new_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        return self._call("new_rationale", lambda t, *a: t.write_rationales(*a, first=first), problems, k, fmt)

    def write_harder(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        return self._call("harder", lambda t, *a: t.write_harder(*a), problems, n)

    def write_similar(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        return self._call("similar", lambda t, *a: t.write_similar(*a), problems, n)

    def close(self) -> None:
        for t in {id(t): t for t in self.roles.values()}.values():
            t.close()


def build_role_teacher(cfg, build_one) -> RoleTeacher:
    """``build_one(TeacherConfig) -> Teacher`` for each distinct role config."""
    roles = resolve_roles(cfg)
    built: List[tuple] = []  # (config, teacher): configs are unhashable dataclasses
    teachers = {}
    for role, rc in roles.items():
        match = next((t for c, t in built if c == rc), None)
        if match is None:
            match = build_one(rc)
            built.append((rc, match))
        teachers[role] = match
    log.info("teacher roles: %s", {r: c.backend for r, c in roles.items()})
    return RoleTeacher(teachers, {r: c.backend for r, c in roles.items()})
