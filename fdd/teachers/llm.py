"""Shared logic of text-generating teachers (OpenAI-compatible servers, vLLM, in-process HF).

A backend only implements ``_generate(requests, on_complete)``: turn chat requests into
completions. Everything else lives here, so every backend behaves the same way:

* chat messages are built from the prompt templates in ``cfg.prompts`` (``system``,
  ``rationale_pot``, ``rationale_cot``, ``harder``, ``similar``; ``{question}`` placeholder),
  falling back to :data:`DEFAULT_PROMPTS`, read from fdd/conf/teacher/prompts/default.yaml
  (Program-of-Thought, as in the FDD paper);
* ``k`` samples of one prompt are ``k`` requests with ``sample_index`` 0..k-1 and a per-request
  seed derived from ``(seed, sample_index)``, at the configured (non-zero) temperature;
* the cache is consulted before anything is generated, and each completion is stored the moment
  the backend reports it (``on_complete``), so a killed run keeps what finished;
* replies are parsed (fences stripped from programs, the new question cut out of the
  "Problem:" format), and usage is counted per job.
"""

from __future__ import annotations

import hashlib
import logging
import re
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fdd.reasoning.fences import fenced_code
from fdd.runtime.modeling import ModelUnavailableError
from fdd.teachers.base import Reply, Teacher
from fdd.teachers.cache import TeacherCache, cache_key
from fdd.types import Problem

log = logging.getLogger(__name__)

PROMPT_KEYS = ("system", "rationale_pot", "rationale_cot", "harder", "similar")

# The teacher configs' folder; its prompts/default.yaml is the one source of the default prompts.
CONF_TEACHER = Path(__file__).resolve().parents[1] / "conf" / "teacher"


def _default_prompts() -> Dict[str, str]:
    import yaml

    return yaml.safe_load((CONF_TEACHER / "prompts" / "default.yaml").read_text(encoding="utf-8"))


# What a teacher config without prompts falls back to (and what dry_run prices for the simulator).
DEFAULT_PROMPTS: Dict[str, str] = _default_prompts()


@dataclass(frozen=True)
class Request:
    """One chat completion to produce: a job, its messages, sampling parameters, sample index."""

    job: str  # rationale | harder | similar
    messages: Tuple[Tuple[str, str], ...]  # ((role, content), ...): hashable, canonical
    temperature: float
    top_p: float
    max_tokens: int
    seed: Optional[int]
    sample_index: int = 0
    fmt: Optional[str] = None  # pot | cot for rationales

    def chat(self) -> List[Dict[str, str]]:
        """Messages in the OpenAI / chat-template format."""
        return [{"role": r, "content": c} for r, c in self.messages]

    def sampling(self) -> Dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}


@dataclass
class Completion:
    """What a backend made of one request: ``text``, or ``error`` when the request failed."""

    text: Optional[str]
    error: Optional[str] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    meta: Dict[str, Any] = field(default_factory=dict)  # e.g. endpoint, attempts


OnComplete = Callable[[int, Completion], None]

# Errors that mean the teacher itself cannot work; everything else fails only the batch at hand.
_FATAL = (ImportError, ModelUnavailableError, MemoryError)


