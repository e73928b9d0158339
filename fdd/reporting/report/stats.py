"""The report's numbers: held-out accuracy per variant x round x set (mean ± std over seeds), each
variant's final round against the ``none``/``random`` baselines, and ``fdd`` minus each control
paired by seed with a t-interval."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fdd.types import RoundMetrics

from .read import Run, RunGroup, find_groups, load_run
from .sweep import baseline_of, label_variants, missing_jobs, sweep_overrides

BASELINES = ("none", "random")
FLOW_KEYS = (
    "easy",
    "hard",
    "easy_ratio",
    "accepted",
    "rejected",
    "distill_size",
    "train_steps",
    "teacher_requests",
    "requests_per_accepted",
)
PAIRED_WITH = ("random", "none", "hard_only", "easy_only")  # fdd minus each, paired by seed


def flow_numbers(m: RoundMetrics) -> Dict[str, Optional[float]]:
    """The FLOW_KEYS of one round (teacher requests summed over its jobs)."""
    derived = {"teacher_requests": m.teacher_requests(), "requests_per_accepted": m.requests_per_accepted()}
    return {k: derived[k] if k in derived else getattr(m, k) for k in FLOW_KEYS}


def mean_std(xs: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample std of the numbers in ``xs`` (``None``/NaN left out); NaN, NaN for none."""
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def paired_ci(diffs: Sequence[float], level: float = 0.95) -> Tuple[float, float, float]:
    """Mean of paired differences and its two-sided t confidence interval ``(mean, low, high)``."""
    from scipy import stats

    m, sd = mean_std(diffs)
    if len(diffs) < 2:
        return m, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return m, m - half, m + half


@dataclass
class Report:
    root: Path  # the sweep folder (or the run directory, or the folder of single runs)
    runs: List[Run]
    missing: List[str]
    table: object  # pandas DataFrame: variant, set, round, mean, std, n, seeds
    flow: object  # pandas DataFrame: variant, round, <FLOW_KEYS means>
    final: object  # pandas DataFrame: variant vs baseline at the final round
    sets: List[str]
    paired: object = None  # pandas DataFrame: fdd minus each control, per round and set, with a 95% CI
    sweep: bool = False  # root is a sweep folder (its runs are that sweep's jobs)
    overrides: List[str] = field(default_factory=list)  # the sweep's command-line overrides


class SeveralSweeps(ValueError):
    """The folder holds more than one sweep (or sweeps and single runs): report each on its own."""

    def __init__(self, root: Path, groups: Sequence[RunGroup]):
        self.root, self.groups = Path(root), list(groups)
        listed = "; ".join(f"{g.label(self.root)} ({len(g.run_dirs)} runs)" for g in self.groups)
        super().__init__(f"{root} holds {len(self.groups)} sweeps, reported one by one, never pooled: {listed}")


def build_reports(root) -> List[Report]:
    """One report per sweep at or under ``root`` (and one for the single runs that belong to no
    sweep): runs of different sweeps are never pooled."""
    return [build_group_report(g) for g in find_groups(root)]


def build_report(root) -> Report:
    """Everything the CLI prints and writes for one run, one sweep or a folder of single runs, as
    data; a folder holding several sweeps raises ``SeveralSweeps`` (see ``build_reports``)."""
    groups = find_groups(root)
    if len(groups) > 1:
        raise SeveralSweeps(Path(root), groups)
    if not groups:
        return build_group_report(RunGroup(Path(root), [], sweep=False))
    return build_group_report(groups[0])


