"""Build the student network: pretrained (Hub, folder, GGUF), or random init from a config
(the tiny test students), optionally wrapped with LoRA and gradient checkpointing."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from fdd.runtime.modeling import model_class

log = logging.getLogger(__name__)


def precision_dtype(precision) -> Optional[torch.dtype]:
    """The dtype a Lightning ``precision`` computes in (bf16/fp16 for the mixed and true half
    modes, None for fp32 and anything else): generation runs in the precision training used."""
    p = str(precision)
    if p.startswith("bf16"):
        return torch.bfloat16
    if p.startswith("16") or p.startswith("fp16"):
        return torch.float16
    return None


def build_model(cfg, tokenizer, init_from: Optional[str] = None, seed: int = 0):
    """The student's network. ``init_from`` (a saved folder, e.g. last round's checkpoint) wins
    over the config's base weights."""
    from transformers import AutoConfig

    cls = model_class(cfg.arch)
    # fp32 master weights: transformers 5 loads in the checkpoint's dtype by default, and a
    # student published in bf16 would otherwise be trained in bf16 under bf16-mixed.
    if init_from:
        model = cls.from_pretrained(init_from, dtype=torch.float32)
    elif cfg.pretrained or cfg.gguf_file:
        from fdd.runtime.modeling import load_pretrained_model

        model = load_pretrained_model(cfg.pretrained, cfg.arch, gguf_file=cfg.gguf_file, dtype=torch.float32)
    else:
        kw = dict(cfg.model_config)
        model_type = kw.pop("model_type")
        specials = {k: getattr(tokenizer, k) for k in ("pad_token_id", "eos_token_id", "bos_token_id")}
        specials = {k: v for k, v in specials.items() if v is not None}
        conf = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **specials, **kw)
        if cfg.arch == "seq2seq":
            conf.decoder_start_token_id = tokenizer.pad_token_id
        torch.manual_seed(seed)  # the same random init for the same seed
        model = cls.from_config(conf)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing: gradients reach LoRA adapters even though the frozen
        # embeddings' outputs do not require grad (the reentrant variant silently drops them).
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # the KV cache is useless in training and conflicts with it
    if cfg.lora.enabled:
        model = _wrap_lora(model, cfg)
    return model


def _wrap_lora(model, cfg):
    from peft import LoraConfig, TaskType, get_peft_model

    lcfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules) if cfg.lora.target_modules else None,
        task_type=TaskType.CAUSAL_LM if cfg.arch == "causal" else TaskType.SEQ_2_SEQ_LM,
    )
    model = get_peft_model(model, lcfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA: %d trainable parameters", trainable)
    return model


def save_model(model, tokenizer, out_dir: str) -> None:
    """A plain ``save_pretrained`` folder (LoRA adapters merged in) that any round can load."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    from fdd.runtime.modeling import save_plain

    save_plain(model, out_dir)
    tokenizer.save_pretrained(out_dir)
