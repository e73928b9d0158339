"""Entry point: ``python -m fdd.main [group=option ...] [key=value ...]``.

Composes and validates the config (a bad one fails here, before any work), builds the pieces
named by it, runs the FDD loop in the run directory (resuming finished stages) and always
finishes logging. Errors a user can fix (config, missing model or data) are one clear line.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import hydra
from omegaconf import DictConfig, OmegaConf

from fdd.config import ConfigError, key_role, register_configs, validate
from fdd.data import hub_ids, load_problems
from fdd.runtime.cpu import prefer_passive_wait
from fdd.runtime.identity import DEFINES, check_fingerprint, remove_if_empty, run_name
from fdd.runtime.io import check_writable_dir, disk_error_message
from fdd.runtime.secrets import mask_hydra_job_lines
from fdd.types import RoundMetrics

log = logging.getLogger("fdd")

# Nothing above imports torch (tests/test_cpu_threads.py checks), so OpenMP still reads this.
prefer_passive_wait()
register_configs()
# The run directory is named by the command's overrides, so rerunning a command resumes its run;
# the name is one sanitised, bounded folder without secrets (fdd/runtime/identity.py).
# Cosmetic keys (fdd.config.key_role) leave the name alone: another server or more sandbox workers
# resume the same run.
OmegaConf.register_new_resolver("fdd.run_name", lambda overrides: run_name(overrides, key_role), replace=True)


# A sweep's folder is named by the sweep's own overrides (augmentation=fdd,none). Hydra resolves
# hydra.sweep.dir again in every job, whose hydra.overrides.task are that job's overrides; cached,
# the name the sweep resolved is what each job gets (load_sweep_config copies the cache, as for ${now:}).
# hparams_search names no run (its trials' own overrides do) but it is what a search sweep is, so
# it names the sweep: an Optuna search never shares a folder with a plain sweep.
def sweep_key_role(key: str) -> str:
    return DEFINES if key == "hparams_search" else key_role(key)


OmegaConf.register_new_resolver(
    "fdd.sweep_name", lambda overrides: run_name(overrides, sweep_key_role), replace=True, use_cache=True
)
# Hydra's launchers log each sweep job's overrides (``#0 : teacher.api_key=...``): secrets masked.
mask_hydra_job_lines()


class UserError(RuntimeError):
    """An error with a message that tells the user what to do; printed without a traceback."""


def _user_errors():
    import sqlite3

    from fdd.method.loop import EmptyDistillationSetError
    from fdd.runtime.failures import TeacherUnavailableError
    from fdd.runtime.identity import FingerprintMismatch
    from fdd.runtime.io import MalformedFileError
    from fdd.runtime.modeling import ModelUnavailableError
    from fdd.runtime.stages import StageOutputError
    from fdd.sandbox import SandboxUnavailableError

    errors = [
        ConfigError,
        UserError,
        ModelUnavailableError,
        EmptyDistillationSetError,
        TeacherUnavailableError,
        FingerprintMismatch,
        StageOutputError,
        MalformedFileError,
        sqlite3.DatabaseError,
        SandboxUnavailableError,
    ]
    try:
        from fdd.data.files import DataFormatError, DataUnavailableError

        errors += [DataUnavailableError, DataFormatError]
    except ImportError:  # data backends not importable: nothing to translate
        pass
    from fdd.teachers.cache import CacheCorruptError

    errors.append(CacheCorruptError)  # teacher.cache_on_corrupt=error, or a damaged readonly replay
    return tuple(errors)


def dry_run(cfg, train, evals) -> dict:
    """How many teacher calls this config makes at most: the loop's own plan (fdd.method.loop.plan_calls)."""
    from fdd.method.cost import estimate_cost
    from fdd.method.loop import plan_calls

    plan = plan_calls(cfg, len(train))
    out = {
        "init_rationale_calls": plan.init_calls,
        "max_calls_per_round": [plan.calls(r) for r in range(1, plan.augmenting_rounds + 1)],
        "augmenting_rounds": plan.augmenting_rounds,
        "max_total_calls": plan.total_calls,
        "train_problems": len(train),
        "eval_problems": {k: len(v) for k, v in evals.items()},
        "teacher_tokens": estimate_cost(cfg, [p.question for p in train], plan),
    }
    print(OmegaConf.to_yaml(OmegaConf.create(out)))
    return out


