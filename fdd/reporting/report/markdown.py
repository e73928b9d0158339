"""The report as text and pictures: markdown tables (accuracy, final round vs baselines, paired
differences, easy/hard flow, what is missing), the CSV files and the plots."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import List, Optional, Sequence

from fdd.types import RoundMetrics

from .read import read_rows
from .stats import FLOW_KEYS, PAIRED_WITH, Report

log = logging.getLogger(__name__)

PAIRED_TITLE = (
    "paired differences, fdd minus control (mean over seeds [95% t-interval]; wins = seeds where fdd is higher)"
)
FINAL_TITLE = (
    "final round: variant minus baseline (mean ± std of per-seed differences; wins = seeds where the variant is higher)"
)
WRITTEN = "report.md, table.csv, final.csv, flow.csv, accuracy.png, easy_hard.png"


def fmt_cell(m: float, s: float, n: int) -> str:
    """``mean ± std`` (just the mean for one seed, ``-`` for none)."""
    if math.isnan(m):
        return "-"
    return f"{m:.3f}" if n <= 1 else f"{m:.3f} ± {s:.3f}"


def table_head(title: str, columns: Sequence[str]) -> List[str]:
    """A markdown table's title, header and rule."""
    return [title + "\n", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]


def accuracy_markdown(rep: Report) -> str:
    """variant x round table per held-out set, cells ``mean ± std`` over seeds."""
    out = []
    for s in rep.sets:
        t = rep.table[rep.table.set == s]
        rounds = sorted(t["round"].unique())
        out.append(f"held-out accuracy on `{s}` (mean ± std over seeds; n = seeds)\n")
        out.append("| variant | " + " | ".join(f"round {r}" for r in rounds) + " | n |")
        out.append("|---" * (len(rounds) + 2) + "|")
        for v in sorted(t["variant"].unique()):
            tv = t[t.variant == v].set_index("round")
            cells = [
                fmt_cell(tv.at[r, "mean"], tv.at[r, "std"], tv.at[r, "n"]) if r in tv.index else "-" for r in rounds
            ]
            out.append(f"| {v} | " + " | ".join(cells) + f" | {int(tv['n'].max())} |")
        out.append("")
    return "\n".join(out)


def final_markdown(rep: Report) -> str:
    if rep.final is None or len(rep.final) == 0:
        return "no finished rounds to compare\n"
    out = table_head(FINAL_TITLE, ["set", "variant", "round", "accuracy", "vs none", "wins", "vs random", "wins"])
    for _, r in rep.final.iterrows():

        def d(base, r=r):
            m, s, wins = r[f"vs_{base}"], r[f"vs_{base}_std"], r[f"vs_{base}_wins"]
            if isinstance(m, float) and math.isnan(m):
                return "-"
            return f"{m:+.3f}" if wins.endswith("/1") else f"{m:+.3f} ± {s:.3f}"

        out.append(
            f"| {r['set']} | {r['variant']} | {r['round']} | {fmt_cell(r['mean'], r['std'], r['n'])} | {d('none')} | "
            f"{r['vs_none_wins']} | {d('random')} | {r['vs_random_wins']} |"
        )
    return "\n".join(out) + "\n"


def paired_markdown(rep: Report) -> str:
    if rep.paired is None or len(rep.paired) == 0:
        return ""
    out = table_head(PAIRED_TITLE, ["variant", "set", "round", *(f"vs {b}" for b in PAIRED_WITH)])
    for (variant, s, rnd), g in rep.paired.groupby(["variant", "set", "round"], sort=True):
        cells = []
        for base in PAIRED_WITH:
            row = g[g.vs == base]
            if row.empty:
                cells.append("-")
                continue
            r = row.iloc[0]
            ci = "" if math.isnan(r["ci_low"]) else f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
            cells.append(f"{r['diff']:+.3f}{ci} {int(r['wins'])}/{int(r['n'])}")
        out.append(f"| {variant} | {s} | {rnd} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def flow_markdown(rep: Report) -> str:
    if rep.flow is None or len(rep.flow) == 0:
        return ""
    cols = [c for c in FLOW_KEYS if c in rep.flow.columns and rep.flow[c].notna().any()]
    out = [
        *table_head(
            "easy/hard flow (means over seeds; easy/hard = training problems solved/unsolved at feedback)",
            ["variant", "round", *cols],
        ),
    ]
    for _, r in rep.flow.iterrows():
        vals = [
            "-"
            if r[c] is None or (isinstance(r[c], float) and math.isnan(r[c]))
            else (f"{r[c]:.2f}" if c == "easy_ratio" else f"{r[c]:.0f}")
            for c in cols
        ]
        out.append(f"| {r['variant']} | {int(r['round'])} | " + " | ".join(vals) + " |")
    return "\n".join(out) + "\n"


def missing_markdown(rep: Report) -> str:
    if not rep.missing:
        return "missing: nothing (every run finished every round it asked for)\n"
    return "missing:\n" + "\n".join(f"- {m}" for m in rep.missing) + "\n"


def report_markdown(rep: Report) -> str:
    """The whole report of one run, sweep or folder of single runs."""
    head = [f"# FDD report: {rep.root}\n"]
    if rep.sweep:
        head.append(f"sweep: `{' '.join(rep.overrides) or '(overrides unknown)'}`\n")
    head.append(f"{len(rep.runs)} run(s), variants: " + ", ".join(sorted({r.variant for r in rep.runs})) + "\n")
    return "\n".join(
        [
            *head,
            accuracy_markdown(rep),
            final_markdown(rep),
            paired_markdown(rep),
            flow_markdown(rep),
            missing_markdown(rep),
        ]
    )


def plot_run(run_dir, out: Optional[Path] = None):
    """Held-out accuracy per round and the easy/hard flow of one run (a matplotlib figure): the
    picture the tracker writes as ``rounds.png`` (fdd.reporting.plots)."""
    from fdd.reporting.plots import rounds_figure

    fig = rounds_figure([RoundMetrics.from_row(r) for r in read_rows(run_dir)])
    if out is not None:
        fig.savefig(out, dpi=110)
    return fig


def plot_report(rep: Report, out: Path) -> List[Path]:
    """accuracy.png (per round per variant, one panel per set) and easy_hard.png (easy ratio per round)."""
    from fdd.reporting.plots import plot_variants

    return plot_variants(rep.table, rep.flow, rep.sets, out)


def write_report(rep: Report, out: Path) -> str:
    """Write table.csv, final.csv, flow.csv, paired.csv, report.md and the plots; returns the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep.table.to_csv(out / "table.csv", index=False)
    if rep.final is not None and len(rep.final):
        rep.final.to_csv(out / "final.csv", index=False)
    if rep.flow is not None and len(rep.flow):
        rep.flow.to_csv(out / "flow.csv", index=False)
    if rep.paired is not None and len(rep.paired):
        rep.paired.to_csv(out / "paired.csv", index=False)
    md = report_markdown(rep)
    (out / "report.md").write_text(md, encoding="utf-8")
    try:
        plot_report(rep, out)
    except Exception as exc:  # noqa: BLE001 -- the tables matter more than the pictures
        log.warning("could not draw the plots: %s", exc)
    return md
