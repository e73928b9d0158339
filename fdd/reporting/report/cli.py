"""``fdd report DIR [--out OUT]`` (= ``python -m fdd.reporting.report``, ``fdd-report``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional, Sequence

from .markdown import WRITTEN, write_report
from .read import RunGroup, find_groups
from .stats import build_group_report

ROOT_SWEEP = "_sweep"  # DIR itself is a sweep folder and holds other sweeps too
SINGLE_RUNS = "_single_runs"  # runs under DIR that belong to no sweep

DESCRIPTION = """Tables and plots of finished FDD runs, without wandb. DIR is a run directory, a
sweep folder (outputs/<task>/multirun/<sweep>, recognised by its multirun.yaml), or a folder holding
several sweeps (outputs/<task>/multirun): then each sweep gets its own report, never pooled with
another's, in OUT/<sweep>/, and OUT/report.md holds them all."""


def _subfolder(group: RunGroup, base: Path) -> str:
    if not group.sweep:
        return SINGLE_RUNS
    label = group.label(base)
    return ROOT_SWEEP if label == "." else label


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fdd report", description=DESCRIPTION)
    p.add_argument("dir", type=Path, help="a run directory, a sweep folder, or a folder of sweeps")
    p.add_argument("--out", type=Path, default=None, help="where to write the report (default DIR/report)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.dir.is_dir():
        print(f"fdd report: error: {args.dir} is not a directory")
        return 2
    groups = find_groups(args.dir)
    if not any(g.run_dirs for g in groups):
        print(f"fdd report: no run directories under {args.dir}")
        return 1
    out = args.out or args.dir / "report"
    if len(groups) == 1:
        md = write_report(build_group_report(groups[0]), out)
        print(md)
        print(f"written to {out}/ ({WRITTEN})")
        return 0

    listing: List[str] = []
    sections: List[str] = []
    for g in groups:
        sub = out / _subfolder(g, args.dir)
        listing.append(f"- {g.label(args.dir)}: {len(g.run_dirs)} run(s) -> {sub}/report.md")
        sections.append(write_report(build_group_report(g), sub))
    head = (
        f"# FDD reports: {args.dir}\n\n{len(groups)} sweeps, one report each "
        f"(runs of different sweeps are never pooled; `fdd report <sweep folder>` reports one):\n\n"
        + "\n".join(listing)
        + "\n"
    )
    index = "\n".join([head, *sections])
    (out / "report.md").write_text(index, encoding="utf-8")
    print(index)
    print(f"written to {out}/ (report.md: every sweep; one folder per sweep with {WRITTEN})")
    return 0
