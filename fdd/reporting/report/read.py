"""Finding and reading runs and sweeps: a run's metric rows, overrides and config; which sweep
(Hydra multirun folder) each run directory belongs to."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from fdd.types import RoundMetrics

log = logging.getLogger(__name__)

# A sweep folder holds one of these: Hydra's basic sweeper writes multirun.yaml when it starts,
# the Optuna sweeper writes optimization_results.yaml when it ends.
SWEEP_MARKERS = ("multirun.yaml", "optimization_results.yaml")
SKIPPED = ("wandb", "report")  # folders under a sweep that hold no runs


# ---------------------------------------------------------------------- one run
def read_rows(run_dir) -> List[Dict]:
    """The run's metric rows (one per finished round), ``[]`` when there is no metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                row = json.loads(line)
                RoundMetrics.from_row(row)  # a row of the schema, or skipped here rather than failing later
            except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
                log.warning("%s: skipping an unreadable line (%s)", path, exc)
                continue
            rows.append(row)
    return sorted(rows, key=lambda r: r["round"])


def rounds_frame(run_dir):
    """Per-round numbers of one run as a DataFrame (accuracy per held-out set as ``acc/<set>``)."""
    import pandas as pd

    recs = []
    for row in read_rows(run_dir):
        m = RoundMetrics.from_row(row)
        rec = {k: v for k, v in row.items() if not isinstance(v, dict)}
        rec.update({f"acc/{k}": v for k, v in (m.accuracy or {}).items()})
        rec.update({f"rejected/{k}": v for k, v in (m.rejected_by_reason or {}).items()})
        rec.update({f"accepted/{k}": v for k, v in (m.accepted_by_branch or {}).items()})
        recs.append(rec)
    return pd.DataFrame(recs).set_index("round") if recs else pd.DataFrame()


