"""A sweep's jobs and variants: the jobs its ``multirun.yaml`` asked for, which of them have no run
directory, and each run's variant (the overrides that vary across the sweep, seeds left out)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict, List, Sequence

from fdd.config import key_role
from fdd.runtime.identity import IN_VARIANT

from .read import Run, load_yaml, split_override

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
SWEEP_SYNTAX = ("range(", "choice(", "interval(", "glob(", "[", "{")  # not expanded here


def norm_value(v) -> str:
    """An override value as Hydra means it (``false`` on the command line is ``False`` in a job)."""
    import yaml

    try:
        return str(yaml.safe_load(str(v)))
    except yaml.YAMLError:
        return str(v)


def sweep_overrides(root: Path) -> List[str]:
    """The sweep's command-line overrides as given (``augmentation=fdd,none``), ``[]`` if unknown."""
    cfg = load_yaml(Path(root) / "multirun.yaml")
    try:
        return [str(o) for o in cfg["hydra"]["overrides"]["task"]]
    except (TypeError, KeyError):
        return []


def expected_jobs(root: Path) -> List[Dict[str, str]]:
    """The jobs a multirun asked for (from ``multirun.yaml``'s sweep overrides), ``[]`` if unknown:
    no multirun.yaml, another sweeper than Hydra's basic one (Optuna picks its trials), or sweep
    syntax this reader does not expand (``range(...)``, ``choice(...)``)."""
    cfg = load_yaml(Path(root) / "multirun.yaml")
    try:
        task = cfg["hydra"]["overrides"]["task"]
    except (TypeError, KeyError):
        return []
    sweeper = ((cfg.get("hydra") or {}).get("sweeper") or {}).get("_target_", BASIC_SWEEPER)
    if sweeper != BASIC_SWEEPER:
        return []
    axes = []
    for o in task:
        k, v = split_override(str(o))
        if any(s in v for s in SWEEP_SYNTAX):
            return []  # do not guess
        axes.append([(k, x) for x in v.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def missing_jobs(root: Path, runs: Sequence[Run]) -> List[str]:
    """One line per job the sweep asked for that has no run directory."""
    have = [r.overrides for r in runs]
    return [
        "job never ran or was deleted: " + ",".join(f"{k}={v}" for k, v in job.items())
        for job in expected_jobs(root)
        if not any(all(norm_value(h.get(k)) == norm_value(v) for k, v in job.items()) for h in have)
    ]


def label_variants(runs: Sequence[Run]) -> None:
    """Name each run's variant by the overrides that vary across runs, seeds left out."""
    keys = sorted({k for r in runs for k in r.overrides})
    varying = [
        k
        for k in keys
        if key_role(k) in IN_VARIANT  # seeds and cosmetic keys do not make a variant
        and k not in ("augmentation", "augmentation.mode")
        and len({r.overrides.get(k) for r in runs}) > 1
    ]
    for r in runs:
        other = ",".join(f"{k}={r.overrides.get(k)}" for k in varying)
        r.variant = f"{r.mode} [{other}]" if other else r.mode


def baseline_of(variant: str, mode: str, base: str) -> str:
    """The variant of the same sweep point with augmentation ``base`` (``fdd [rounds=3]`` -> ``none [rounds=3]``)."""
    return base + variant[len(mode) :]
