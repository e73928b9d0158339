"""Summarise finished FDD runs without wandb: ``python -m fdd.reporting.report DIR [--out DIR]``.

DIR is one run directory or a Hydra multirun directory (run directories beneath it). Each run is
read from its ``metrics.jsonl`` and ``.hydra/{overrides,config}.yaml``; runs that differ only by
``seed`` form one variant. Prints held-out accuracy per variant x round x set (mean ± std over
seeds), the final-round comparison of every variant with ``none`` and ``random``, and what is
missing (jobs of the sweep with no run directory, runs that finished fewer rounds than asked);
writes ``table.csv``, ``report.md``, ``accuracy.png`` and ``easy_hard.png`` to ``--out``
(default ``DIR/report``). The helpers at the top are what ``notebooks/fdd_run.ipynb`` uses.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from fdd.types import RoundMetrics

log = logging.getLogger(__name__)

SEED_KEYS = ("seed",)
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


def plot_run(run_dir, out: Optional[Path] = None):
    """Held-out accuracy per round and the easy/hard flow of one run (a matplotlib figure): the
    picture the tracker writes as ``rounds.png`` (fdd.reporting.plots)."""
    from fdd.reporting.plots import rounds_figure

    fig = rounds_figure([RoundMetrics.from_row(r) for r in read_rows(run_dir)])
    if out is not None:
        fig.savefig(out, dpi=110)
    return fig


def flow_numbers(m: RoundMetrics) -> Dict[str, Optional[float]]:
    """The FLOW_KEYS of one round (teacher requests summed over its jobs)."""
    derived = {"teacher_requests": m.teacher_requests(), "requests_per_accepted": m.requests_per_accepted()}
    return {k: derived[k] if k in derived else getattr(m, k) for k in FLOW_KEYS}


# ---------------------------------------------------------------------- many runs
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


def _load_yaml(path: Path):
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None
    except Exception as exc:  # noqa: BLE001 -- a damaged file is reported, not fatal
        log.warning("%s: unreadable (%s)", path, exc)
        return None


def _split_override(o: str) -> Tuple[str, str]:
    k, _, v = o.partition("=")
    return k.lstrip("+~"), v


def _norm(v) -> str:
    """An override value as Hydra means it (``false`` on the command line is ``False`` in a job)."""
    import yaml

    try:
        return str(yaml.safe_load(str(v)))
    except yaml.YAMLError:
        return str(v)


def load_run(path: Path) -> Run:
    ov = _load_yaml(path / ".hydra" / "overrides.yaml") or []
    overrides = dict(_split_override(o) for o in ov if "=" in o)
    cfg = _load_yaml(path / ".hydra" / "config.yaml") or {}
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


def find_run_dirs(root: Path) -> List[Path]:
    """Run directories at or under ``root`` (a dir with metrics.jsonl, round_0/ or .hydra/)."""

    def is_run(d: Path) -> bool:
        return (d / "metrics.jsonl").is_file() or (d / "round_0").is_dir() or (d / ".hydra" / "config.yaml").is_file()

    if is_run(root):
        return [root]
    found = []
    for d in sorted(root.rglob("*")):
        if (
            d.is_dir()
            and not any(p.startswith(".") or p in ("wandb", "report") for p in d.relative_to(root).parts)
            and not any(parent in found for parent in d.parents)
            and is_run(d)
        ):
            found.append(d)
    return found


def expected_jobs(root: Path) -> List[Dict[str, str]]:
    """The jobs a multirun asked for (from ``multirun.yaml``'s sweep overrides), ``[]`` if unknown."""
    cfg = _load_yaml(root / "multirun.yaml")
    try:
        task = cfg["hydra"]["overrides"]["task"]
    except (TypeError, KeyError):
        return []
    axes = []
    for o in task:
        k, v = _split_override(str(o))
        if any(s in v for s in ("range(", "choice(", "interval(", "glob(", "[", "{")):
            return []  # sweep syntax this reader does not expand: do not guess
        axes.append([(k, x) for x in v.split(",")])
    return [dict(combo) for combo in itertools.product(*axes)]


def label_variants(runs: Sequence[Run]) -> None:
    """Name each run's variant by the overrides that vary across runs, seeds left out."""
    keys = sorted({k for r in runs for k in r.overrides})
    varying = [
        k
        for k in keys
        if k not in SEED_KEYS
        and k not in ("augmentation", "augmentation.mode")
        and len({r.overrides.get(k) for r in runs}) > 1
    ]
    for r in runs:
        other = ",".join(f"{k}={r.overrides.get(k)}" for k in varying)
        r.variant = f"{r.mode} [{other}]" if other else r.mode


def _baseline_of(variant: str, mode: str, base: str) -> str:
    return base + variant[len(mode) :]


def _mean_std(xs: Sequence[float]) -> Tuple[float, float]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _fmt(m: float, s: float, n: int) -> str:
    if math.isnan(m):
        return "-"
    return f"{m:.3f}" if n <= 1 else f"{m:.3f} ± {s:.3f}"


@dataclass
class Report:
    root: Path
    runs: List[Run]
    missing: List[str]
    table: object  # pandas DataFrame: variant, set, round, mean, std, n, seeds
    flow: object  # pandas DataFrame: variant, round, <FLOW_KEYS means>
    final: object  # pandas DataFrame: variant vs baseline at the final round
    sets: List[str]
    paired: object = None  # pandas DataFrame: fdd minus each control, per round and set, with a 95% CI


def build_report(root) -> Report:
    """Everything the CLI prints and writes, as data."""
    import pandas as pd

    root = Path(root)
    runs = [load_run(d) for d in find_run_dirs(root)]
    label_variants(runs)
    missing: List[str] = []

    exp = expected_jobs(root)
    if exp:
        have = [r.overrides for r in runs]
        for job in exp:
            if not any(all(_norm(h.get(k)) == _norm(v) for k, v in job.items()) for h in have):
                missing.append("job never ran or was deleted: " + ",".join(f"{k}={v}" for k, v in job.items()))
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
        m, sd = _mean_std(list(g["accuracy"]))
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

    final = _final_comparison(runs, acc_df, sets)
    return Report(root, runs, missing, table, flow_df, final, sets, _paired_differences(runs, acc_df))


def _final_comparison(runs: Sequence[Run], acc_df, sets: Sequence[str]):
    """Each variant at its final round vs the ``none`` / ``random`` variant of the same sweep point,
    paired by seed where both have the seed."""
    import pandas as pd

    recs = []
    if acc_df.empty:
        return pd.DataFrame()
    modes = {r.variant: r.mode for r in runs}
    final_round = {}
    for r in runs:
        if r.rounds is not None:
            final_round[r.variant] = max(final_round.get(r.variant, 0), r.rounds)
    for variant in sorted(acc_df["variant"].unique()):
        fr = final_round.get(variant, int(acc_df[acc_df.variant == variant]["round"].max()))
        for s in sets:
            cur = acc_df[(acc_df.variant == variant) & (acc_df.set == s) & (acc_df["round"] == fr)]
            by_seed = dict(zip(cur["seed"], cur["accuracy"]))
            m, sd = _mean_std(list(by_seed.values()))
            rec = {"variant": variant, "set": s, "round": fr, "mean": m, "std": sd, "n": len(by_seed)}
            for base in BASELINES:
                bv = _baseline_of(variant, modes[variant], base)
                b = acc_df[(acc_df.variant == bv) & (acc_df.set == s) & (acc_df["round"] == fr)]
                b_seed = dict(zip(b["seed"], b["accuracy"]))
                paired = sorted(set(by_seed) & set(b_seed))
                diffs = [by_seed[k] - b_seed[k] for k in paired]
                dm, dsd = _mean_std(diffs)
                rec[f"vs_{base}"] = dm if bv != variant else float("nan")
                rec[f"vs_{base}_std"] = dsd if bv != variant else float("nan")
                rec[f"vs_{base}_wins"] = f"{sum(d > 0 for d in diffs)}/{len(diffs)}" if diffs and bv != variant else ""
            recs.append(rec)
    return pd.DataFrame(recs)


def paired_ci(diffs: Sequence[float], level: float = 0.95) -> Tuple[float, float, float]:
    """Mean of paired differences and its two-sided t confidence interval ``(mean, low, high)``."""
    from scipy import stats

    m, sd = _mean_std(diffs)
    if len(diffs) < 2:
        return m, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return m, m - half, m + half


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
            bv = _baseline_of(r_variant, "fdd", base)
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


PAIRED_TITLE = (
    "paired differences, fdd minus control (mean over seeds [95% t-interval]; wins = seeds where fdd is higher)"
)
FINAL_TITLE = (
    "final round: variant minus baseline (mean ± std of per-seed differences; wins = seeds where the variant is higher)"
)


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


# ---------------------------------------------------------------------- rendering
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
            cells = [_fmt(tv.at[r, "mean"], tv.at[r, "std"], tv.at[r, "n"]) if r in tv.index else "-" for r in rounds]
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
            f"| {r['set']} | {r['variant']} | {r['round']} | {_fmt(r['mean'], r['std'], r['n'])} | {d('none')} | "
            f"{r['vs_none_wins']} | {d('random')} | {r['vs_random_wins']} |"
        )
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


