"""Hydra plugins a command line asks for, named with the extra that installs them when absent."""

from __future__ import annotations

import importlib.util
import sys
from typing import Optional, Sequence

# Hydra plugins a config can ask for -> (module that provides it, the extra that installs it)
PLUGINS = {
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
    "hparams_search=": ("hydra_plugins.hydra_optuna_sweeper", "optuna"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is absent
        return False


def missing_plugin(argv: Sequence[str]) -> Optional[str]:
    """A one-line message naming the extra to install when an override needs an absent plugin."""
    for arg in argv:
        for prefix, (module, extra) in PLUGINS.items():
            if arg.lstrip("+").startswith(prefix) and not _installed(module):
                return f'fdd: error: {arg} needs the Hydra plugin {module.split(".")[-1]}: pip install -e ".[{extra}]"'
    return None


def check_plugins(argv: Sequence[str]) -> None:
    msg = missing_plugin(argv)
    if msg:
        print(msg, file=sys.stderr)
        raise SystemExit(2)
