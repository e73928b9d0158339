"""Data loading: every source becomes a list of :class:`fdd.types.Problem` via ``load_source``.

Loader modules are imported lazily (by dotted path) so that loading GSM8K does not import the
synthetic world, and a missing optional dependency only hurts the loader that needs it.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict

from fdd.data.base import LoadResult
from fdd.data.files import spec_get
from fdd.registries import DATA_LOADERS, resolve

log = logging.getLogger(__name__)

__all__ = ["LOADERS", "get_loader", "load_source", "LoadResult"]

# loader name -> "module:function", kept in fdd.registries (the config validates against it).
LOADERS: Dict[str, str] = DATA_LOADERS


def get_loader(name: str) -> Callable[..., LoadResult]:
    """The ``load(spec, seed)`` function registered under ``name``."""
    if name not in LOADERS:
        raise ValueError(f"unknown loader {name!r}; known: {sorted(LOADERS)}")
    return resolve(LOADERS[name])


def load_source(spec: Any, seed: int = 0) -> LoadResult:
    """Load one source (a SourceConfig or DictConfig), then apply ``shuffle`` and ``limit``.

    The shuffle is seeded with ``random.Random(seed)`` so runs with the same seed see the same
    problems; ``limit`` keeps the first N after the shuffle.
    """
    name = spec_get(spec, "loader")
    result = get_loader(name)(spec, seed)
    total = len(result.problems)
    if spec_get(spec, "shuffle", False):
        random.Random(seed).shuffle(result.problems)
    limit = spec_get(spec, "limit")
    if limit is not None and int(limit) >= 0:
        result.problems = result.problems[: int(limit)]
    skipped = ", ".join(f"{r}: {n}" for r, n in sorted(result.skipped.items())) or "none"
    log.info(
        "%s: loaded %d problems%s; skipped {%s}",
        result.source,
        len(result.problems),
        f" (of {total})" if total != len(result.problems) else "",
        skipped,
    )
    return result