def build_group_report(group: RunGroup) -> Report:
    """The report of one group of runs (``fdd.reporting.report.read.find_groups``)."""
    import pandas as pd

    root = group.root
    runs = [load_run(d) for d in group.run_dirs]
    label_variants(runs)
    missing: List[str] = missing_jobs(root, runs) if group.sweep else []
    for r in runs:
        name = r.path.relative_to(root) if r.path != root else r.path.name
        if not r.rows:
            missing.append(f"{name}: no metrics.jsonl (job not started or killed before round 0 finished)")
        elif r.rounds is not None and r.finished_rounds < r.rounds:
            missing.append(f"{name}: finished {max(0, r.finished_rounds)} of {r.rounds} rounds")

    acc, flow = [], []
    for r in runs:
        for m in map(RoundMetrics.from_row, r.rows):
            if m.round < 1:
                continue
            for s, v in (m.accuracy or {}).items():
                acc.append(
                    {"variant": r.variant, "mode": r.mode, "seed": r.seed, "round": m.round, "set": s, "accuracy": v}
                )
            flow.append({"variant": r.variant, "seed": r.seed, "round": m.round, **flow_numbers(m)})
    acc_df = pd.DataFrame(acc, columns=["variant", "mode", "seed", "round", "set", "accuracy"])
    sets = sorted(acc_df["set"].unique()) if not acc_df.empty else []

    table_recs = []
    for (variant, s, rnd), g in acc_df.groupby(["variant", "set", "round"], sort=True):
        m, sd = mean_std(list(g["accuracy"]))
        table_recs.append(
            {
                "variant": variant,
                "set": s,
                "round": int(rnd),
                "mean": m,
                "std": sd,
                "n": len(g),
                "seeds": ",".join(str(x) for x in sorted(g["seed"].dropna().astype(int))),
            }
        )
    table = pd.DataFrame(table_recs, columns=["variant", "set", "round", "mean", "std", "n", "seeds"])
    flow_df = pd.DataFrame(flow)
    if not flow_df.empty:
        flow_df = flow_df.drop(columns="seed").groupby(["variant", "round"]).mean(numeric_only=True).reset_index()

    return Report(
        root,
        runs,
        missing,
        table,
        flow_df,
        _final_comparison(runs, acc_df, sets),
        sets,
        _paired_differences(runs, acc_df),
        sweep=group.sweep,
        overrides=sweep_overrides(root) if group.sweep else [],
    )


def _final_comparison(runs: Sequence[Run], acc_df, sets: Sequence[str]):
    """Each variant at its final round vs the ``none`` / ``random`` variant of the same sweep point,
    paired by seed where both have the seed."""
    import pandas as pd

    recs = []
    if acc_df.empty:
        return pd.DataFrame()
    modes = {r.variant: r.mode for r in runs}
    final_round: Dict[str, int] = {}
    for r in runs:
        if r.rounds is not None:
            final_round[r.variant] = max(final_round.get(r.variant, 0), r.rounds)
    for variant in sorted(acc_df["variant"].unique()):
        fr = final_round.get(variant, int(acc_df[acc_df.variant == variant]["round"].max()))
        for s in sets:
            cur = acc_df[(acc_df.variant == variant) & (acc_df.set == s) & (acc_df["round"] == fr)]
            by_seed = dict(zip(cur["seed"], cur["accuracy"]))
            m, sd = mean_std(list(by_seed.values()))
            rec = {"variant": variant, "set": s, "round": fr, "mean": m, "std": sd, "n": len(by_seed)}
            for base in BASELINES:
                bv = baseline_of(variant, modes[variant], base)
                b = acc_df[(acc_df.variant == bv) & (acc_df.set == s) & (acc_df["round"] == fr)]
                b_seed = dict(zip(b["seed"], b["accuracy"]))
                paired = sorted(set(by_seed) & set(b_seed))
                diffs = [by_seed[k] - b_seed[k] for k in paired]
                dm, dsd = mean_std(diffs)
                rec[f"vs_{base}"] = dm if bv != variant else float("nan")
                rec[f"vs_{base}_std"] = dsd if bv != variant else float("nan")
                rec[f"vs_{base}_wins"] = f"{sum(d > 0 for d in diffs)}/{len(diffs)}" if diffs and bv != variant else ""
            recs.append(rec)
    return pd.DataFrame(recs)


def _paired_differences(runs: Sequence[Run], acc_df):
    """For every ``fdd`` variant: fdd minus each control of the same sweep point (PAIRED_WITH), per
    round and held-out set, paired by seed: mean, 95% CI, and the seeds fdd won."""
    import pandas as pd

    recs = []
    if acc_df.empty:
        return pd.DataFrame()
    variants = set(acc_df["variant"])
    for r_variant in sorted({r.variant for r in runs if r.mode == "fdd"}):
        mine = acc_df[acc_df.variant == r_variant]
        for base in PAIRED_WITH:
            bv = baseline_of(r_variant, "fdd", base)
            if bv not in variants:
                continue
            theirs = acc_df[acc_df.variant == bv]
            for (s, rnd), g in mine.groupby(["set", "round"]):
                b = theirs[(theirs.set == s) & (theirs["round"] == rnd)]
                a_seed, b_seed = dict(zip(g["seed"], g["accuracy"])), dict(zip(b["seed"], b["accuracy"]))
                diffs = [a_seed[k] - b_seed[k] for k in sorted(set(a_seed) & set(b_seed))]
                if not diffs:
                    continue
                m, lo, hi = paired_ci(diffs)
                recs.append(
                    {
                        "variant": r_variant,
                        "vs": base,
                        "set": s,
                        "round": int(rnd),
                        "diff": m,
                        "ci_low": lo,
                        "ci_high": hi,
                        "wins": sum(d > 0 for d in diffs),
                        "n": len(diffs),
                    }
                )
    return pd.DataFrame(recs)
