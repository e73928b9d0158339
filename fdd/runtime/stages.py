"""Run a stage into the run directory at most once, and trust a finished one only while intact.

A stage is done when its ``DONE.<stage>`` marker exists; the marker is written last, after the
stage's own files (each written atomically), and holds the stage's summary plus, under
``outputs``, the size, sha256 and (JSON lines) row count of every file the stage wrote. A killed
run therefore never trusts a half-finished stage; a rerun skips every finished one after checking
its outputs, and names a damaged file instead of training on it. ``recompute_from`` removes the
markers of one stage and of every stage after it, so they run again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from fdd.runtime.io import MalformedFileError, read_json, write_json
from fdd.runtime.progress import StagePlan

log = logging.getLogger(__name__)

# The order stages run in within a round (round 0 has only init): recomputing one stage
# recomputes every later one, since each reads what the earlier ones wrote.
STAGE_ORDER = ("init", "train", "evaluate", "feedback", "augment", "metrics")
OUTPUTS = "outputs"  # the marker's key for its outputs' records


class StageOutputError(RuntimeError):
    """A finished stage's output is missing or differs from what its DONE marker recorded."""


def _snapshot(folder: Path) -> Dict[str, Tuple[int, int, int]]:
    """``{relative path: (inode, size, mtime_ns)}`` of the files under ``folder``, without
    markers and hidden temporary files (an atomic write gives a new inode, so it always shows)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith((".", "DONE.")):
                continue
            p = Path(root, name)
            try:
                st = p.stat()
            except FileNotFoundError:  # removed while walking
                continue
            out[p.relative_to(folder).as_posix()] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def file_record(path: Path) -> Dict:
    """Size, sha256 and, for JSON lines, the number of rows of one file."""
    h = hashlib.sha256()
    rows = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    rec = {"bytes": path.stat().st_size, "sha256": h.hexdigest()}
    if path.suffix == ".jsonl":
        with open(path, "rb") as f:
            rows = sum(1 for line in f if line.strip())
        rec["rows"] = rows
    return rec


def damage(path: Path, rec: Dict) -> Optional[str]:
    """What is wrong with ``path`` against its record, or None when it is intact."""
    if not path.is_file():
        return "missing"
    now = file_record(path)
    if "rows" in rec and now.get("rows") != rec["rows"]:
        return f"{now.get('rows')} rows, the marker recorded {rec['rows']}"
    if now["bytes"] != rec.get("bytes"):
        return f"{now['bytes']} bytes, the marker recorded {rec.get('bytes')}"
    if now["sha256"] != rec.get("sha256"):
        return "its content changed (sha256 differs from the marker's)"
    return None


def parse_stage(spec: str) -> Tuple[int, str]:
    """``round_2/augment`` (or ``2/augment``) -> ``(2, "augment")``; a clear error otherwise."""
    m = re.fullmatch(r"(?:round_)?(\d+)/(\w+)", str(spec).strip())
    if not m or m.group(2) not in STAGE_ORDER:
        raise ValueError(f"recompute_from must look like round_<r>/<stage> with a stage of {STAGE_ORDER}, got {spec!r}")
    return int(m.group(1)), m.group(2)


def recompute_from(run_dir, spec: str) -> List[Path]:
    """Remove the DONE markers of stage ``spec`` and of every later stage; returns them."""
    r0, stage0 = parse_stage(spec)
    start = (r0, STAGE_ORDER.index(stage0))
    removed = []
    for m in sorted(Path(run_dir).glob("round_*/DONE.*")):
        rm = re.fullmatch(r"round_(\d+)", m.parent.name)
        stage = m.name[len("DONE.") :]
        if rm and stage in STAGE_ORDER and (int(rm.group(1)), STAGE_ORDER.index(stage)) >= start:
            m.unlink(missing_ok=True)  # another rank of a launched run may have removed it
            removed.append(m)
    if removed:
        log.warning(
            "recompute_from=%s: recomputing %d finished stages (%s)",
            spec,
            len(removed),
            ", ".join(f"{m.parent.name}/{m.name[5:]}" for m in removed),
        )
    return removed


class StageRunner:
    def __init__(self, run_dir, plan: Optional[StagePlan] = None) -> None:
        self.run_dir = Path(run_dir)
        self.plan = plan  # when given, each finished stage logs a progress line with the time left

    def round_dir(self, r: int) -> Path:
        d = self.run_dir / f"round_{r}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def marker(self, r: int, stage: str) -> Path:
        return self.round_dir(r) / f"DONE.{stage}"

    def done(self, r: int, stage: str) -> bool:
        return self.marker(r, stage).is_file()

    def verify(self, r: int, stage: str, marker: Dict) -> None:
        """Raise ``StageOutputError`` naming the first output of a finished stage that is missing
        or differs from its record (markers from before records were kept are trusted)."""
        d = self.round_dir(r)
        for rel, rec in sorted((marker.get(OUTPUTS) or {}).items()):
            what = damage(d / rel, rec)
            if what:
                raise StageOutputError(
                    f"{d / rel} is damaged ({what}); round {r}'s {stage} stage wrote it. Restore it, or rerun with "
                    f"recompute_from=round_{r}/{stage} to recompute from that stage on"
                )

    def run(self, r: int, stage: str, fn: Callable[[Path], Dict]) -> Dict:
        """``fn(round_dir) -> summary``; skipped (summary read back) when already done and intact."""
        m = self.marker(r, stage)
        if m.is_file():
            try:
                summary = read_json(m)
            except MalformedFileError as e:
                raise StageOutputError(
                    f"{e}; rerun with recompute_from=round_{r}/{stage} to recompute from that stage on"
                ) from None
            self.verify(r, stage, summary)
            log.info("round %d: %s already done, skipping", r, stage)
            summary.pop(OUTPUTS, None)
            if self.plan is not None:
                self.plan.record(r, stage, summary.get("seconds"))
            return summary
        log.info("round %d: %s ...", r, stage)
        d = self.round_dir(r)
        before = _snapshot(d)
        t0 = time.time()
        summary = dict(fn(d) or {})
        summary["seconds"] = round(time.time() - t0, 2)
        written = [rel for rel, st in _snapshot(d).items() if before.get(rel) != st]
        write_json(m, {**summary, OUTPUTS: {rel: file_record(d / rel) for rel in sorted(written)}})
        if self.plan is not None:
            self.plan.record(r, stage, summary["seconds"])
            log.info(self.plan.line(r, stage, summary["seconds"]))
        return summary
