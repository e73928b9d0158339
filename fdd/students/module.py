"""The Lightning module that fine-tunes a Hugging Face causal or seq2seq student."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class StudentModule(pl.LightningModule):
    """Cross-entropy on the rationale tokens (labels are -100 elsewhere); AdamW with linear
    warm-up and decay over the fit's own number of steps."""

    def __init__(
        self, model, lr: float = 3e-4, weight_decay: float = 0.01, warmup_ratio: float = 0.06, fast: bool = False
    ):
        super().__init__()
        self.model = model
        # fast (student.fast_train): a causal LM's head and cross-entropy run only at the label
        # positions (the same mean over label tokens as the model's own loss); packed batches
        # (position_ids, no mask) take this path too.
        self.head_split = _head_split(model) if fast else None
        if fast:
            from fdd.students.fastdrop import use_fast_dropout

            use_fast_dropout(model)
        self.lr, self.weight_decay, self.warmup_ratio = lr, weight_decay, warmup_ratio
        # Rationale tokens trained on in this fit (throughput), kept on the device: reading it
        # every step (int(...)) would force a device sync per step.
        self.tokens_seen = torch.zeros((), dtype=torch.long)

    def forward(self, **batch):
        return self.model(**batch)

    def loss(self, batch) -> torch.Tensor:
        """Mean cross-entropy over the batch's label tokens."""
        if "position_ids" in batch:
            # packed rows: transformers reads the sequence boundaries from the position ids only
            # without a KV cache (which a model in eval mode would otherwise make)
            batch = {**batch, "use_cache": False}
        if self.head_split is None:
            return self.model(**batch).loss
        body, head = self.head_split
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        hidden = body(**inputs).last_hidden_state
        target = labels[:, 1:]
        keep = target != -100
        logits = head(hidden[:, :-1][keep]).float()
        return torch.nn.functional.cross_entropy(logits, target[keep])

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        n_tokens = (batch["labels"] != -100).sum()
        bs = batch["input_ids"].shape[0]
        # The step loss is this rank's (no all-reduce per step); the epoch loss is the mean over
        # all ranks, reduced once at the epoch's end.
        self.log("train/loss_step", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        self.tokens_seen = self.tokens_seen.to(n_tokens.device) + n_tokens
        return loss

    def on_train_end(self) -> None:
        from fdd.students.fastdrop import restore_attention

        restore_attention(self.model)  # the saved model and generation use the usual attention

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


def _head_split(model):
    """(body, head) of a plain causal LM whose logits are ``head(body(...).last_hidden_state)``
    (Llama-like: no logit soft-capping or scaling), else None (the model's own loss is used)."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel) or getattr(model.config, "is_encoder_decoder", False):
        return None
    cfg = model.config
    if any(
        getattr(cfg, k, None) not in (None, 1.0) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")
    ):
        return None
    head, body = model.get_output_embeddings(), model.base_model
    if not isinstance(head, torch.nn.Linear) or body is model:
        return None
    if model.config.model_type not in _PLAIN_HEAD:
        return None
    return body, head


# Causal LMs whose forward is ``logits = lm_head(model(...).last_hidden_state)`` (checked in
# transformers 5's modeling files).
_PLAIN_HEAD = {"llama", "mistral", "qwen2", "qwen3", "smollm3", "olmo", "olmo2", "phi3", "gpt_neox"}
