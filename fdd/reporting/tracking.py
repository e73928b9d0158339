"""Per-round metrics: ``metrics.jsonl`` in the run directory (the source of truth), a wandb run
(offline unless a key is configured) and ``rounds.png``.

wandb is best-effort: any failure there is logged as a warning and the run goes on with its
metrics file. Per round the wandb run gets the flattened metric row (``round`` is the step), a
table of sample problems the teacher wrote that round (with their parent question) and the
round's distillation set as a new version of the ``distill-<run name>`` dataset artifact.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Dict, List, Optional, Union

from fdd.reporting.plots import plot_rounds
from fdd.runtime.io import read_json, read_jsonl, write_jsonl
from fdd.types import RoundMetrics

log = logging.getLogger(__name__)

SAMPLE_ROWS = 50  # generated problems per round in the wandb table
SAMPLE_COLUMNS = ["round", "branch", "question", "answer", "parent_question", "id", "parent_id"]


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


def artifact_name(prefix: str, name: str) -> str:
    """A valid wandb artifact name (letters, digits, ``-_.``) from a run name like ``a=b,c=d``."""
    full = f"{prefix}-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "default")
    if len(full) <= 128:  # wandb's limit; longer names (many overrides) keep a hash of the rest
        return full
    import hashlib

    return full[:119] + "-" + hashlib.sha1(full.encode()).hexdigest()[:8]


def round_extras(round_dir: Path) -> Dict:
    """Train steps and examples and the problems asked per branch, read from the round's DONE
    markers: the loop's row has them, a row written by an older version (a resumed run) did not."""
    extra: Dict = {}
    train, aug = round_dir / "DONE.train", round_dir / "DONE.augment"
    if train.is_file():
        t = read_json(train)
        extra.update({k: t[k] for k in ("train_steps", "train_examples") if t.get(k) is not None})
    if aug.is_file():
        a = read_json(aug)
        extra.update({k: a[k] for k in ("asked_harder", "asked_similar") if k in a})
    return extra


def sample_generated(round_dir: Path, r: int, limit: int = SAMPLE_ROWS) -> List[List]:
    """Up to ``limit`` problems accepted in round ``r`` (rows of SAMPLE_COLUMNS), with the parent's question."""
    path = round_dir / "distill.jsonl"
    if not path.is_file():
        return []
    items = read_jsonl(path)
    question = {i["id"]: i["question"] for i in items}
    seen, rows = set(), []
    for i in items:
        if i.get("round") != r or i["id"] in seen:
            continue
        seen.add(i["id"])
        rows.append(
            [
                r,
                i.get("branch"),
                i["question"],
                i.get("answer"),
                question.get(i.get("parent_id")),
                i["id"],
                i.get("parent_id"),
            ]
        )
        if len(rows) >= limit:
            break
    return rows


PREDICTION_COLUMNS = ["round", "set", "id", "output", "predicted", "gold", "correct"]
# Per-round augmentation counts: wandb's summary would keep the last augmenting round's as if they
# were the run's; the summary holds their totals over rounds instead (total/<key>).
ROUND_COUNTS = ("asked_harder", "asked_similar", "generated", "accepted", "rejected")


