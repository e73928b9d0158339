"""Run a stage into the run directory at most once.

A stage is done when its ``DONE.<stage>`` marker exists; the marker is written last, after the
stage's own files (each written atomically), and holds the stage's summary. A killed run
therefore never trusts a half-finished stage, and a rerun skips every finished one.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Dict

from fdd.io import read_json, write_json

log = logging.getLogger(__name__)


class StageRunner:
    def __init__(self, run_dir) -> None:
        self.run_dir = Path(run_dir)

    def round_dir(self, r: int) -> Path:
        d = self.run_dir / f"round_{r}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def marker(self, r: int, stage: str) -> Path:
        return self.round_dir(r) / f"DONE.{stage}"

    def done(self, r: int, stage: str) -> bool:
        return self.marker(r, stage).is_file()

    def run(self, r: int, stage: str, fn: Callable[[Path], Dict]) -> Dict:
        """``fn(round_dir) -> summary``; skipped (summary read back) when already done."""
        m = self.marker(r, stage)
        if m.is_file():
            log.info("round %d: %s already done, skipping", r, stage)
            return read_json(m)
        log.info("round %d: %s ...", r, stage)
        t0 = time.time()
        summary = dict(fn(self.round_dir(r)) or {})
        summary["seconds"] = round(time.time() - t0, 2)
        write_json(m, summary)
        return summary
