"""The plots of FDD's per-round numbers, one implementation for every picture: ``rounds.png`` of a
run (written by the tracker each round, drawn by ``fdd.reporting.report.plot_run`` in the notebook) and the
report's ``accuracy.png`` / ``easy_hard.png`` over variants. Rows come as RoundMetrics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fdd.types import RoundMetrics

# label -> (rounds, values, error bars or None)
Series = Dict[str, Tuple[Sequence[int], Sequence[float], Optional[Sequence[float]]]]


def _pyplot(headless: bool):
    import matplotlib

    if headless:  # files written during a run or by the report CLI: no display needed
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_panel(ax, series: Series, title: str) -> None:
    """Held-out accuracy per round, one line per label (with error bars where given)."""
    rounds = sorted({int(x) for xs, _, _ in series.values() for x in xs})
    for label in sorted(series):
        xs, ys, err = series[label]
        ax.errorbar(list(xs), list(ys), yerr=None if err is None else list(err), marker="o", capsize=3, label=label)
    ax.set(title=title, xlabel="round", ylabel="accuracy", ylim=(0, 1))
    ax.set_xticks(rounds)
    if series:
        ax.legend(fontsize=8)


def rounds_figure(rows: Sequence[RoundMetrics]):
    """One run: held-out accuracy per set (round 0 = the base student, when it was evaluated) and
    the student's feedback on its training problems (easy/hard share, problems accepted)."""
    plt = _pyplot(headless=False)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    acc_rows = [m for m in rows if m.round > 0 or m.accuracy]
    trained = [m for m in rows if m.round > 0]
    if not acc_rows and not trained:
        ax1.set_title("no finished rounds")
        return fig
    sets = sorted({k for m in acc_rows for k in (m.accuracy or {})})
    series = {}
    for s in sets:
        have = [m for m in acc_rows if s in (m.accuracy or {})]
        series[s] = ([m.round for m in have], [m.accuracy[s] for m in have], None)
    with_base = any(m.round == 0 for m in acc_rows)
    accuracy_panel(ax1, series, "held-out accuracy (round 0 = before training)" if with_base else "held-out accuracy")
    rounds = [m.round for m in trained]
    easy = [m.easy_ratio or 0 for m in trained]
    ax2.bar(rounds, easy, label="easy (solved)", color="tab:green")
    ax2.bar(rounds, [1 - e for e in easy], bottom=easy, label="hard (unsolved)", color="tab:red")
    ax2.set(title="student feedback on its training problems", xlabel="round", ylabel="share", ylim=(0, 1))
    ax2.set_xticks(rounds)
    ax2.legend(fontsize=8, loc="upper left")
    accepted = [(m.round, m.accepted) for m in trained if m.accepted is not None]
    if accepted:  # new problems on their own scale
        ax3 = ax2.twinx()
        ax3.plot([r for r, _ in accepted], [a for _, a in accepted], "k--o", label="new problems accepted")
        ax3.set_ylabel("problems accepted")
        ax3.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def save(fig, path) -> Path:
    """Write ``fig`` atomically (a reader never sees half a PNG) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def plot_rounds(rows: Sequence[RoundMetrics], path) -> Optional[Path]:
    """``rounds.png`` of one run (nothing before a round has numbers to draw)."""
    if not any(m.round > 0 or m.accuracy for m in rows):
        return None
    _pyplot(headless=True)
    return save(rounds_figure(rows), path)


def plot_variants(table, flow, sets: Sequence[str], out: Path) -> List[Path]:
    """The report's pictures: ``accuracy.png`` (mean ± std over seeds per variant, one panel per
    held-out set) from ``table`` and ``easy_hard.png`` (easy share and distillation set size per
    variant) from ``flow`` (DataFrames of fdd.reporting.report.Report)."""
    plt = _pyplot(headless=True)
    paths = []
    if sets:
        fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False)
        for ax, s in zip(axes[0], sets):
            t = table[table.set == s]
            series = {}
            for v in t["variant"].unique():
                tv = t[t.variant == v].sort_values("round")
                series[v] = (list(tv["round"]), list(tv["mean"]), list(tv["std"]))
            accuracy_panel(ax, series, f"held-out accuracy: {s}")
        fig.tight_layout()
        paths.append(save(fig, out / "accuracy.png"))
    if flow is not None and len(flow):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        for v in sorted(flow["variant"].unique()):
            fv = flow[flow.variant == v].sort_values("round")
            if "easy_ratio" in fv:
                ax1.plot(fv["round"], fv["easy_ratio"], marker="o", label=v)
            if "distill_size" in fv:
                ax2.plot(fv["round"], fv["distill_size"], marker="o", label=v)
        ax1.set(title="easy ratio (training problems solved at feedback)", xlabel="round", ylabel="easy / answered")
        ax1.set_ylim(0, 1)
        ax2.set(title="distillation set size after the round", xlabel="round", ylabel="items")
        for ax in (ax1, ax2):
            ax.set_xticks(sorted(int(x) for x in flow["round"].unique()))
            ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(save(fig, out / "easy_hard.png"))
    return paths
