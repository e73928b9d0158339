"""In-process teacher: a transformers causal LM generating in batches (no server needed).

Meant for small/local teachers and for tests (``teacher=smollm2`` runs the embedded SmolLM2
GGUF on CPU). Prompts go through the tokenizer's chat template, batches are left-padded, and
decoding is a plain sampling loop over the KV cache so that every row samples with its OWN
``torch.Generator`` seeded from the request's seed: a sample is the same whether it is generated
alone, in another batch, or after half of its batch came from the cache (``generate()`` has one
global RNG per call, which would tie a sample to its batch mates).
"""

from __future__ import annotations

import logging
from typing import List, Optional

from fdd.teachers.llm import Completion, LLMTeacher, OnComplete, Request

log = logging.getLogger(__name__)


class HFTeacher(LLMTeacher):
    """A transformers model (hub id / folder in ``cfg.model``, or ``cfg.gguf_file``) as the teacher."""

    backend = "hf"

    def __init__(self, cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__(cfg, cache_dir=cache_dir, seed=seed)
        if not cfg.model and not cfg.gguf_file:
            raise ValueError("teacher=hf needs teacher.model (hub id or folder) or teacher.gguf_file")
        self.batch_size = max(1, int(cfg.batch_size))
        self._model = None
        self._tok = None
        self._device = None

    @property
    def model_id(self) -> str:
        return str(self.cfg.gguf_file or self.cfg.model)

    def _load(self) -> None:
        """Load lazily: building the teacher (e.g. for a dry run or a cached replay) costs nothing."""
        if self._model is not None:
            return
        import torch

        from fdd.runtime.modeling import load_pretrained_model, load_tokenizer

        dtype = None
        if self.cfg.dtype and self.cfg.dtype != "auto":
            dtype = getattr(torch, self.cfg.dtype)
        elif not self.cfg.gguf_file:
            dtype = "auto"
        log.info("loading teacher model %s", self.model_id)
        model = load_pretrained_model(self.cfg.model, "causal", gguf_file=self.cfg.gguf_file, dtype=dtype)
        tok = load_tokenizer(self.cfg.model or "", gguf_file=self.cfg.gguf_file)
        tok.padding_side = "left"  # generation continues the prompts' right ends
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._model = model.to(self._device).eval()
        self._tok = tok
        eos = set()
        for src in (getattr(model.generation_config, "eos_token_id", None), tok.eos_token_id):
            if isinstance(src, int):
                eos.add(src)
            elif src:
                eos.update(int(x) for x in src)
        self._eos = eos
        import inspect

        params = inspect.signature(model.forward).parameters
        # transformers >= 5.2x renamed past_key_values -> cache; speak whichever this version knows.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._extra_kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def _prompt(self, req: Request) -> str:
        tok = self._tok
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(req.chat(), add_generation_prompt=True, tokenize=False)
        # A base model without a template: a plain transcript it can continue.
        return "".join(f"{r.capitalize()}: {c}\n\n" for r, c in req.messages) + "Assistant:"

    def _generate(self, requests: List[Request], on_complete: Optional[OnComplete] = None) -> List[Completion]:
        self._load()
        prompts = [self._prompt(r) for r in requests]
        lengths = [len(self._tok(p, add_special_tokens=False).input_ids) for p in prompts]
        order = sorted(range(len(requests)), key=lambda i: lengths[i])  # similar lengths: little padding
        out: List[Optional[Completion]] = [None] * len(requests)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            try:
                comps = self._generate_batch([requests[i] for i in idx], [prompts[i] for i in idx])
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: fail this batch, not the round
                log.exception("teacher batch of %d failed", len(idx))
                comps = [Completion(None, error=f"request_failed: {type(exc).__name__}: {str(exc)[:100]}") for _ in idx]
            for i, c in zip(idx, comps):
                out[i] = c
                if on_complete is not None:
                    on_complete(i, c)
        return out  # type: ignore[return-value]

    def _generate_batch(self, reqs: List[Request], prompts: List[str]) -> List[Completion]:
        import torch

        tok, model, dev = self._tok, self._model, self._device
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        ids = enc["input_ids"].to(dev)
        attn = enc["attention_mask"].to(dev)
        n = ids.shape[0]
        gens = [torch.Generator(device="cpu").manual_seed(int(r.seed or 0)) for r in reqs]
        limits = [max(1, int(r.max_tokens)) for r in reqs]
        new_tokens: List[List[int]] = [[] for _ in reqs]
        done = [False] * n
        pad = tok.pad_token_id if tok.pad_token_id is not None else next(iter(self._eos), 0)
        pos = (attn.long().cumsum(-1) - 1).clamp(min=0)
        cur_ids, cur_pos, past = ids, pos, None
        with torch.inference_mode():
            for _ in range(max(limits)):
                res = model(
                    input_ids=cur_ids,
                    attention_mask=attn,
                    position_ids=cur_pos,
                    use_cache=True,
                    **{self._cache_kw: past},
                    **self._extra_kw,
                )
                past = getattr(res, "cache", None)
                if past is None:
                    past = getattr(res, "past_key_values", None)
                logits = res.logits[:, -1, :].float().cpu()
                nxt = []
                for row in range(n):
                    if done[row]:
                        nxt.append(pad)
                        continue
                    t = self._sample(logits[row], reqs[row], gens[row])
                    nxt.append(t)
                    if t in self._eos:
                        done[row] = True
                    else:
                        new_tokens[row].append(t)
                        done[row] = len(new_tokens[row]) >= limits[row]
                if all(done):
                    break
                cur_ids = torch.tensor(nxt, device=dev).unsqueeze(1)
                attn = torch.cat([attn, attn.new_ones((n, 1))], dim=1)
                cur_pos = cur_pos[:, -1:] + 1
        prompt_lens = attn[:, : ids.shape[1]].sum(-1).tolist()
        return [
            Completion(tok.decode(toks, skip_special_tokens=True).strip(), None, int(pl), len(toks))
            for toks, pl in zip(new_tokens, prompt_lens)
        ]

    @staticmethod
    def _sample(logits, req: Request, gen) -> int:
        import torch

        if req.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / req.temperature, dim=-1)
        if req.top_p < 1.0:
            sp, si = torch.sort(probs, descending=True)
            keep = torch.cumsum(sp, -1) - sp < req.top_p  # smallest prefix whose mass reaches top_p
            sp = torch.where(keep, sp, torch.zeros_like(sp))
            return int(si[torch.multinomial(sp / sp.sum(), 1, generator=gen)])
        return int(torch.multinomial(probs, 1, generator=gen))

    def close(self) -> None:
        self._model = None
        self._tok = None
        super().close()
