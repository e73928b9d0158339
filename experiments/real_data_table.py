"""The real-data experiments' table from a run's metrics.jsonl: accuracy per held-out set per
round (round 0 = the base student, zero-shot), the seed set, and what the served teacher's
problems became.

    python experiments/real_data_table.py outputs/real_data/table/run
    python experiments/real_data_table.py outputs/real_teacher/after/run
"""

from __future__ import annotations

import sys
from pathlib import Path

from fdd.runtime.io import read_jsonl


def table(run_dir: Path) -> str:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    sets = sorted({k for r in rows for k in r.get("accuracy", {})})
    out = ["| round | " + " | ".join(sets) + " | trained on |", "|---" * (len(sets) + 2) + "|"]
    for r in rows:
        if not r.get("accuracy"):
            continue
        label = "0 (zero-shot)" if r["round"] == 0 else str(r["round"])
        acc = " | ".join(f"{r['accuracy'].get(s, float('nan')):.3f}" for s in sets)
        out.append(f"| {label} | {acc} | {r.get('trained_on', '-')} |")
    for r in rows:
        if r["round"] == 0:
            rejected = r.get("seed_rejected", 0)
            out.append(
                f"\nD0: {r['distill_size']} rationales for {r['seed_problems'] - rejected} of {r['seed_problems']} "
                f"seed problems ({rejected} rejected); answers read as {r.get('answer_conventions', {})}"
            )
        elif "generated" in r:
            gen, acc = r["generated"], r["accepted"]
            usage = [r.get("teacher", {}).get(j, {}) for j in ("harder", "similar")]
            asked = sum(u.get("requests", 0) + u.get("cached", 0) for u in usage)  # a resumed round reads the cache
            rate = f"{acc / asked:.1%} of asked" if asked else (f"{acc / gen:.1%} of written" if gen else "n/a")
            out.append(
                f"round {r['round']} augment: {asked} new problems asked of the served teacher, {gen} written "
                f"(parseable), {acc} accepted ({rate}); rejected by reason {r.get('rejected_by_reason')}; "
                f"{r.get('rationale_requests_per_accepted', float('nan')):.1f} rationale requests per accepted "
                f"problem; answers read as {r.get('answer_conventions', {})}; teacher usage {r.get('teacher')}"
            )
    return "\n".join(out)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/real_data/table/run")))
