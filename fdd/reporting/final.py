"""``final/``: what leaves a run, the way Hugging Face users expect it.

After the last round the chosen student (the last round's, or the best by a held-out metric)
is copied as a ``save_pretrained`` folder with a model card, and the final distillation set is
written as a parquet ``datasets`` dataset with its lineage columns and a dataset card::

    final/                 config.json, weights, tokenizer, README.md (model card), fdd_student.json
    final/dataset/         data/train-00000-of-00001.parquet, README.md (dataset card)
    final/DONE.json        the selection; present = the stage is done (a rerun skips it)

The stage is built in ``final.tmp/`` and renamed, so a kill never leaves a half-written
``final/``. ``push_to_hub`` uploads both folders with ``huggingface_hub``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from fdd.reporting.model_card import dataset_card, model_card
from fdd.runtime.io import read_json, read_jsonl, write_json
from fdd.types import RoundMetrics

log = logging.getLogger(__name__)

STUDENT_INFO = "fdd_student.json"  # how fdd solve runs the folder: prompt, rationale format, arch
DATA_FILE = "data/train-00000-of-00001.parquet"
COLUMNS = ["id", "question", "answer", "source", "rationale", "parent_id", "round", "branch", "meta"]


def mean_accuracy(row: Dict) -> Optional[float]:
    return RoundMetrics.from_row(row).mean_accuracy()


def metric_value(row: Dict, metric: str) -> Optional[float]:
    m = RoundMetrics.from_row(row)
    return m.mean_accuracy() if metric == "mean_accuracy" else (m.accuracy or {}).get(metric)


def choose_round(rows: List[Dict], select: str = "last", metric: str = "mean_accuracy") -> Optional[Dict]:
    """The round whose student leaves the run: the last evaluated one, or the best by ``metric``
    (ties go to the later round, which trained on more data). None when no round was evaluated."""
    scored = [(r["round"], metric_value(r, metric)) for r in rows if RoundMetrics.from_row(r).round > 0]
    scored = [(r, v) for r, v in scored if v is not None]
    if not scored:
        return None
    if select == "last":
        r, v = max(scored)
    elif select == "best":
        r, v = max(scored, key=lambda x: (x[1], x[0]))
    else:
        raise ValueError(f"final.select must be last|best, got {select!r}")
    return {"round": r, "select": select, "metric": metric, "value": v}


def final_items(run_dir: Path, rounds: int) -> List[Dict]:
    """The final distillation set: the latest round's distill.jsonl."""
    for q in range(rounds, -1, -1):
        path = run_dir / f"round_{q}" / "distill.jsonl"
        if path.is_file():
            return read_jsonl(path)
    raise FileNotFoundError(f"no distill.jsonl under {run_dir}")


def write_dataset(items: List[Dict], out: Path, cfg: Dict, model_id: Optional[str] = None) -> int:
    """``out/data/*.parquet`` (one row per item, lineage columns kept) and ``out/README.md``."""
    import datasets

    rows = [
        {
            "id": str(i["id"]),
            "question": i["question"],
            "answer": float(i["answer"]),
            "source": i.get("source", ""),
            "rationale": i["rationale"],
            "parent_id": i.get("parent_id") or "",
            "round": int(i.get("round", 0)),
            "branch": i.get("branch", "seed"),
            "meta": json.dumps(i.get("meta") or {}, sort_keys=True, default=str),
        }
        for i in items
    ]
    features = datasets.Features(
        {c: datasets.Value("float64" if c == "answer" else "int32" if c == "round" else "string") for c in COLUMNS}
    )
    ds = datasets.Dataset.from_list(rows, features=features)
    (out / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out / DATA_FILE))
    (out / "README.md").write_text(
        dataset_card(cfg, len(rows), dict(Counter(r["branch"] for r in rows)), model_id), encoding="utf-8"
    )
    return len(rows)


