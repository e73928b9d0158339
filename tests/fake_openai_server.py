"""A small local OpenAI-compatible server for teacher tests and benchmarks, plus a counting proxy.

``FakeOpenAIServer`` answers ``POST /v1/chat/completions`` (and ``GET /v1/models``) from an
aiohttp app on its own event loop in a background thread, bound to 127.0.0.1 on a free port:

* the reply text comes from ``reply_fn(body) -> str`` (default: a plausible reply per job);
* faults are injected at configured rates, decided by an RNG seeded with (seed, request
  identity, attempt number), so the same request sees the same fault on the same attempt in
  every run: ``"429"`` (with ``Retry-After``), ``"500"``, ``"hang"`` (sleeps ``hang_s``, longer
  than the client's timeout), ``"malformed"`` (truncated JSON with status 200), ``"empty"``
  (an empty message content), ``"no_choices"`` (status 200 with an empty ``choices`` list);
* ``latency`` makes every answer take a fixed time (the throughput benchmark uses 50 ms);
* it counts requests, records each request's identity and arrival times, and tracks the
  number in flight (and its maximum).

``CountingProxy`` is a reverse proxy that forwards everything to an upstream server (e.g.
``transformers serve``) and counts the chat completion requests that pass through it.

Run ``python -m tests.fake_openai_server --port 8001 --latency 0.05`` for a standalone server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from typing import Callable, Dict, List, Optional

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

FAULTS = ("429", "500", "hang", "malformed", "empty", "no_choices")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_identity(body: dict) -> str:
    """What makes two requests "the same request": messages, sampling, seed, model."""
    ident = {k: body.get(k) for k in ("model", "messages", "temperature", "top_p", "max_tokens", "seed")}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def default_reply(body: dict) -> str:
    """A reply in the format the default prompts ask for, varied by seed so samples differ."""
    user = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    seed = body.get("seed") or 0
    n = 40 + seed % 7
    if "Python program" in user:
        return f"Here is the program:\n```python\ndef solution():\n    total = {n} + 2\n    return total\n```\n"
    if "Problem:" in user:
        q = user.split("Given problem:", 1)[-1].split("\n\n", 1)[0].strip()
        return f"Problem: {q} Then {n % 5 + 2} more are added. How many are there now?"
    return f"First we add the numbers: {n} + 2 = {n + 2}.\nThe answer is {n + 2}."


class _AppServer(ABC):
    """An aiohttp app on a private loop in a daemon thread."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._runner: Optional[web.AppRunner] = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (what ``base_urls`` takes)."""
        return f"{self.base}/v1"

    @abstractmethod
    def make_app(self) -> web.Application:
        """The aiohttp application this server runs."""

    async def _on_start(self) -> None:
        pass

    async def _on_stop(self) -> None:
        pass

    def start(self):
        started = threading.Event()
        error: List[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._on_start())
                self._runner = web.AppRunner(
                    self.make_app(), access_log=None, shutdown_timeout=0.5, handler_cancellation=True
                )
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024, reuse_address=True)
                loop.run_until_complete(site.start())
            except BaseException as exc:  # noqa: BLE001
                error.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(self._on_stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        started.wait(30)
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FakeOpenAIServer(_AppServer):
    def __init__(
        self,
        reply_fn: Optional[Callable[[dict], str]] = None,
        *,
        latency: float = 0.0,
        faults: Optional[Dict[str, float]] = None,
        fault_fn: Optional[Callable[[dict, int], Optional[str]]] = None,
        retry_after: str = "1",
        hang_s: float = 5.0,
        seed: int = 0,
        model: str = "fake-model",
        port: Optional[int] = None,
        piece_s: float = 0.0,
        slots: Optional[int] = None,
    ) -> None:
        super().__init__(port)
        self.piece_s = piece_s  # a streamed reply: the pause before each of its pieces
        self.slots = slots  # answer GET /props with llama.cpp's total_slots
        self.reply_fn = reply_fn or default_reply
        self.latency = latency
        self.faults = {k: float(v) for k, v in (faults or {}).items()}
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        self.fault_fn = fault_fn
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.seed = seed
        self.model = model
        self._lock = threading.Lock()
        self.reset_stats()

    def reset_stats(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests = 0  # chat completion requests received
            self.answered = 0  # answered with 200 and a well-formed reply
            self.inflight = 0
            self.max_inflight = 0
            self.attempts: Dict[str, List[float]] = defaultdict(list)  # identity -> arrival times
            self.answered_ids: Counter = Counter()  # identity -> well-formed answers sent
            self.fault_counts: Counter = Counter()

    def _fault(self, body: dict, ident: str, attempt: int) -> Optional[str]:
        if self.fault_fn is not None:
            return self.fault_fn(body, attempt)
        if not self.faults:
            return None
        r = random.Random(f"{self.seed}:{ident}:{attempt}").random()
        acc = 0.0
        for name in FAULTS:
            acc += self.faults.get(name, 0.0)
            if r < acc:
                return name
        return None

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        if self.slots is not None:
            app.router.add_get("/props", self._props)
        return app

    async def _props(self, request: web.Request) -> web.Response:
        return web.json_response({"total_slots": self.slots})

    async def _stream(self, request: web.Request, body: dict, ident: str, text: str, usage: dict) -> web.StreamResponse:
        """The reply as server-sent events, a word at a time, ``piece_s`` apart (what llama.cpp sends)."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(delta: dict, finish=None, **extra) -> None:
            chunk = {
                "id": f"chatcmpl-{ident}",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        for piece in text.split(" "):
            if self.piece_s:
                await asyncio.sleep(self.piece_s)
            await send({"content": piece + " "})
        await send({}, "stop")
        await resp.write(f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': usage})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "fdd-tests"}]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        ident = request_identity(body)
        with self._lock:
            self.requests += 1
            attempt = len(self.attempts[ident])
            self.attempts[ident].append(time.monotonic())
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            fault = self._fault(body, ident, attempt)
            if fault:
                with self._lock:
                    self.fault_counts[fault] += 1
            if fault == "429":
                return web.json_response(
                    {"error": {"message": "rate limited", "type": "rate_limit"}},
                    status=429,
                    headers={"Retry-After": self.retry_after},
                )
            if fault == "500":
                return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
            if fault == "hang":
                await asyncio.sleep(self.hang_s)
            if fault == "malformed":
                return web.Response(
                    text='{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"ind',
                    content_type="application/json",
                )
            if fault == "no_choices":
                return web.json_response(
                    {
                        "id": f"chatcmpl-{ident}-{attempt}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", self.model),
                        "choices": [],
                    }
                )
            text = "" if fault == "empty" else self.reply_fn(body)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            payload = {
                "id": f"chatcmpl-{ident}-{attempt}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(text.split()),
                    "total_tokens": prompt_tokens + len(text.split()),
                },
            }
            with self._lock:
                self.answered += 1
                self.answered_ids[ident] += 1
            if body.get("stream"):
                return await self._stream(request, body, ident, text, payload["usage"])
            if self.piece_s:  # a whole reply takes as long as its pieces would
                await asyncio.sleep(self.piece_s * len(text.split(" ")))
            return web.json_response(payload)
        finally:
            with self._lock:
                self.inflight -= 1


class CountingProxy(_AppServer):
    """Forwards every request to ``upstream`` (e.g. ``http://127.0.0.1:8000``) and counts the
    chat completion requests, recording each one's identity."""

    def __init__(self, upstream: str, port: Optional[int] = None, timeout_s: float = 600.0) -> None:
        super().__init__(port)
        self.upstream = upstream.rstrip("/")
        self.timeout_s = timeout_s
        self._session: Optional[ClientSession] = None
        self._lock = threading.Lock()
        self.requests = 0
        self.identities: Counter = Counter()
        self.statuses: Counter = Counter()

    async def _on_start(self) -> None:
        self._session = ClientSession(connector=TCPConnector(limit=64), timeout=ClientTimeout(total=self.timeout_s))

    async def _on_stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.Response:
        data = await request.read()
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            try:
                ident = request_identity(json.loads(data))
            except ValueError:
                ident = "unparseable"
            with self._lock:
                self.requests += 1
                self.identities[ident] += 1
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding", "connection")
        }
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=data, headers=headers
        ) as resp:
            payload = await resp.read()
            with self._lock:
                self.statuses[resp.status] += 1
            out_headers = {
                k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "retry-after", "x-request-id")
            }
            return web.Response(body=payload, status=resp.status, headers=out_headers)


def main() -> None:  # pragma: no cover - manual / benchmark use
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    srv = FakeOpenAIServer(latency=args.latency, port=args.port).start()
    print(f"READY {srv.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
