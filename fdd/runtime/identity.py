"""A run is its config: the run directory's name, its fingerprint, and secrets kept out of both.

* ``run_name`` names the run directory from the command's overrides: one folder (no ``/`` or
  ``:``), bounded in length (a hash suffix keeps long names distinct), and without secrets.
* ``check_fingerprint`` hashes the resolved config, minus the keys not in ``IN_FINGERPRINT``, into
  ``<run_dir>/fingerprint.json``; resuming a run whose fingerprint differs refuses and names the
  keys that changed, unless ``resume=force``.
* Each key's role (``DEFINES``, ``COSMETIC``, ``EXTENDS``, ``REPLICATE``) is marked once in the
  schema and passed in as ``role_of`` (``fdd.config.key_role``).
* Secrets are masked by fdd/runtime/secrets.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from fdd.runtime.io import read_json, write_json
from fdd.runtime.secrets import is_secret, override_key

log = logging.getLogger(__name__)

# What a config key is to a run's identity. The schema marks each key once, in its field's
# metadata (fdd/config.py: ``key_role``); the fingerprint, the folder name, the wandb group and the
# report's variants all derive from that one mark, so they cannot disagree.
DEFINES = "defines"  # what the run computes: in the fingerprint, the folder name and the variant
COSMETIC = "cosmetic"  # how a run looks, where it lives, how fast it goes, which server answers: in none
EXTENDS = "extends"  # rounds: a run may grow (rounds=3 after 2 reuses rounds 0-2), so out of the fingerprint only
REPLICATE = "replicate"  # seed: a run of its own (fingerprint, folder) but the same variant (wandb group, report)
ROLES = (DEFINES, COSMETIC, EXTENDS, REPLICATE)
IN_FINGERPRINT = frozenset({DEFINES, REPLICATE})
IN_NAME = frozenset({DEFINES, EXTENDS, REPLICATE})
IN_VARIANT = frozenset({DEFINES, EXTENDS})

RoleOf = Callable[[str], str]


def everything_defines(key: str) -> str:
    """The role function that marks nothing (every key defines the run)."""
    return DEFINES


_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+@%-]+")  # everything else becomes "_" in a folder name
MAX_NAME = 120


# ---------------------------------------------------------------------- the run directory's name
def run_name(overrides: Optional[Sequence[str]] = None, role_of: RoleOf = everything_defines) -> str:
    """One safe folder name from the command's overrides (Hydra's ``override_dirname`` rule:
    sorted, ``,``-joined), without cosmetic or secret keys; ``default`` when none are left."""
    lines = []
    for o in overrides or ():
        key = override_key(o) or ""
        if role_of(key) in IN_NAME and not is_secret(key):
            lines.append(str(o))
    raw = ",".join(sorted(lines))
    return safe_name(raw) if raw else "default"


def safe_name(raw: str, limit: int = MAX_NAME) -> str:
    """``raw`` as one folder name: unsafe characters (``/``, ``:``, spaces, ...) become ``_``;
    longer than ``limit`` it is cut and given a hash of the whole, so distinct runs stay distinct."""
    name = _UNSAFE.sub("_", raw).strip("._") or "default"
    if len(name) > limit or name != raw:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
        if len(name) > limit:
            name = f"{name[: limit - 11]}-{digest}"
        elif name != raw and len(name) + 11 <= limit:
            # two raw names that sanitise to the same text (a/b vs a:b) must not share a folder
            name = f"{name}-{digest}"
    return name


# ---------------------------------------------------------------------- the fingerprint
def flatten(cfg: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"student.epochs": 3, ...}`` from a plain nested config (lists stay values)."""
    if isinstance(cfg, dict):
        out: Dict[str, Any] = {}
        for k, v in cfg.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
        return out
    return {prefix: cfg}


def fingerprint(resolved: Dict, role_of: RoleOf = everything_defines) -> Dict:
    """``{"sha256": ..., "config": {key: value}}`` of a resolved plain config, with the keys that
    define the run (``IN_FINGERPRINT``) and no secret."""
    values = {k: v for k, v in sorted(flatten(resolved).items()) if role_of(k) in IN_FINGERPRINT and not is_secret(k)}
    blob = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return {"sha256": hashlib.sha256(blob.encode()).hexdigest(), "config": json.loads(blob)}


def changed_keys(old: Dict, new: Dict) -> List[str]:
    """``key (old -> new)`` for every value that differs, was added or was removed."""
    out = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            out.append(f"{k} (added: {new[k]!r})")
        elif k not in new:
            out.append(f"{k} (removed, was {old[k]!r})")
        elif old[k] != new[k]:
            out.append(f"{k} ({old[k]!r} -> {new[k]!r})")
    return out


class FingerprintMismatch(RuntimeError):
    """The run directory was made by a different config."""


FINGERPRINT_FILE = "fingerprint.json"


def has_work(run_dir: Path) -> bool:
    """Whether any stage of a run has finished in ``run_dir``."""
    return any(Path(run_dir).glob("round_*/DONE.*"))


def check_fingerprint(run_dir, resolved: Dict, resume: str = "auto", role_of: RoleOf = everything_defines) -> Dict:
    """Write (first run) or compare (resume) ``<run_dir>/fingerprint.json``.

    ``resume``: ``auto`` resumes a run with the same fingerprint and refuses another;
    ``force`` resumes whatever changed (the old fingerprint is kept under ``previous``);
    ``never`` refuses to reuse a run directory that holds finished stages.
    """
    run_dir = Path(run_dir)
    path = run_dir / FINGERPRINT_FILE
    new = fingerprint(resolved, role_of)
    started = has_work(run_dir)
    if resume == "never" and started:
        raise FingerprintMismatch(
            f"{run_dir} already holds a run (resume=never); choose another run directory "
            f"(hydra.run.dir=...) or resume it with resume=auto"
        )
    if path.is_file():
        old = read_json(path)
        if old.get("sha256") != new["sha256"]:
            changes = changed_keys(old.get("config", {}), new["config"])
            if started and resume != "force":
                raise FingerprintMismatch(
                    f"{run_dir} was made with a different config; changed: {'; '.join(changes) or 'unknown keys'}. "
                    f"Rerun with the old values, use another run directory, or pass resume=force to resume anyway"
                )
            if started:
                log.warning("resume=force: resuming %s although its config changed: %s", run_dir, "; ".join(changes))
                new["previous"] = {k: v for k, v in old.items() if k != "previous"}
                new["forced_changes"] = changes
        elif "previous" in old:  # keep the history of a forced resume
            new = old
    elif started:
        log.warning("%s has no %s (made by an older fdd); recording the current config's", run_dir, FINGERPRINT_FILE)
    write_json(path, new)
    return new


def _no_work(p: Path) -> bool:
    """Hydra's files, the fingerprint and empty folders: what a command makes before any work."""
    if p.is_dir() and not p.is_symlink():
        return p.name == ".hydra" or all(_no_work(c) for c in p.iterdir())
    return p.suffix == ".log" or p.name == FINGERPRINT_FILE


def remove_if_empty(run_dir, stop_at=None) -> bool:
    """Remove a run directory that holds nothing but Hydra's own files (``.hydra/``, the job log),
    the fingerprint and empty folders, e.g. after a command failed before any work; then its
    parents while empty, up to ``stop_at``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not all(_no_work(p) for p in run_dir.iterdir()):
        return False
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    stop = Path(stop_at).resolve() if stop_at else Path.cwd().resolve()
    parent = run_dir.resolve().parent
    while parent != stop and stop in parent.parents and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True
