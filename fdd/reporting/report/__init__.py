"""Summarise finished FDD runs without wandb: ``fdd report DIR [--out OUT]`` (also
``python -m fdd.reporting.report DIR``).

DIR is one run directory, one sweep folder (a Hydra multirun: ``multirun.yaml`` and one run
directory per job), or a folder holding several sweeps, each reported on its own: runs of
different sweeps are never pooled. Each run is read from its ``metrics.jsonl`` and
``.hydra/{overrides,config}.yaml``; runs of a sweep that differ only by ``seed`` (or by cosmetic
keys) form one variant. Prints held-out accuracy per variant x round x set (mean ± std over
seeds), the final-round comparison of every variant with ``none`` and ``random``, the paired
differences of ``fdd`` with each control, and what is missing (jobs of the sweep with no run
directory, runs that finished fewer rounds than asked); writes ``table.csv``, ``report.md``,
``accuracy.png`` and ``easy_hard.png`` to ``--out`` (default ``DIR/report``).

Modules: ``read`` (finding and reading runs and sweeps), ``sweep`` (a sweep's jobs, variant
labels), ``stats`` (means, std, paired differences vs the baselines), ``markdown`` (tables, CSV,
plots), ``cli``. The one-run helpers (``rounds_frame``, ``plot_run``, ``lineage``) are what
``notebooks/fdd_run.ipynb`` uses.
"""

from .cli import main
from .markdown import (
    accuracy_markdown,
    final_markdown,
    flow_markdown,
    missing_markdown,
    paired_markdown,
    plot_report,
    plot_run,
    report_markdown,
    table_head,
    write_report,
)
from .read import (
    Run,
    RunGroup,
    find_groups,
    find_run_dirs,
    is_sweep,
    lineage,
    load_run,
    read_rows,
    rounds_frame,
    sweep_of,
)
from .stats import (
    BASELINES,
    FLOW_KEYS,
    PAIRED_WITH,
    Report,
    SeveralSweeps,
    build_group_report,
    build_report,
    build_reports,
    flow_numbers,
    paired_ci,
)
from .sweep import expected_jobs, label_variants, missing_jobs, sweep_overrides

__all__ = [
    "BASELINES",
    "FLOW_KEYS",
    "PAIRED_WITH",
    "Report",
    "Run",
    "RunGroup",
    "SeveralSweeps",
    "accuracy_markdown",
    "build_group_report",
    "build_report",
    "build_reports",
    "expected_jobs",
    "final_markdown",
    "find_groups",
    "find_run_dirs",
    "flow_markdown",
    "flow_numbers",
    "is_sweep",
    "label_variants",
    "lineage",
    "load_run",
    "main",
    "missing_jobs",
    "missing_markdown",
    "paired_ci",
    "paired_markdown",
    "plot_report",
    "plot_run",
    "read_rows",
    "report_markdown",
    "rounds_frame",
    "sweep_of",
    "sweep_overrides",
    "table_head",
    "write_report",
]
