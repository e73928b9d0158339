"""A run is its config: the run directory's name, its fingerprint, and secrets kept out of both.

* ``run_name`` names the run directory from the command's overrides: one folder (no ``/`` or
  ``:``), bounded in length (a hash suffix keeps long names distinct), and without secrets.
* ``check_fingerprint`` hashes the resolved config, minus the keys in ``COSMETIC_KEYS``, into
  ``<run_dir>/fingerprint.json``; resuming a run whose fingerprint differs refuses and names the
  keys that changed, unless ``resume=force``.
* ``mask_secrets`` / ``MaskSecretsCallback`` keep any key named like an API key, token, secret
  or password out of ``.hydra/*.yaml``, ``multirun.yaml``, the fingerprint and wandb's config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from fdd.runtime.io import read_json, write_json

log = logging.getLogger(__name__)

MASK = "***"
# The last segment of a key (``teacher.api_key`` -> ``api_key``) names a secret when one of its
# ``_``-separated words is one of these (``max_tokens`` and ``tokenizer`` are not secrets).
SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|apikey|token|secret|password|passwd|credentials?)(?:$|_)", re.I)

# Keys (dotted prefixes) that change how a run looks or how fast it goes, not what it computes:
# they are left out of the fingerprint, so changing them never blocks a resume.
COSMETIC_KEYS = (
    "dry_run",
    "resume",  # how to resume is not what is computed
    "recompute_from",
    "logger",  # wandb on/off, mode, project, tags: tracking only
    "paths",  # where the run, the cache and the logs live
    "teacher.cache_dir",
    "teacher.concurrency",  # requests in flight; every reply is cached per request
    "teacher.timeout_s",
    "teacher.stream",  # how a reply travels, not what it says
    "teacher.max_retries",
    "teacher.base_urls",  # the same model may be served from elsewhere
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "student.num_workers",  # data-loader processes
    "sandbox.workers",  # program-running processes
    "sandbox.os_layer",  # a safety layer: honest programs give the same answers with or without it
    "teacher.retry_failed",  # how to treat failed teacher requests: rerunning with them resumes the run
    "teacher.max_failed_share",
    "teacher.cache_on_corrupt",
    "final",  # final/ is rebuilt when its selection rule changes (fdd/reporting/final.py)
    # Not cosmetic, but a run may grow: rounds=3 after rounds=2 reuses rounds 0-2 as they are
    # (each stage depends only on earlier rounds), so extending a run is not a changed config.
    "rounds",
)

_OVERRIDE_KEY = re.compile(r"^[+~]{0,2}([^=]+)=")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+@%-]+")  # everything else becomes "_" in a folder name
MAX_NAME = 120


def is_secret(key: str) -> bool:
    """Whether a (dotted) config key names a secret."""
    return bool(SECRET_NAME.search(str(key).rsplit(".", 1)[-1].lstrip("+~")))


def _override_key(line: str) -> Optional[str]:
    m = _OVERRIDE_KEY.match(str(line))
    return m.group(1) if m else None


def mask_secrets(obj: Any) -> Any:
    """A copy of a plain config (dicts, lists, scalars) with secret values and ``key=value``
    override strings of secret keys replaced by ``***``."""
    if isinstance(obj, dict):
        return {k: (MASK if is_secret(k) and obj[k] not in (None, "") else mask_secrets(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask_secrets(v) for v in obj]
    if isinstance(obj, str):
        return _mask_override_text(obj)
    return obj


def _mask_override_text(text: str) -> str:
    """``teacher.api_key=sk-1,seed=0`` -> ``teacher.api_key=***,seed=0``."""
    return re.sub(
        r"([\w.+~-]*)=([^,\s]*)",
        lambda m: f"{m.group(1)}={MASK}" if is_secret(m.group(1)) and m.group(2) else m.group(0),
        text,
    )


def secret_values(obj: Any) -> List[str]:
    """Every secret value in a plain config (for masking them wherever else they were copied)."""
    out: List[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if is_secret(k) and isinstance(v, (str, int)) and str(v) not in ("", MASK):
                out.append(str(v))
            else:
                out.extend(secret_values(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(secret_values(v))
    elif isinstance(obj, str):
        for line in obj.split(","):
            key = _override_key(line)
            if key and is_secret(key):
                value = line.split("=", 1)[1].strip("'\"")
                if value:
                    out.append(value)
    return out


# ---------------------------------------------------------------------- the run directory's name
def run_name(overrides: Optional[Sequence[str]] = None, exclude_keys: Optional[Sequence[str]] = None) -> str:
    """One safe folder name from the command's overrides (Hydra's ``override_dirname`` rule:
    sorted, ``,``-joined), without excluded or secret keys; ``default`` when none are left."""
    exclude = set(exclude_keys or ())
    lines = sorted(
        str(o)
        for o in (overrides or ())
        if (_override_key(o) or "").lstrip("+~") not in exclude and not is_secret(_override_key(o) or "")
    )
    raw = ",".join(lines)
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


def _cosmetic(key: str, cosmetic: Iterable[str]) -> bool:
    return any(key == c or key.startswith(c + ".") for c in cosmetic)


def fingerprint(resolved: Dict, cosmetic: Iterable[str] = COSMETIC_KEYS) -> Dict:
    """``{"sha256": ..., "config": {key: value}}`` of a resolved plain config, without cosmetic
    and secret keys."""
    cosmetic = tuple(cosmetic)
    values = {k: v for k, v in sorted(flatten(resolved).items()) if not _cosmetic(k, cosmetic) and not is_secret(k)}
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


def check_fingerprint(run_dir, resolved: Dict, resume: str = "auto") -> Dict:
    """Write (first run) or compare (resume) ``<run_dir>/fingerprint.json``.

    ``resume``: ``auto`` resumes a run with the same fingerprint and refuses another;
    ``force`` resumes whatever changed (the old fingerprint is kept under ``previous``);
    ``never`` refuses to reuse a run directory that holds finished stages.
    """
    run_dir = Path(run_dir)
    path = run_dir / FINGERPRINT_FILE
    new = fingerprint(resolved)
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


# ---------------------------------------------------------------------- Hydra's own files
def mask_file(path: Path, secrets: Sequence[str]) -> bool:
    """Mask secrets in one YAML file Hydra wrote (structure first, then any copy of a value)."""
    from omegaconf import OmegaConf

    path = Path(path)
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        masked_text = OmegaConf.to_yaml(OmegaConf.create(mask_secrets(data)))
    except Exception:  # noqa: BLE001 -- unparsable: fall back to masking the text
        masked_text = text
    for value in sorted(set(secrets), key=len, reverse=True):
        masked_text = masked_text.replace(value, MASK)
    if masked_text != text:
        from fdd.runtime.io import atomic_write_text

        atomic_write_text(path, masked_text)
        return True
    return False


def _secrets_of(config) -> List[str]:
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(config, resolve=False)
    values = secret_values(plain)
    try:  # a secret may come through an interpolation; its resolved value must not be copied either
        values += secret_values(OmegaConf.to_container(config, resolve=True))
    except Exception:  # noqa: BLE001 -- unresolvable outside a job: the plain values suffice
        pass
    return [v for v in values if not v.startswith("${")]


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover -- Hydra is a dependency; keeps this module importable alone
    _HydraCallback = object  # type: ignore[misc,assignment]


class MaskSecretsCallback(_HydraCallback):
    """Rewrites ``.hydra/{config,hydra,overrides}.yaml`` (and a sweep's ``multirun.yaml``) with
    secrets masked, right after Hydra wrote them and before the job starts."""

    def on_job_start(self, config, **kwargs: Any) -> None:
        secrets = _secrets_of(config)
        h = config.hydra
        if h.output_subdir is not None:
            folder = Path(h.runtime.output_dir) / str(h.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                mask_file(folder / name, secrets)
        self._mask_sweep(config, secrets)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        self._mask_sweep(config, _secrets_of(config))

    @staticmethod
    def _mask_sweep(config, secrets) -> None:
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
        except Exception:  # noqa: BLE001 -- no sweep dir outside a multirun
            return
        mask_file(sweep_dir / "multirun.yaml", secrets)


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