def plot_report(rep: Report, out: Path) -> List[Path]:
    """accuracy.png (per round per variant, one panel per set) and easy_hard.png (easy ratio per round)."""
    from fdd.reporting.plots import plot_variants

    return plot_variants(rep.table, rep.flow, rep.sets, out)


def write_report(rep: Report, out: Path) -> str:
    """Write table.csv, final.csv, flow.csv, report.md and the plots; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    rep.table.to_csv(out / "table.csv", index=False)
    if rep.final is not None and len(rep.final):
        rep.final.to_csv(out / "final.csv", index=False)
    if rep.flow is not None and len(rep.flow):
        rep.flow.to_csv(out / "flow.csv", index=False)
    if rep.paired is not None and len(rep.paired):
        rep.paired.to_csv(out / "paired.csv", index=False)
    md = "\n".join(
        [
            f"# FDD report: {rep.root}\n",
            f"{len(rep.runs)} run(s), variants: " + ", ".join(sorted({r.variant for r in rep.runs})) + "\n",
            accuracy_markdown(rep),
            final_markdown(rep),
            paired_markdown(rep),
            flow_markdown(rep),
            missing_markdown(rep),
        ]
    )
    (out / "report.md").write_text(md, encoding="utf-8")
    try:
        plot_report(rep, out)
    except Exception as exc:  # noqa: BLE001 -- the tables matter more than the pictures
        log.warning("could not draw the plots: %s", exc)
    return md


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fdd.reporting.report", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path, help="a run directory or a multirun directory")
    p.add_argument("--out", type=Path, default=None, help="where to write the report (default DIR/report)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.dir.is_dir():
        print(f"fdd.reporting.report: error: {args.dir} is not a directory")
        return 2
    rep = build_report(args.dir)
    if not rep.runs:
        print(f"fdd.reporting.report: no run directories under {args.dir}")
        return 1
    out = args.out or args.dir / "report"
    md = write_report(rep, out)
    print(md)
    print(f"written to {out}/ (report.md, table.csv, final.csv, flow.csv, accuracy.png, easy_hard.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