def lineage(run_dir, limit: Optional[int] = 20, branch: Optional[str] = None):
    """Problems the teacher added (round >= 1) with their ancestry: parent question -> question.

    ``chain`` lists the ancestors' branches back to the seed problem (``seed > hard-similar > ...``).
    """
    import pandas as pd

    run_dir = Path(run_dir)
    dists = sorted(run_dir.glob("round_*/distill.jsonl"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not dists:
        return pd.DataFrame(columns=["round", "branch", "parent_question", "question", "answer", "chain"])
    items = {}
    with open(dists[-1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                it = json.loads(line)
                items.setdefault(it["id"], it)
    recs = []
    for it in items.values():
        if it.get("round", 0) < 1 or (branch and it.get("branch") != branch):
            continue
        chain, cur, seen = [it.get("branch")], it, set()
        while cur.get("parent_id") in items and cur["parent_id"] not in seen:
            seen.add(cur["parent_id"])
            cur = items[cur["parent_id"]]
            chain.append(cur.get("branch"))
        parent = items.get(it.get("parent_id"), {})
        recs.append(
            {
                "round": it.get("round"),
                "branch": it.get("branch"),
                "parent_question": parent.get("question"),
                "question": it["question"],
                "answer": it.get("answer"),
                "chain": " > ".join(reversed(chain)),
            }
        )
    df = pd.DataFrame(recs)
    if df.empty:
        return df
    df = df.sort_values(["round", "branch"], kind="stable").reset_index(drop=True)
    return df.head(limit) if limit else df


@dataclass
class Run:
    path: Path
    overrides: Dict[str, str]
    mode: str
    seed: Optional[int]
    rounds: Optional[int]  # rounds asked for by its config
    rows: List[Dict] = field(default_factory=list)
    variant: str = ""

    @property
    def finished_rounds(self) -> int:
        return max((RoundMetrics.from_row(r).round for r in self.rows), default=-1)


def load_yaml(path: Path):
    """A YAML file as plain data (interpolations left as written), ``None`` if absent or unreadable."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None
    except Exception as exc:  # noqa: BLE001 -- a damaged file is reported, not fatal
        log.warning("%s: unreadable (%s)", path, exc)
        return None


def split_override(o: str) -> Tuple[str, str]:
    """``key=value`` of a command-line override, without its ``+``/``~`` prefix."""
    k, _, v = o.partition("=")
    return k.lstrip("+~"), v


def load_run(path: Path) -> Run:
    ov = load_yaml(path / ".hydra" / "overrides.yaml") or []
    overrides = dict(split_override(o) for o in ov if "=" in o)
    cfg = load_yaml(path / ".hydra" / "config.yaml") or {}
    mode = (
        (cfg.get("augmentation") or {}).get("mode")
        or overrides.get("augmentation.mode")
        or overrides.get("augmentation")
        or "fdd"
    )
    seed = cfg.get("seed", overrides.get("seed"))
    rounds = cfg.get("rounds", overrides.get("rounds"))
    return Run(
        path,
        overrides,
        str(mode),
        int(seed) if seed is not None else None,
        int(rounds) if rounds is not None else None,
        read_rows(path),
    )


# ---------------------------------------------------------------------- finding runs and sweeps
def is_run(d: Path) -> bool:
    """A run directory: it has metrics.jsonl, round_0/ or Hydra's .hydra/config.yaml."""
    return (d / "metrics.jsonl").is_file() or (d / "round_0").is_dir() or (d / ".hydra" / "config.yaml").is_file()


def is_sweep(d: Path) -> bool:
    """A sweep folder: Hydra wrote its multirun.yaml (or the Optuna sweeper its results) there."""
    return any((d / m).is_file() for m in SWEEP_MARKERS)


def _searched(root: Path):
    """Folders at or under ``root``, hidden ones and report/wandb folders left out, in order."""
    for d in sorted(root.rglob("*")):
        if d.is_dir() and not any(p.startswith(".") or p in SKIPPED for p in d.relative_to(root).parts):
            yield d


def find_run_dirs(root: Path) -> List[Path]:
    """Run directories at or under ``root`` (a run directory's own subfolders are not searched)."""
    root = Path(root)
    if is_run(root):
        return [root]
    found: List[Path] = []
    for d in _searched(root):
        if not any(parent in found for parent in d.parents) and is_run(d):
            found.append(d)
    return found


def sweep_of(run_dir: Path) -> Optional[Path]:
    """The sweep folder a run directory is a job of (its parent: Hydra's ``hydra.sweep.subdir`` is one
    folder), ``None`` for a single run. The parent's marker says so, or, for a sweep still running
    under the Optuna sweeper, the job's own ``.hydra/hydra.yaml`` (``mode: MULTIRUN``)."""
    parent = Path(run_dir).parent
    if is_sweep(parent):
        return parent
    hydra_cfg = load_yaml(Path(run_dir) / ".hydra" / "hydra.yaml") or {}
    mode = (hydra_cfg.get("hydra") or {}).get("mode") if isinstance(hydra_cfg, dict) else None
    return parent if str(mode) in ("MULTIRUN", "RunMode.MULTIRUN") else None


@dataclass
class RunGroup:
    """Runs reported together: the jobs of one sweep, or the single runs under a folder."""

    root: Path  # the sweep folder; for single runs, the folder that was searched
    run_dirs: List[Path]
    sweep: bool

    def label(self, base: Path) -> str:
        """``root`` relative to ``base`` (``.`` for ``base`` itself); single runs say so."""
        if not self.sweep:
            return "runs outside any sweep"
        return "." if self.root == base else str(self.root.relative_to(base))


def find_groups(root) -> List[RunGroup]:
    """The sweeps at or under ``root``, each with its run directories (sorted by folder), then the
    run directories that belong to no sweep as one group. A run directory given as ``root`` is one
    group of its own. Runs of different sweeps are never in one group."""
    root = Path(root)
    if is_run(root):
        return [RunGroup(root, [root], sweep=False)]
    sweeps: Dict[Path, List[Path]] = {d: [] for d in [root, *_searched(root)] if is_sweep(d)}
    single: List[Path] = []
    for d in find_run_dirs(root):
        s = sweep_of(d)
        if s is not None and (s == root or root in s.parents):
            sweeps.setdefault(s, []).append(d)
        else:
            single.append(d)
    groups = [RunGroup(s, runs, sweep=True) for s, runs in sorted(sweeps.items())]
    if single:
        groups.append(RunGroup(root, single, sweep=False))
    return groups