def setup_notice(cfg) -> Optional[str]:
    """One line when a pretrained student is paired with the embedded default's simulator teacher
    (``student=flan-t5-base rounds=4`` alone keeps the synthetic world): it is a demo, not the paper."""
    if cfg.student.pretrained is None and cfg.student.gguf_file is None:
        return None
    if cfg.teacher.backend != "oracle":
        return None
    return (
        f"student={cfg.student.name} runs with the simulator teacher (teacher=oracle), dataset="
        f"{cfg.dataset.train.loader} and trainer.accelerator={cfg.trainer.accelerator}: for the paper's setup use "
        f"experiment=paper_flan_t5_base (or _small, _large, paper_smollm2) with your teacher server"
    )


def preflight(cfg) -> None:
    """Fail before any work when the student's Hub model cannot be had (the tokenizer is the
    cheapest file to ask for), or when the trainer asks for a GPU that is not there (the first fit
    would fail after the teacher's seed rationales were paid for)."""
    if str(cfg.trainer.accelerator) in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={cfg.trainer.accelerator} but torch sees no usable CUDA device "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use trainer=cpu"
            )
    s = cfg.student
    if s.tokenizer == "auto" and s.pretrained and not s.gguf_file and not Path(s.pretrained).is_dir():
        from fdd.runtime.modeling import load_tokenizer

        load_tokenizer(s.pretrained)


def run(cfg: DictConfig) -> list:
    """Run (or resume) FDD for a composed config; returns the per-round metric rows."""
    obj = validate(cfg)
    from fdd.teachers.roles import check_roles

    check_roles(obj)  # an augmenting run whose problem writer cannot write problems stops here
    run_dir = Path(obj.paths.output_dir)
    notice = setup_notice(obj)
    if notice:
        log.warning(notice)
    train, evals = load_problems(obj)
    if obj.dry_run:
        dry_run(obj, train, evals)
        return []
    preflight(obj)
    check_writable_dir(run_dir)  # a file in its place or a read-only folder: one line, before any work
    resolved = OmegaConf.to_container(cfg, resolve=True)
    check_fingerprint(run_dir, resolved, obj.resume, key_role)  # a run is its config: refuses a changed one
    if obj.recompute_from:
        from fdd.runtime.stages import recompute_from

        recompute_from(run_dir, obj.recompute_from)

    from fdd.method.loop import FDDLoop
    from fdd.reasoning.formats import get_format
    from fdd.reporting.tracking import Tracker
    from fdd.sandbox import Sandbox, SandboxLimits
    from fdd.students.student import Student
    from fdd.teachers import build_teacher

    fmt = get_format(obj.rationale)
    _group_by_variant(obj)
    tracker = Tracker(run_dir, obj.logger, config=resolved, name=run_dir.name)
    status = 1
    try:
        with (
            Sandbox(SandboxLimits.from_config(obj.sandbox)) as sandbox,
            build_teacher(
                obj.teacher, cache_dir=obj.teacher.cache_dir or obj.paths.cache_dir, seed=obj.seed
            ) as teacher,
        ):
            student = Student(obj.student, obj.trainer, fmt, obj.seed, tokenizer_dir=str(run_dir / "tokenizer"))
            loop = FDDLoop(obj, run_dir, teacher, student, fmt, sandbox, tracker, train, evals)
            rows = loop.run()
        if obj.final.enabled:
            from fdd.reporting.final import run_final

            run_final(run_dir, OmegaConf.to_container(cfg, resolve=True), rows, hub_ids(obj.dataset))
        status = 0
        return rows
    finally:
        tracker.finish(exit_code=status)