def write_final(run_dir, cfg: Dict, rows: List[Dict], hub_datasets: Sequence[str] = ()) -> Optional[Dict]:
    """Build ``run_dir/final`` once per choice (skipped while its DONE.json holds the same rule and
    the same rounds); returns the selection. A changed rule, or a run extended by more rounds (its
    distillation set and model card grow even when the chosen round stays), rebuilds it."""
    run_dir = Path(run_dir)
    final, tmp = run_dir / "final", run_dir / "final.tmp"
    done = final / "DONE.json"
    fc = cfg.get("final", {})
    rule = (fc.get("select", "last"), fc.get("metric", "mean_accuracy"))
    chosen = choose_round(rows, *rule)
    last_round = max((int(r["round"]) for r in rows), default=0)
    if done.is_file():
        prev = read_json(done)
        if (prev.get("select"), prev.get("metric")) != rule:
            log.info("final/: the selection rule changed since it was written, rebuilding it")
        elif chosen is not None and prev.get("last_round", prev.get("round")) != last_round:
            log.info(
                "final/: the run has rounds up to %s now, rebuilding it (round %s chosen)", last_round, chosen["round"]
            )
        else:
            log.info("final/ already written, skipping")
            return prev
    if chosen is None:
        log.warning("final/: no evaluated round, so no student to hand over (rounds=%s)", cfg.get("rounds"))
        return None
    ckpt = run_dir / f"round_{chosen['round']}" / "checkpoint"
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"final/: round {chosen['round']} has no saved student at {ckpt}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ckpt, tmp)
    hub = fc.get("hub") or {}
    student, fmt_name = cfg["student"], cfg["rationale"]
    from fdd.reasoning.formats import get_format

    write_json(
        tmp / STUDENT_INFO,
        {
            "rationale": fmt_name,
            "prompt_template": get_format(fmt_name).prompt_template,
            "arch": student["arch"],
            "max_source_len": student.get("max_source_len", 256),
            "max_new_tokens": student.get("generation", {}).get("max_new_tokens", 128),
            "round": chosen["round"],
        },
    )
    (tmp / "README.md").write_text(model_card(cfg, rows, chosen, hub_datasets, hub.get("dataset_id")), encoding="utf-8")
    n = write_dataset(final_items(run_dir, cfg["rounds"]), tmp / "dataset", cfg, hub.get("model_id"))
    summary = {**chosen, "dataset_rows": n, "last_round": last_round}
    write_json(tmp / "DONE.json", summary)
    shutil.rmtree(final, ignore_errors=True)  # a final/ without DONE.json is a killed, stale copy
    tmp.rename(final)
    log.info(
        "final/: round %d student (%s by %s = %.3f) and %d distillation items in %s",
        chosen["round"],
        chosen["select"],
        chosen["metric"],
        chosen["value"],
        n,
        final,
    )
    return summary


def push_to_hub(final_dir, hub: Dict, api=None) -> Dict[str, str]:
    """Upload ``final/`` as a model repo and ``final/dataset`` as a dataset repo; returns
    {kind: commit url}. ``api`` is an ``HfApi`` (injected in tests)."""
    from huggingface_hub import HfApi

    final_dir = Path(final_dir)
    api = api or HfApi(token=hub.get("token"))
    private = bool(hub.get("private", False))
    out = {}
    if hub.get("model_id"):
        api.create_repo(hub["model_id"], repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(final_dir),
            repo_id=hub["model_id"],
            repo_type="model",
            ignore_patterns=["dataset/*", "DONE.json"],
            commit_message="fdd: distilled student",
        )
        out["model"] = str(getattr(info, "commit_url", info))
    if hub.get("dataset_id"):
        api.create_repo(hub["dataset_id"], repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(final_dir / "dataset"),
            repo_id=hub["dataset_id"],
            repo_type="dataset",
            commit_message="fdd: final distillation set",
        )
        out["dataset"] = str(getattr(info, "commit_url", info))
    for kind, url in out.items():
        log.info("pushed the %s to the Hub: %s", kind, url)
    return out


def run_final(run_dir, cfg: Dict, rows: List[Dict], hub_datasets: Sequence[str] = (), api=None) -> Optional[Dict]:
    """The stage after the loop: write ``final/`` and, when configured, push it (once per ids).
    ``hub_datasets``: the Hub ids the run read (``fdd.data.hub_ids``), for the model card."""
    summary = write_final(run_dir, cfg, rows, hub_datasets)
    fc = cfg.get("final", {})
    if summary is None or not fc.get("push_to_hub"):
        return summary
    hub = fc.get("hub") or {}
    marker = Path(run_dir) / "final" / "PUSHED.json"
    ids = {"model_id": hub.get("model_id"), "dataset_id": hub.get("dataset_id")}
    if marker.is_file() and read_json(marker).get("ids") == ids:
        log.info("final/ was pushed to %s before, not pushing again", ids)
        return summary
    write_json(marker, {"ids": ids, "urls": push_to_hub(Path(run_dir) / "final", hub, api=api)})
    return summary