def sample_predictions(round_dir: Path, r: int, per_set: int = SAMPLE_ROWS // 2) -> List[List]:
    """Up to ``per_set`` held-out predictions of round ``r`` per set (rows of PREDICTION_COLUMNS)."""
    rows = []
    for path in sorted(round_dir.glob("eval_*.jsonl")):
        name = path.stem[len("eval_") :]
        for p in read_jsonl(path)[:per_set]:
            rows.append([r, name, p["id"], p["output"], p.get("predicted"), p.get("gold"), bool(p.get("correct"))])
    return rows


def run_summary(rows: List[Dict]) -> Dict[str, float]:
    """What a run's wandb summary says about the whole run (sweep tables, parallel coordinates):
    the last evaluated round's accuracy per set and mean (``final/...``), the best mean
    (``best/mean_accuracy``) and the augmentation counts summed over rounds (``total/...``)."""
    out: Dict[str, float] = {}
    evaluated = [RoundMetrics.from_row(x) for x in rows if x.get("round", 0) > 0 and x.get("accuracy")]
    if evaluated:
        last = evaluated[-1]
        out["final/round"] = last.round
        out.update({f"final/accuracy/{k}": v for k, v in last.accuracy.items()})
        out["final/mean_accuracy"] = last.mean_accuracy()
        out["best/mean_accuracy"] = max(m.mean_accuracy() for m in evaluated)
    for key in ROUND_COUNTS:
        values = [x[key] for x in rows if x.get(key) is not None]
        if values:
            out[f"total/{key}"] = sum(values)
    return out


def variant_group(group: Optional[str], overrides) -> str:
    """``<group>/<overrides that make a variant>`` (``<group>`` alone for the default variant):
    seeds, cosmetic keys (fdd.config.key_role) and secrets left out."""
    from fdd.config import key_role
    from fdd.runtime.identity import IN_VARIANT
    from fdd.runtime.secrets import is_secret, override_key

    def is_variant(o: str) -> bool:
        key = override_key(o) or o.lstrip("+~")
        return key_role(key) in IN_VARIANT and not is_secret(key)

    keep = sorted(o for o in overrides if is_variant(o))
    base = group or "fdd"
    if not keep:
        return base
    full = f"{base}/{','.join(keep)}"
    if len(full) <= 128:  # wandb's limit; a hash of the whole keeps distinct variants apart
        return full
    import hashlib

    return full[:119] + "-" + hashlib.sha1(full.encode()).hexdigest()[:8]


_CURVES = {"enabled": True}  # logger.log_curves of the current Tracker


def curve_loggers(round_idx: int) -> List:
    """Lightning loggers sending per-step training curves to the active wandb run (if any) as
    ``train/round_<r>/<metric>`` against their own step, so every round is a panel of one run."""
    try:
        import wandb
    except ImportError:
        return []
    if wandb.run is None or not _CURVES["enabled"]:
        return []
    from fdd.reporting.curves import WandbCurves  # imports Lightning: only when a fit asks

    return [WandbCurves(wandb.run, round_idx)]


class Tracker:
    def __init__(self, run_dir, logger_cfg=None, config: Optional[Dict] = None, name: Optional[str] = None) -> None:
        self.run_dir = Path(run_dir)
        self.rows: List[Dict] = []
        self.run = None
        self.name = name or self.run_dir.name
        self.log_tables = bool(getattr(logger_cfg, "log_tables", True))
        self.log_artifacts = bool(getattr(logger_cfg, "log_artifacts", True))
        self.log_checkpoints = bool(getattr(logger_cfg, "log_checkpoints", False))
        if logger_cfg is not None and logger_cfg.wandb and logger_cfg.mode != "disabled":
            try:
                self.run = self._init_wandb(logger_cfg, config or {}, name)
            except Exception as exc:  # noqa: BLE001 -- tracking must never stop a run
                log.warning(
                    "wandb disabled for this run, could not start it (%s: %s); metrics stay in %s",
                    type(exc).__name__,
                    exc,
                    self.run_dir / "metrics.jsonl",
                )
                self.run = None

    def _init_wandb(self, lc, config: Dict, name: Optional[str]):
        import wandb

        mode = wandb_mode(lc.mode)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        id_file = self.run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id)
        os.environ.setdefault("WANDB_SILENT", "true")
        from fdd.runtime.secrets import mask_secrets  # API keys and tokens never reach wandb

        argv, sys.argv = sys.argv, [sys.argv[0], *mask_secrets(sys.argv[1:])]  # wandb records the command line
        try:
            run = wandb.init(
                project=lc.project,
                entity=lc.entity,
                group=lc.group,
                job_type=lc.job_type,
                tags=list(lc.tags),
                name=name,
                config=mask_secrets(config),
                dir=str(self.run_dir),
                mode=mode,
                id=run_id,
                resume="allow",
                reinit="finish_previous",
            )
        finally:
            sys.argv = argv
        run.define_metric("round")
        run.define_metric("*", step_metric="round")
        _CURVES["enabled"] = bool(getattr(lc, "log_curves", True))
        log.info(
            "wandb run %s (%s, group=%s, job_type=%s) in %s",
            run_id,
            mode,
            lc.group,
            lc.job_type,
            self.run_dir / "wandb",
        )
        return run

    # ------------------------------------------------------------------ per round
    def log_round(self, r: int, metrics: Union[RoundMetrics, Dict]) -> None:
        """Record round ``r``: metrics.jsonl and rounds.png first, then (best-effort) wandb."""
        round_dir = self.run_dir / f"round_{r}"
        if not isinstance(metrics, RoundMetrics):
            metrics = RoundMetrics.from_row(metrics)
        row = {**round_extras(round_dir), **metrics.to_row()}
        self.rows = [x for x in self.rows if x["round"] != r] + [row]
        self.rows.sort(key=lambda x: x["round"])
        write_jsonl(self.run_dir / "metrics.jsonl", self.rows)
        if r > 0:
            try:
                plot_rounds([RoundMetrics.from_row(x) for x in self.rows], self.run_dir / "rounds.png")
            except Exception as exc:  # noqa: BLE001
                log.warning("could not draw rounds.png: %s", exc)
        if self.run is None:
            return
        if r in self._wandb_logged():
            log.info("wandb: round %d was logged to run %s before, not logging it again", r, self.run.id)
            return
        self._safe(f"log round {r}", self.run.log, flatten(row))
        self._safe(f"summarize the run after round {r}", self._summarize)
        tables = (  # (what, key, columns, sample)
            ("held-out predictions", "eval_predictions", PREDICTION_COLUMNS, sample_predictions),
            ("generated problems", "generated_problems", SAMPLE_COLUMNS, sample_generated),
        )
        for what, key, columns, sample in tables if self.log_tables and r > 0 else ():
            rows = sample(round_dir, r)
            if rows:
                self._safe(f"log round {r}'s {what}", self.log_table, key, columns, rows, {"round": r})
        artifacts = (  # (wanted, what, name, type, path, metadata)
            (
                self.log_artifacts,
                "distillation set",
                "distill",
                "dataset",
                round_dir / "distill.jsonl",
                {"round": r, "size": metrics.distill_size},
            ),
            (
                self.log_checkpoints,
                "checkpoint",
                "student",
                "model",
                round_dir / "checkpoint",
                {"round": r, "accuracy": metrics.accuracy},
            ),
        )
        for wanted, what, name, kind, path, meta in artifacts:
            if wanted and path.exists():
                self._safe(
                    f"log round {r}'s {what}",
                    self.log_artifact,
                    artifact_name(name, self.name),
                    kind,
                    path,
                    meta,
                    [f"round-{r}"],
                )
        self._safe(f"note round {r} as logged", self._mark_logged, r)

    def _summarize(self) -> None:
        summary = self.run.summary
        present = set(summary.keys())  # wandb's Summary has no __contains__
        for key in ROUND_COUNTS:  # a round's count is not the run's: only total/<key> stays
            if key in present:
                del summary[key]
        summary.update(run_summary(self.rows))

    def _wandb_logged(self) -> set:
        """Rounds already sent to this wandb run (a resumed run re-reports finished rounds)."""
        path = self.run_dir / "wandb_rounds.json"
        try:
            d = read_json(path) if path.is_file() else {}
            return set(d.get("rounds", [])) if d.get("id") == self.run.id else set()
        except Exception:  # noqa: BLE001
            return set()

    def _mark_logged(self, r: int) -> None:
        from fdd.runtime.io import write_json

        write_json(
            self.run_dir / "wandb_rounds.json", {"id": self.run.id, "rounds": sorted(self._wandb_logged() | {r})}
        )

    def _safe(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 -- wandb failures are not run failures
            log.warning("wandb: could not %s (%s: %s); metrics.jsonl is unaffected", what, type(exc).__name__, exc)

    def log_table(self, key: str, columns: List[str], rows: List[List], extra: Optional[Dict] = None) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows), **(extra or {})})

    def log_artifact(
        self, name: str, kind: str, path, metadata: Optional[Dict] = None, aliases: Optional[List[str]] = None
    ) -> None:
        if self.run is not None:
            import wandb

            art = wandb.Artifact(name, type=kind, metadata=metadata or {})
            art.add_dir(str(path)) if Path(path).is_dir() else art.add_file(str(path))
            self.run.log_artifact(art, aliases=aliases)

    def finish(self, exit_code: int = 0) -> None:
        """Close the wandb run (so the next Hydra multirun job gets its own run)."""
        if self.run is not None:
            run, self.run = self.run, None
            try:
                run.finish(exit_code=exit_code)
            except Exception as exc:  # noqa: BLE001
                log.warning("wandb: could not finish the run cleanly (%s: %s)", type(exc).__name__, exc)
