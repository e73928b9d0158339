"""Data loading: every source becomes a list of :class:`fdd.types.Problem` via ``load_source``.

Loader modules are imported lazily (by dotted path) so that loading GSM8K does not import the
synthetic world, and a missing optional dependency only hurts the loader that needs it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Dict, List, Tuple

from fdd.data.base import LoadResult
from fdd.data.files import DataUnavailableError, spec_get
from fdd.runtime.registries import DATA_LOADERS, resolve
from fdd.runtime.seeding import shuffle_rng
from fdd.types import Problem

log = logging.getLogger(__name__)

__all__ = ["LOADERS", "get_loader", "load_source", "load_problems", "drop_overlap", "hub_ids", "LoadResult"]

# loader name -> "module:function", kept in fdd.runtime.registries (the config validates against it).
LOADERS: Dict[str, str] = DATA_LOADERS


def get_loader(name: str) -> Callable[..., LoadResult]:
    """The ``load(spec, seed)`` function registered under ``name``."""
    if name not in LOADERS:
        raise ValueError(f"unknown loader {name!r}; known: {sorted(LOADERS)}")
    return resolve(LOADERS[name])


def hub_ids(dataset) -> List[str]:
    """The Hub ids a run's sources read (train first, no repeats): a source's ``hub_name``, else its
    loader module's ``HUB_NAME``; a source read from a local ``path`` (or synthetic) has none."""
    ids: List[str] = []
    for spec in [spec_get(dataset, "train"), *dict(spec_get(dataset, "eval") or {}).values()]:
        hub = spec_get(spec, "hub_name")
        if not hub and not spec_get(spec, "path"):
            module = sys.modules[get_loader(spec_get(spec, "loader")).__module__]
            hub = getattr(module, "HUB_NAME", None)
        if hub and hub not in ids:
            ids.append(hub)
    return ids


def load_source(spec: Any, seed: int = 0) -> LoadResult:
    """Load one source (a SourceConfig or DictConfig), then apply ``shuffle`` and ``limit``.

    The shuffle is seeded with ``fdd.runtime.seeding.shuffle_rng(seed)`` so runs with the same seed see the same
    problems; ``limit`` keeps the first N after the shuffle.
    """
    name = spec_get(spec, "loader")
    result = get_loader(name)(spec, seed)
    total = len(result.problems)
    if spec_get(spec, "shuffle", False):
        shuffle_rng(seed).shuffle(result.problems)
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


def load_problems(cfg) -> Tuple[List[Problem], Dict[str, List[Problem]]]:
    """The training problems and the held-out sets of ``cfg.dataset``, held-out questions that are
    also training questions dropped (a held-out question the student trains on measures nothing)."""
    train = load_source(cfg.dataset.train, seed=cfg.seed).problems
    if not train:
        raise DataUnavailableError(f"dataset {cfg.dataset.name!r}: the training source yielded no problems")
    evals = {name: load_source(spec, seed=cfg.seed).problems for name, spec in cfg.dataset.eval.items()}
    evals = drop_overlap(train, evals)
    empty = sorted(name for name, problems in evals.items() if not problems)
    if empty:  # its accuracy would read 0.000 of 0 problems, every round
        raise DataUnavailableError(
            f"dataset {cfg.dataset.name!r}: held-out set(s) {', '.join(empty)} yielded no problems "
            f"(see the loader's skip counts above); fix the source or remove it with ~dataset.eval.<name>"
        )
    return train, evals


def drop_overlap(train: List[Problem], evals: Dict[str, List[Problem]]) -> Dict[str, List[Problem]]:
    """Each held-out set without the questions that are also training questions (case and
    whitespace ignored); what was dropped is logged per set."""
    seen = {_normalise(p.question) for p in train}
    kept = {}
    for name, problems in evals.items():
        kept[name] = [p for p in problems if _normalise(p.question) not in seen]
        if len(kept[name]) < len(problems):
            log.warning(
                "held-out set %s: dropped %d problems that are also training problems",
                name,
                len(problems) - len(kept[name]),
            )
    return kept


def _normalise(question: str) -> str:
    return " ".join(question.lower().split())
