"""The Lightning module that fine-tunes a Hugging Face causal or seq2seq student."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class StudentModule(pl.LightningModule):
    """Cross-entropy on the rationale tokens (labels are -100 elsewhere); AdamW with linear
    warm-up and decay over the fit's own number of steps."""

    def __init__(self, model, lr: float = 3e-4, weight_decay: float = 0.01, warmup_ratio: float = 0.06):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        # Rationale tokens trained on in this fit (throughput), kept on the device: reading it
        # every step (int(...)) would force a device sync per step.
        self.tokens_seen = torch.zeros((), dtype=torch.long)

    def forward(self, **batch):
        return self.model(**batch)

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        n_tokens = (batch["labels"] != -100).sum()
        bs = batch["input_ids"].shape[0]
        # The step loss is this rank's (no all-reduce per step); the epoch loss is the mean over
        # all ranks, reduced once at the epoch's end.
        self.log("train/loss_step", out.loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/loss_epoch", out.loss, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        self.tokens_seen = self.tokens_seen.to(n_tokens.device) + n_tokens
        return out.loss

    def on_train_epoch_end(self) -> None:
        # Summed over ranks and sent back to the main process by ddp_spawn, where the
        # attribute above would be lost with the worker processes.
        self.log(
            "train/tokens", self.tokens_seen.float(), reduce_fx="sum", sync_dist=True, on_step=False, on_epoch=True
        )
        self.log("train/steps", float(self.trainer.global_step), reduce_fx="max", on_step=False, on_epoch=True)

    def configure_optimizers(self):
        from transformers import get_scheduler

        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = get_scheduler("linear", opt, num_warmup_steps=int(self.warmup_ratio * total), num_training_steps=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
