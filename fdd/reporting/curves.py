"""Per-step training curves (loss, learning rate) into the run's existing wandb run."""

from __future__ import annotations

import logging
from typing import Dict, Optional

from pytorch_lightning.loggers.logger import Logger

log = logging.getLogger(__name__)


class WandbCurves(Logger):
    """A Lightning logger that writes into an existing wandb run under a per-round prefix (the
    run belongs to the Tracker; Lightning's WandbLogger would start or take over a run)."""

    def __init__(self, run, round_idx: int) -> None:
        super().__init__()
        self._run, self.prefix = run, f"train/round_{round_idx}"
        self._safe(self._run.define_metric, f"{self.prefix}/step")
        self._safe(self._run.define_metric, f"{self.prefix}/*", step_metric=f"{self.prefix}/step")

    @staticmethod
    def _safe(fn, *args, **kw) -> None:
        try:
            fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 -- curves are best-effort, never a failed fit
            log.warning("wandb: could not log training curves (%s: %s)", type(exc).__name__, exc)

    @property
    def name(self) -> str:
        return "wandb-curves"

    @property
    def version(self) -> str:
        return self.prefix

    def log_hyperparams(self, params, *args, **kwargs) -> None:  # the run's config holds them already
        pass

    def log_metrics(self, metrics: Dict[str, float], step: Optional[int] = None) -> None:
        row = {f"{self.prefix}/{k.removeprefix('train/')}": float(v) for k, v in metrics.items() if k != "epoch"}
        if row:
            row[f"{self.prefix}/step"] = int(step or 0)
            self._safe(self._run.log, row)
