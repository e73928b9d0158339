"""Per-round metrics: ``metrics.jsonl`` in the run directory (the source of truth), a wandb run
(offline unless a key is configured) and ``rounds.png``."""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Dict, List, Optional

from fdd.io import write_jsonl

log = logging.getLogger(__name__)


def flatten(d: Dict, prefix: str = "") -> Dict[str, float]:
    """Nested metrics as wandb keys: ``accuracy/gsm8k``, ``teacher/harder/requests``, ..."""
    out: Dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
            out[key] = v
    return out


def wandb_mode(mode: str) -> str:
    """``auto`` is online when a key is configured, offline otherwise (never a login prompt)."""
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


class Tracker:
    def __init__(self, run_dir, logger_cfg=None, config: Optional[Dict] = None, name: Optional[str] = None) -> None:
        self.run_dir = Path(run_dir)
        self.rows: List[Dict] = []
        self.run = None
        if logger_cfg is not None and logger_cfg.wandb and logger_cfg.mode != "disabled":
            self.run = self._init_wandb(logger_cfg, config or {}, name)

    def _init_wandb(self, lc, config: Dict, name: Optional[str]):
        import wandb

        mode = wandb_mode(lc.mode)
        id_file = self.run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id)
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(project=lc.project, entity=lc.entity, group=lc.group, job_type=lc.job_type, tags=list(lc.tags),
                         name=name, config=config, dir=str(self.run_dir), mode=mode, id=run_id, resume="allow",
                         reinit="finish_previous")
        run.define_metric("round")
        run.define_metric("*", step_metric="round")
        log.info("wandb run %s (%s) in %s", run_id, mode, self.run_dir / "wandb")
        return run

    def log_round(self, r: int, row: Dict) -> None:
        self.rows = [x for x in self.rows if x["round"] != r] + [row]
        self.rows.sort(key=lambda x: x["round"])
        write_jsonl(self.run_dir / "metrics.jsonl", self.rows)
        if self.run is not None:
            self.run.log(flatten(row))
        if r > 0:
            plot_rounds(self.rows, self.run_dir / "rounds.png")

    def log_table(self, key: str, columns: List[str], rows: List[List]) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def log_artifact(self, name: str, kind: str, path, metadata: Optional[Dict] = None) -> None:
        if self.run is not None:
            import wandb

            art = wandb.Artifact(name, type=kind, metadata=metadata or {})
            art.add_file(str(path))
            self.run.log_artifact(art)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def plot_rounds(rows: List[Dict], path) -> None:
    """Accuracy per held-out set and the easy/hard split, per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("round", 0) > 0]
    if not rows:
        return
    rounds = [r["round"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in sorted({k for r in rows for k in r.get("accuracy", {})}):
        ax1.plot(rounds, [r.get("accuracy", {}).get(name) for r in rows], marker="o", label=name)
    ax1.set(title="held-out accuracy", xlabel="round", ylabel="accuracy", ylim=(0, 1), xticks=rounds)
    ax1.legend(fontsize=8)
    easy = [r.get("easy_ratio", 0) for r in rows]
    ax2.bar(rounds, easy, label="easy", color="tab:green")
    ax2.bar(rounds, [1 - e for e in easy], bottom=easy, label="hard", color="tab:red")
    ax2.set(title="student feedback on its training problems", xlabel="round", ylabel="ratio", ylim=(0, 1), xticks=rounds)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