def _group_by_variant(obj) -> None:
    """wandb group = the configured group plus the variant's overrides without the seed, so the
    seeds of one variant of a sweep are grouped together."""
    if not (obj.logger.wandb and obj.logger.group_by_variant):
        return
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # noqa: BLE001 -- not under @hydra.main (tests, notebooks): keep the group
        return
    from fdd.reporting.tracking import variant_group

    obj.logger.group = variant_group(obj.logger.group, overrides)


def objective(rows) -> Optional[float]:
    """The sweep objective: the final round's mean held-out accuracy (None without one)."""
    scored = [m.mean_accuracy() for m in map(RoundMetrics.from_row, rows) if m.round > 0]
    scored = [v for v in scored if v is not None]
    return scored[-1] if scored else None


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run ``task(cfg)`` as a command: an error the user can fix becomes one line on stderr and exit
    status 2 (the traceback goes to the log file only, and a run directory made for nothing is
    removed); whatever happens, logging is finished (an open wandb run closed, log files flushed)."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig):
        status = 1
        try:
            result = task(cfg)
            status = 0
            return result
        except _user_errors() as exc:
            _fail(cfg, exc, str(exc))
        except Exception as exc:  # disk full, read-only run directory: the user's to fix, not a bug
            message = disk_error_message(exc, _run_dir(cfg))
            if message is None:
                raise
            _fail(cfg, exc, message)
        finally:
            _finish_logging(status)

    return wrapped


def _fail(cfg: DictConfig, exc: BaseException, message: str) -> None:
    """One ``fdd: error:`` line on stderr and exit status 2; the traceback goes to the log file only,
    and a run directory holding no work is removed (one holding work is kept as it is)."""
    log.debug("%s", exc, exc_info=True)  # the log file keeps the traceback; the console gets one line
    print(f"fdd: error: {message}", file=sys.stderr)
    _drop_empty_run_dir(cfg)
    sys.exit(2)


def _run_dir(cfg: DictConfig) -> Optional[str]:
    try:
        return str(cfg.paths.output_dir)
    except Exception:  # noqa: BLE001 -- an unresolvable or missing key: the error names no folder
        return None


def _finish_logging(status: int) -> None:
    """Close a wandb run the tracker could not (a crash before it finished) and flush the logs."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        try:
            wandb.finish(exit_code=status)
        except Exception as exc:  # noqa: BLE001 -- the run's own outcome matters more
            log.warning("wandb: could not finish the run (%s: %s)", type(exc).__name__, exc)
    for handler in (*logging.getLogger().handlers, *log.handlers):
        handler.flush()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@task_wrapper
def main(cfg: DictConfig) -> Optional[float]:
    """Returns the final mean held-out accuracy, so Optuna/Ax sweepers can optimise it."""
    rows = run(cfg)
    for row in map(RoundMetrics.from_row, rows):
        if row.round > 0 or row.accuracy:  # round 0 has one when the base student was evaluated
            acc = ", ".join(f"{k}={v:.3f}" for k, v in (row.accuracy or {}).items())
            log.info(
                "round %d: %s | easy %.2f hard %.2f | distill %s",
                row.round,
                acc,
                row.easy_ratio or 0,
                row.hard_ratio or 0,
                row.distill_size,
            )
    log.info("run directory: %s", cfg.paths.output_dir)
    return objective(rows)


def _drop_empty_run_dir(cfg) -> None:
    """A command that failed before any work leaves no run directory behind (Hydra made it)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        out = HydraConfig.get().runtime.output_dir
    except Exception:  # noqa: BLE001 -- not under Hydra: nothing was made for us
        return
    logging.shutdown()  # close the job's log file before removing its folder
    remove_if_empty(out, stop_at=Path(str(cfg.paths.root_dir)))


if __name__ == "__main__":
    from fdd.runtime.plugins import check_plugins

    check_plugins(sys.argv[1:])
    main()