def sample_seed(seed: int, sample_index: int, question: str = "") -> int:
    """A per-request seed from the run seed, the question and the sample index (31 bits: every
    server accepts it): sample i of two problems draws from two streams, not one."""
    content = f"{seed}:{sample_index}" + (f":{question}" if question else "")
    h = hashlib.sha256(f"fdd-teacher:{content}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


_PROBLEM_RE = re.compile(r"^[ \t>*_#-]*(?:new\s+)?(?:problem|question)[ \t]*[*_]*[ \t]*:[ \t]*[*_]*", re.I | re.M)
_END_RE = re.compile(r"^[ \t>*_#-]*(?:answer|solution|explanation|note|reasoning)[ \t]*[*_]*[ \t]*:", re.I | re.M)


def parse_program(text: str) -> str:
    """A PoT reply -> the program: the first fenced code block when there is one (the fences,
    and any prose a chatty model wrote around them, removed), else the reply as it is."""
    stripped = text.strip()
    code = fenced_code(stripped)
    return stripped if code is None else code.strip("\n")


def parse_question(text: str) -> Optional[str]:
    """A harder/similar reply -> the new question (the text after "Problem:", up to a following
    "Answer:"/"Solution:" section, or up to the blank line after its question mark), or None when
    the reply does not follow the format."""
    m = _PROBLEM_RE.search(text)
    if not m:
        return None
    rest = text[m.end() :]
    end = _END_RE.search(rest)
    if end:
        rest = rest[: end.start()]
    question = rest.strip().strip("*_").strip()
    # A problem is one paragraph; what follows a blank line after its question is the model going on
    # ("To solve this problem: 1. ...", a second "Question: ..."), which the student must not see.
    first, sep, _more = question.partition("\n\n")
    if sep and "?" in first:
        question = first.strip()
    # Models sometimes quote the question; quotes are not part of it.
    if len(question) >= 2 and question[0] == question[-1] and question[0] in "\"'":
        question = question[1:-1].strip()
    return question or None


class LLMTeacher(Teacher):
    """A teacher that writes text with a language model; backends implement :meth:`_generate`."""

    backend = "llm"
    # Whether requests carry their own seed; backends where a per-request seed is costly or
    # meaningless turn it off (see fdd/teachers/vllm.py).
    request_seeds = True

    def __init__(self, cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = int(seed)
        self.prompts: Dict[str, str] = dict(DEFAULT_PROMPTS)
        self.prompts.update({k: v for k, v in dict(cfg.prompts or {}).items() if v is not None})
        unknown = set(self.prompts) - set(PROMPT_KEYS)
        if unknown:
            log.warning("ignoring unknown teacher prompt keys: %s", sorted(unknown))
        mode = cfg.cache or "on"
        cache_dir = cfg.cache_dir or cache_dir
        if mode != "off" and not cache_dir:
            if mode == "readonly":
                raise ValueError("teacher.cache=readonly needs a cache_dir (teacher.cache_dir or paths.cache_dir)")
            log.warning("teacher cache is on but no cache_dir was given; teacher calls will not be cached")
            mode = "off"
        self.cache = TeacherCache(cache_dir, mode, on_corrupt=cfg.cache_on_corrupt or "recreate")

    # ---- what backends provide -------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """The model's name as it enters the cache key."""
        return str(self.cfg.model or getattr(self.cfg, "gguf_file", None) or "")

    @abstractmethod
    def _generate(self, requests: List[Request], on_complete: Optional[OnComplete] = None) -> List[Completion]:
        """One completion per request, in order. Never raises for a single bad request (it
        becomes ``Completion(None, error=...)``). Call ``on_complete(i, completion)`` as soon as
        request ``i`` is done so the result is cached even if the batch is interrupted later."""

    # ---- the three jobs --------------------------------------------------------------------
    def write_rationales(self, problems: Sequence[Problem], k: int, fmt: str, first: int = 0) -> List[List[Reply]]:
        if fmt not in ("pot", "cot"):
            raise ValueError(f"rationale format must be 'pot' or 'cot', got {fmt!r}")
        return self._job("rationale", problems, k, self.prompts[f"rationale_{fmt}"], fmt=fmt, first=first)

    def write_harder(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        return self._job("harder", problems, n, self.prompts["harder"])

    def write_similar(self, problems: Sequence[Problem], n: int = 1) -> List[List[Reply]]:
        return self._job("similar", problems, n, self.prompts["similar"])

    # ---- machinery -------------------------------------------------------------------------
    def build_messages(self, template: str, question: str) -> Tuple[Tuple[str, str], ...]:
        # str.replace, not str.format: templates legitimately contain braces (Python code, JSON).
        user = template.replace("{question}", question.strip())
        system = self.prompts.get("system")
        msgs = []
        if system:
            msgs.append(("system", system))
        msgs.append(("user", user))
        return tuple(msgs)

    def make_request(
        self, job: str, question: str, template: str, sample_index: int, fmt: Optional[str] = None
    ) -> Request:
        return Request(
            job=job,
            messages=self.build_messages(template, question),
            temperature=float(self.cfg.temperature),
            top_p=float(self.cfg.top_p),
            max_tokens=int(self.cfg.max_tokens),
            seed=sample_seed(self.seed, sample_index, question) if self.request_seeds else None,
            sample_index=sample_index,
            fmt=fmt,
        )

    def request_key(self, req: Request) -> str:
        return cache_key(
            {
                "backend": self.backend,
                "model": self.model_id,
                "messages": req.chat(),
                "sampling": req.sampling(),
                "sample_index": req.sample_index,
            }
        )

    def _job(
        self, job: str, problems: Sequence[Problem], n: int, template: str, fmt: Optional[str] = None, first: int = 0
    ) -> List[List[Reply]]:
        if n <= 0 or not problems:
            return [[] for _ in problems]
        reqs = [self.make_request(job, p.question, template, i, fmt) for p in problems for i in range(first, first + n)]
        comps, cached = self.run_requests(reqs)
        replies = [self._to_reply(r, c, hit) for r, c, hit in zip(reqs, comps, cached)]
        return [replies[i * n : (i + 1) * n] for i in range(len(problems))]

    def run_requests(self, reqs: List[Request]) -> Tuple[List[Completion], List[bool]]:
        """Completions for ``reqs`` (cache first, then the backend) and which came from the cache."""
        keys = [self.request_key(r) for r in reqs]
        hits = self.cache.get_many(keys) if self.cache.readable else {}
        out: List[Optional[Completion]] = [None] * len(reqs)
        cached = [False] * len(reqs)
        todo: List[int] = []
        first_of: Dict[str, int] = {}
        dupes: List[Tuple[int, int]] = []
        for i, (r, key) in enumerate(zip(reqs, keys)):
            hit = hits.get(key)
            if hit is not None:
                out[i] = Completion(hit.text, None, hit.prompt_tokens, hit.completion_tokens)
                cached[i] = True
                self.usage.add(r.job, cached=1)
            elif self.cache.mode == "readonly":
                out[i] = Completion(None, error="cache_miss")
                self.usage.add_failure(r.job, "cache_miss")
                self.usage.add(r.job, cache_miss=1)
            elif key in first_of:  # the same prompt twice in one batch: ask once
                dupes.append((i, first_of[key]))
            else:
                first_of[key] = i
                todo.append(i)

        if todo:
            sub = [reqs[i] for i in todo]

            def on_complete(j: int, comp: Completion) -> None:
                # Called by the backend (possibly from another thread) as each request finishes.
                i = todo[j]
                if comp.error is None and comp.text:
                    self.cache.put(
                        keys[i],
                        backend=self.backend,
                        model=self.model_id,
                        job=reqs[i].job,
                        request={
                            "messages": reqs[i].chat(),
                            "sampling": reqs[i].sampling(),
                            "sample_index": reqs[i].sample_index,
                        },
                        text=comp.text,
                        prompt_tokens=comp.prompt_tokens,
                        completion_tokens=comp.completion_tokens,
                    )

            try:
                comps = self._generate(sub, on_complete)
            except _FATAL:
                raise  # a teacher that cannot exist (no weights, no vllm) is a setup error, not a bad request
            except Exception as exc:  # noqa: BLE001 - a broken batch fails its requests, not the round
                log.exception("teacher backend %s failed a batch of %d requests", self.backend, len(sub))
                reason = f"request_failed: {type(exc).__name__}: {str(exc)[:120]}"
                comps = [Completion(None, error=reason) for _ in sub]
            if len(comps) != len(sub):  # a backend bug; keep positions honest
                log.error("backend returned %d completions for %d requests", len(comps), len(sub))
                comps = list(comps)[: len(sub)] + [Completion(None, error="request_failed: missing completion")] * (
                    len(sub) - len(comps)
                )
            for i, comp in zip(todo, comps):
                out[i] = comp
                self.usage.add(
                    reqs[i].job, requests=1, prompt_tokens=comp.prompt_tokens, completion_tokens=comp.completion_tokens
                )
                if comp.error is not None:
                    self.usage.add_failure(reqs[i].job, comp.error)
                self.usage.add_retries(reqs[i].job, comp.meta.get("retried") or {})
            self.cache.flush()  # this batch's replies are committed before the caller moves on
        for i, j in dupes:
            out[i] = out[j]
            self.usage.add(reqs[i].job, cached=1)
        return [c if c is not None else Completion(None, error="request_failed: missing") for c in out], cached

    def _to_reply(self, req: Request, comp: Completion, cached: bool) -> Reply:
        call: Dict[str, Any] = {"sample_index": req.sample_index, "cached": cached}
        if comp.error is not None:
            return Reply(None, error=comp.error, call=call)
        text = comp.text or ""
        if not text.strip():
            self.usage.add(req.job, empty=1)
            return Reply(None, error="empty_reply", call=call)
        if req.job == "rationale":
            parsed = parse_program(text) if req.fmt == "pot" else text.strip()
            if not parsed.strip():
                self.usage.add(req.job, empty=1)
                return Reply(None, error="empty_reply", call=call)
            return Reply(parsed, call=call)
        question = parse_question(text)
        if question is None:
            self.usage.add(req.job, unparseable=1)
            call["raw"] = text[:1000]
            return Reply(None, error="unparseable", call=call)
        return Reply(question, call=call)

    def close(self) -> None:
        self.cache.close()
