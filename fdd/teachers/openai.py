"""Teacher backend for any OpenAI-compatible chat endpoint (OpenAI, vLLM/SGLang/TGI servers,
``transformers serve``, a local fake for tests), through the official ``openai`` async client.

* Endpoints: ``cfg.base_urls`` (several are shared out: each request goes to the endpoint with
  the fewest requests in flight, ties broken round-robin), else ``$OPENAI_BASE_URL``, else
  api.openai.com. Key: ``cfg.api_key``, else ``$OPENAI_API_KEY``, else a dummy (local servers).
  Model: ``cfg.model``, else ``$OPENAI_MODEL``, else the first model the first endpoint lists.
* Concurrency: ONE global ``asyncio.Semaphore(cfg.concurrency)`` bounds the requests in flight
  over all endpoints together (so ``concurrency`` is the total load this run puts on the
  servers, whatever the number of endpoints). Each endpoint has its own shared ``AsyncOpenAI``
  client whose connection pool holds ``concurrency`` keep-alive connections.
* Retries are ours (the client's own are disabled): 429, 408, 409, 5xx, timeouts, connection
  errors, malformed responses and empty 200 replies (no choices, or empty content) are retried
  with exponential backoff and full jitter, at most ``cfg.max_retries`` times, waiting at least
  the server's ``Retry-After`` (seconds or HTTP date) when it sends one; a backoff never holds a
  concurrency slot. Other 4xx fail at once. A request that still fails becomes
  ``Completion(None, error="request_failed: <reason>")``; ``meta["retried"]`` counts the failed
  attempts before the last by kind (:func:`fdd.teachers.base.failure_kind`) for the usage.
* Each request has a total time limit of ``cfg.timeout_s``; with ``cfg.stream`` the limit is on
  the wait for each piece of the reply instead, so a slow server still writing is never cut off.
* ``cfg.concurrency`` null: the servers' parallel slots where they report them (llama.cpp).
* Sync callers: the async batch runs on a private event loop in a daemon thread owned by the
  teacher, so ``write_*`` work from plain code, from any thread, and from inside a running event
  loop (e.g. a notebook) alike, and the clients' connection pools survive between batches.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from fdd.runtime.modeling import ModelUnavailableError
from fdd.runtime.progress import duration
from fdd.runtime.seeding import rng
from fdd.teachers.base import failure_kind
from fdd.teachers.llm import Completion, LLMTeacher, OnComplete, Request

log = logging.getLogger(__name__)
# The HTTP stack logs every request at INFO; one line per teacher call drowns the run's log.
for _name in ("httpx", "httpx2"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_CONCURRENCY = 16  # per endpoint, when teacher.concurrency is null and a server does not tell
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is treated as asking for this long


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` header -> seconds to wait (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Endpoint:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = None  # AsyncOpenAI, created inside the private loop
        self.inflight = 0
        self.sent = 0


class _Failure(Exception):
    def __init__(self, reason: str, retryable: bool, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class _ProgressLog:
    """Log lines of a long batch for logs and non-terminals (where tqdm's bar is off): done,
    failed, elapsed and an ETA, at most every ``every_s`` seconds and at the end."""

    def __init__(self, what: str, total: int, every_s: float = 30.0) -> None:
        self.what, self.total, self.every_s = what, total, every_s
        self.n = self.failed = 0
        self.start = self.last = time.monotonic()

    def done(self, failed: bool = False) -> None:
        self.n += 1
        self.failed += failed
        now = time.monotonic()
        if now - self.last < self.every_s and self.n < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / self.n * (self.total - self.n)
        log.info(
            "%s: %d/%d done%s, %s elapsed%s",
            self.what,
            self.n,
            self.total,
            f" ({self.failed} failed)" if self.failed else "",
            duration(elapsed),
            f", ETA {duration(eta)}" if self.n < self.total else "",
        )


async def _within(awaitable, seconds: float):
    """``awaitable``, or asyncio.TimeoutError after ``seconds``."""
    if hasattr(asyncio, "timeout"):  # 3.11+: no extra task, unlike wait_for
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


class OpenAITeacher(LLMTeacher):
    """An OpenAI-compatible server as the FDD teacher."""

    backend = "openai"
    backoff_base_s = 0.5  # first retry waits ~U(0, 0.5 s), then doubling ...
    backoff_cap_s = 20.0  # ... up to this
    transport = "auto"  # auto | aiohttp | httpx: the HTTP stack under the openai client
    raw_responses = True  # client.post + json.loads instead of chat.completions.create (see _send)

    def __init__(self, cfg, *, cache_dir: Optional[str] = None, seed: int = 0) -> None:
        super().__init__(cfg, cache_dir=cache_dir, seed=seed)
        urls = [u for u in (cfg.base_urls or []) if u] or [os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL]
        self.endpoints = [_Endpoint(u.rstrip("/")) for u in urls]
        self.api_key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._model: Optional[str] = cfg.model or os.environ.get("OPENAI_MODEL")
        # None until known: the servers' own slots are asked for on first use (_setup)
        self.concurrency: Optional[int] = max(1, int(cfg.concurrency)) if cfg.concurrency is not None else None
        self.stream = bool(cfg.stream)
        self.timeout_s = float(cfg.timeout_s)
        self.max_retries = max(0, int(cfg.max_retries))
        self._rng = rng(self.seed, "retry-jitter")  # jitter only; never affects what is generated
        self._rr = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._sem: Optional[asyncio.Semaphore] = None
        self._start_lock = threading.Lock()
        self.show_progress: Optional[bool] = None  # None: tqdm decides (on for a terminal)

    # ---- event loop ------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="fdd-openai-teacher", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
                self._sem = None
            return self._loop

    def _call(self, coro, timeout: Optional[float] = None):
        """Run ``coro`` on the private loop and wait; cancel it if the caller is interrupted."""
        fut = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise

    def _make_client(self, url: str):
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        try:
            from openai import DefaultAioHttpClient
        except ImportError:  # openai < 1.9x has no aiohttp transport
            DefaultAioHttpClient = None

        try:
            import httpx2 as httpx  # the HTTP library of openai >= 3
        except ImportError:  # pragma: no cover - openai 1.x/2.x
            import httpx  # type: ignore[no-redef]
        self._raw_response_cls = httpx.Response
        # Pool as large as the concurrency, all kept alive: no reconnects between requests.
        limits = httpx.Limits(
            max_connections=self.concurrency + 4, max_keepalive_connections=self.concurrency + 4, keepalive_expiry=60.0
        )
        timeout = httpx.Timeout(self.timeout_s + 5.0, connect=min(10.0, self.timeout_s))
        http_client = None
        if self.transport in ("auto", "aiohttp") and DefaultAioHttpClient is not None:
            try:  # aiohttp's C parser costs a fraction of httpx's CPU per request
                http_client = DefaultAioHttpClient(limits=limits, timeout=timeout)
            except (RuntimeError, ImportError):  # the aiohttp extra is not installed
                if self.transport == "aiohttp":
                    raise
        if http_client is None:
            http_client = DefaultAsyncHttpxClient(limits=limits, timeout=timeout)
        return AsyncOpenAI(base_url=url, api_key=self.api_key, max_retries=0, timeout=timeout, http_client=http_client)

    async def _setup(self) -> None:
        if self.concurrency is None:
            self.concurrency = await self._server_slots()
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        for ep in self.endpoints:
            if ep.client is None:
                ep.client = self._make_client(ep.url)

    async def _server_slots(self) -> int:
        """Requests the servers can work on at once: the sum of their parallel slots where they
        say (llama.cpp's ``GET /props`` -> ``total_slots``), DEFAULT_CONCURRENCY per server that does
        not. More in flight than slots only queues on the server, where a request's time limit
        runs while it waits (measured: 16 against 4 slots timed out 47 of 40 requests, issue 22)."""
        import aiohttp

        total = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=min(10.0, self.timeout_s))) as s:
            for ep in self.endpoints:
                root = ep.url[: -len("/v1")] if ep.url.endswith("/v1") else ep.url
                slots = None
                try:
                    async with s.get(root + "/props", headers={"Authorization": f"Bearer {self.api_key}"}) as r:
                        if r.status == 200:
                            slots = (await r.json(content_type=None)).get("total_slots")
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, AttributeError):
                    slots = None
                if isinstance(slots, int) and slots > 0:
                    log.info("teacher endpoint %s: %d parallel slots", ep.url, slots)
                    total += slots
                else:
                    log.info(
                        "teacher endpoint %s does not report its slots; %d requests in flight for it "
                        "(set teacher.concurrency to change)",
                        ep.url,
                        DEFAULT_CONCURRENCY,
                    )
                    total += DEFAULT_CONCURRENCY
        return max(1, total)

    # ---- model -----------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        if self._model is None:
            self._model = self._call(self._discover_model(), timeout=self.timeout_s + 10)
        return self._model

    async def _discover_model(self) -> str:
        await self._setup()
        try:
            page = await asyncio.wait_for(self.endpoints[0].client.models.list(), self.timeout_s)
            models = [m.id for m in page.data]
        except Exception as exc:  # noqa: BLE001
            raise ModelUnavailableError(
                f"teacher.model is not set and {self.endpoints[0].url} could not list its "
                f"models ({type(exc).__name__}: {exc}); set teacher.model"
            ) from exc
        if not models:
            # A made-up name would be refused by the server and end up in every cache key.
            raise ModelUnavailableError(
                f"teacher.model is not set and {self.endpoints[0].url} lists no models; set teacher.model"
            )
        log.info("teacher.model not set; using %r, the first model of %s", models[0], self.endpoints[0].url)
        return models[0]

    # ---- generation ------------------------------------------------------------------------
    def _generate(self, requests: List[Request], on_complete: Optional[OnComplete] = None) -> List[Completion]:
        model = self.model_id
        return self._call(self._agenerate(requests, model, on_complete))

    async def _agenerate(
        self, requests: List[Request], model: str, on_complete: Optional[OnComplete]
    ) -> List[Completion]:
        from tqdm.auto import tqdm

        await self._setup()
        job = requests[0].job if requests else ""
        bar = tqdm(
            total=len(requests),
            desc=f"teacher {job}",
            unit="req",
            leave=False,
            disable=(not self.show_progress) if self.show_progress is not None else None,
        )
        out: List[Optional[Completion]] = [None] * len(requests)
        progress = _ProgressLog(f"teacher {job}", len(requests))

        async def one(i: int, req: Request) -> None:
            comp = await self._request(req, model)
            out[i] = comp
            if on_complete is not None:
                try:
                    on_complete(i, comp)  # commits to the cache right now
                except Exception:  # noqa: BLE001 - a cache hiccup must not lose the reply
                    log.exception("on_complete failed for request %d", i)
            bar.update(1)
            progress.done(comp.error is not None)

        try:
            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        finally:
            bar.close()
        return [c if c is not None else Completion(None, error="request_failed: cancelled") for c in out]

    def _pick(self) -> _Endpoint:
        """The least-loaded endpoint; round-robin among equally loaded ones."""
        n = len(self.endpoints)
        best = None
        for j in range(n):
            ep = self.endpoints[(self._rr + j) % n]
            if best is None or ep.inflight < best.inflight:
                best = ep
        self._rr = (self._rr + 1) % n
        return best

    async def _request(self, req: Request, model: str) -> Completion:
        attempt = 0
        started = time.monotonic()
        retried: Dict[str, int] = {}  # failed attempts that were tried again, by kind (for usage)
        while True:
            async with self._sem:
                ep = self._pick()
                ep.inflight += 1
                ep.sent += 1
                try:
                    if self.stream:  # the limit is per piece of the reply (_stream)
                        comp = await self._send(ep, req, model)
                    elif hasattr(asyncio, "timeout"):  # 3.11+: no extra task per request, unlike wait_for
                        async with asyncio.timeout(self.timeout_s):
                            comp = await self._send(ep, req, model)
                    else:  # pragma: no cover - Python 3.10
                        comp = await asyncio.wait_for(self._send(ep, req, model), self.timeout_s)
                    comp.meta.update(endpoint=ep.url, attempts=attempt + 1, retried=retried)
                    return comp
                except asyncio.TimeoutError:
                    fail = _Failure("timeout", True)
                except _Failure as f:
                    fail = f
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - classified below, never propagated
                    fail = self._classify(exc)
                finally:
                    ep.inflight -= 1
            if not fail.retryable or attempt >= self.max_retries:
                log.warning(
                    "teacher request failed after %d attempt(s) in %.1fs: %s",
                    attempt + 1,
                    time.monotonic() - started,
                    fail.reason,
                )
                return Completion(
                    None,
                    error=f"request_failed: {fail.reason}",
                    meta={"attempts": attempt + 1, "endpoint": ep.url, "retried": retried},
                )
            kind = failure_kind(fail.reason)
            retried[kind] = retried.get(kind, 0) + 1
            # Full jitter spreads retries of many clients; Retry-After is a floor, not a suggestion.
            delay = self._rng.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt))
            if fail.retry_after is not None:
                delay = min(fail.retry_after, MAX_RETRY_AFTER_S) + self._rng.uniform(0, 0.1)
            log.debug("retrying teacher request in %.2fs (attempt %d, %s)", delay, attempt + 1, fail.reason)
            await asyncio.sleep(delay)
            attempt += 1

    async def _send(self, ep: _Endpoint, req: Request, model: str) -> Completion:
        body: Dict[str, Any] = {
            "model": model,
            "messages": req.chat(),
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
        }
        if req.temperature > 0:
            body["top_p"] = req.top_p
        if req.seed is not None:
            body["seed"] = req.seed
        if self.stream:
            return self._completion(*await self._stream(ep, body))
        # The client's generic ``post`` (its documented way to call any endpoint) with a raw
        # response: same auth, base URL, timeouts and status-error mapping as
        # ``chat.completions.create``, but without its per-call TypedDict transform and pydantic
        # parsing, which cost ~1 ms of CPU per request -- the bottleneck at high concurrency.
        if self.raw_responses:
            http_response = await ep.client.post("/chat/completions", body=body, cast_to=self._raw_response_cls)
            data = json.loads(http_response.content)  # ValueError -> "malformed response", retried
        else:  # the typed path, kept for comparison (benchmarks/teacher_throughput.py --typed)
            resp = await ep.client.chat.completions.create(**body)
            data = resp.model_dump() if hasattr(resp, "model_dump") else resp
        if not isinstance(data, dict):
            raise _Failure("malformed response", True)
        choices = data.get("choices")
        if not choices:  # a 200 without choices: an overloaded or restarting server, retried like a 5xx
            raise _Failure("empty reply (no choices)", True)
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise _Failure("malformed response", True)
        first = choices[0]
        message = first.get("message")
        if message is not None and not isinstance(message, dict):
            raise _Failure("malformed response", True)
        text = (message or {}).get("content") or ""
        if not isinstance(text, str):
            raise _Failure("malformed response", True)
        return self._completion(text, first.get("finish_reason"), data.get("usage") or {})

    @staticmethod
    def _completion(text: str, finish_reason: Optional[str], usage: Dict[str, Any]) -> Completion:
        if not text.strip():
            # Transient like a 5xx: never cached, retried, and a failure if it persists, so a
            # rerun asks again instead of freezing a lost item into a finished stage.
            raise _Failure(f"empty reply (finish_reason={finish_reason})", True)
        pt = int(usage.get("prompt_tokens") or 0)
        ct = int(usage.get("completion_tokens") or 0)
        return Completion(text, None, pt, ct, {"finish_reason": finish_reason})

    async def _stream(self, ep: _Endpoint, body: Dict[str, Any]) -> Tuple[str, Optional[str], Dict[str, Any]]:
        """``(text, finish_reason, usage)`` of a streamed reply. ``timeout_s`` bounds the wait for
        the server's answer and then for each next piece, never the whole reply: a slow server that
        is still writing keeps its request (a total limit threw such replies away, issue 22)."""
        from openai import AsyncStream

        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        stream = await _within(
            ep.client.post("/chat/completions", body=body, cast_to=object, stream=True, stream_cls=AsyncStream[object]),
            self.timeout_s,
        )
        parts: List[str] = []
        finish: Optional[str] = None
        usage: Dict[str, Any] = {}
        chunks = stream.__aiter__()
        try:
            while True:
                try:
                    chunk = await _within(chunks.__anext__(), self.timeout_s)
                except StopAsyncIteration:
                    break
                if not isinstance(chunk, dict):
                    raise _Failure("malformed response", True)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict):
                        raise _Failure("malformed response", True)
                    piece = (choice.get("delta") or {}).get("content")
                    if isinstance(piece, str):
                        parts.append(piece)
                    finish = choice.get("finish_reason") or finish
        finally:
            await stream.close()
        return "".join(parts), finish, usage

    @staticmethod
    def _classify(exc: Exception) -> _Failure:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            cause = str(exc.__cause__ or "")
            # The aiohttp transport reports a refused connection as a ConnectTimeout.
            if "Cannot connect" in cause or "Connect call failed" in cause:
                return _Failure(f"connection error ({cause[:80]})", True)
            return _Failure("timeout", True)
        if isinstance(exc, openai.APIConnectionError):
            return _Failure(f"connection error ({str(exc.__cause__ or exc)[:80]})", True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            headers = exc.response.headers if exc.response is not None else {}
            ra = parse_retry_after(headers.get("retry-after"))
            if ra is None and headers.get("retry-after-ms"):
                try:
                    ra = float(headers["retry-after-ms"]) / 1000.0
                except ValueError:
                    ra = None
            msg = str(getattr(exc, "message", "") or "")[:100]
            retry = status in RETRY_STATUS or status >= 500
            return _Failure(f"HTTP {status}" + (f": {msg}" if msg and not retry else ""), retry, ra)
        if isinstance(exc, openai.APIResponseValidationError) or isinstance(exc, ValueError):
            # ValueError covers json.JSONDecodeError of a truncated / garbled body.
            return _Failure("malformed response", True)
        return _Failure(f"{type(exc).__name__}: {str(exc)[:100]}", True)

    # ---- teardown --------------------------------------------------------------------------
    def load_report(self) -> Dict[str, int]:
        """Requests sent per endpoint (attempts, retries included)."""
        return {ep.url: ep.sent for ep in self.endpoints}

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():

            async def shutdown() -> None:
                for ep in self.endpoints:
                    if ep.client is not None:
                        try:
                            await ep.client.close()
                        except Exception:  # noqa: BLE001
                            pass
                        ep.client = None

            try:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
            except Exception:  # noqa: BLE001
                log.debug("closing teacher clients failed", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            loop.close()
        super().close()
