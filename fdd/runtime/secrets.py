"""Secrets never leave the process: any config key named like an API key, token, secret or
password is masked in the run's files (``.hydra/*.yaml``, ``multirun.yaml``), its folder name, its
fingerprint, wandb's config and group, and the lines Hydra logs about a sweep's jobs."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, List, Optional, Sequence

MASK = "***"
# The last segment of a key (``teacher.api_key`` -> ``api_key``) names a secret when one of its
# ``_``-separated words is one of these (``max_tokens`` and ``tokenizer`` are not secrets).
SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|apikey|token|secret|password|passwd|credentials?)(?:$|_)", re.I)
_OVERRIDE_KEY = re.compile(r"^[+~]{0,2}([^=]+)=")


def is_secret(key: str) -> bool:
    """Whether a (dotted) config key names a secret."""
    return bool(SECRET_NAME.search(str(key).rsplit(".", 1)[-1].lstrip("+~")))


def override_key(line: str) -> Optional[str]:
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


# ``key=value`` in an override line or a comma-joined override list. A secret's value runs to the
# next blank, or to the next ``,other.key=`` (a sweep's ``teacher.api_key=sk-1,sk-2`` is one value);
# a quoted value runs to its closing quote.
_VALUE = r"""(?:'[^']*'|"[^"]*"|[^,\s])*"""
_KEY_VALUE = re.compile(rf"([\w.+~/@-]*)=({_VALUE}(?:,(?![\w.+~/@-]*=){_VALUE})*)")


def _mask_override_text(text: str) -> str:
    """``teacher.api_key=sk-1,seed=0`` -> ``teacher.api_key=***,seed=0``."""
    return _KEY_VALUE.sub(
        lambda m: f"{m.group(1)}={MASK}" if is_secret(m.group(1)) and m.group(2) else m.group(0),
        text,
    )


# ---------------------------------------------------------------------- Hydra's log lines
# Hydra's launchers and sweepers log each job's overrides (``#0 : teacher.api_key=sk-...``) on the
# console and in any log file; records of loggers under these names are masked as they are made.
HYDRA_LOGGERS = ("hydra", "hydra_plugins")


def mask_log_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with the secret values of ``key=value`` overrides in its message masked."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 -- a malformed record: logging reports it itself
        return record
    masked = _mask_override_text(message)
    if masked != message:
        record.msg, record.args = masked, ()
    return record


class MaskSecretsFilter(logging.Filter):
    """A logging filter (for a handler or a logger) that masks secret overrides; passes every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_log_record(record)
        return True


def mask_hydra_job_lines(prefixes: Sequence[str] = HYDRA_LOGGERS) -> None:
    """Mask secrets in every record of Hydra's loggers (``hydra.*``, ``hydra_plugins.*``: the
    launchers' ``#0 : ...`` job lines), whatever handlers Hydra's logging config installs later.
    A filter on a logger sees only that logger's own records and Hydra replaces handlers per job,
    so this wraps the record factory instead; idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_fdd_masks", None) == tuple(prefixes):
        return
    names = tuple(prefixes)

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        name = record.name
        if any(name == p or name.startswith(p + ".") for p in names):
            mask_log_record(record)
        return record

    make_record._fdd_masks = names  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


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
            key = override_key(line)
            if key and is_secret(key):
                value = line.split("=", 1)[1].strip("'\"")
                if value:
                    out.append(value)
    return out


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
