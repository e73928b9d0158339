"""Throughput of the openai teacher backend against a local fake server with a fixed latency.

The fake server (tests/fake_openai_server.py) runs in its own process and answers every chat
completion after ``--latency`` seconds (default 50 ms), so with ``c`` requests in flight the
ideal rate is ``c / latency``; anything below that is client (or server) overhead.

    python benchmarks/teacher_throughput.py                      # concurrency 1, 16, 64
    python benchmarks/teacher_throughput.py --transport httpx    # the openai client's default stack
    python benchmarks/teacher_throughput.py --typed              # chat.completions.create(), for comparison
    python benchmarks/teacher_throughput.py --concurrency 1 16 64 128 --requests-per-slot 8
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdd.config import TeacherConfig  # noqa: E402
from fdd.teachers.openai import OpenAITeacher  # noqa: E402
from tests.fake_openai_server import free_port  # noqa: E402


def start_server(latency: float) -> tuple:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai_server", "--port", str(port), "--latency", str(latency)],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, line.split()[1]


def run(url: str, concurrency: int, n: int, transport: str, tag: int, typed: bool = False) -> tuple:
    """(requests/s, client CPU ms per request) for ``n`` requests at ``concurrency``."""
    cfg = TeacherConfig(
        backend="openai",
        model="fake-model",
        base_urls=[url],
        concurrency=concurrency,
        cache="off",
        timeout_s=30,
        max_retries=2,
        max_tokens=64,
    )
    t = OpenAITeacher(cfg, cache_dir=None, seed=0)
    t.transport = transport
    t.raw_responses = not typed
    t.show_progress = False
    try:
        tmpl = t.prompts["harder"]
        warm = [t.make_request("harder", f"warm-up {tag} {i}", tmpl, 0) for i in range(concurrency)]
        t.run_requests(warm)  # opens the connections; not timed
        reqs = [t.make_request("harder", f"Problem {tag}-{i}: Ann has {i} apples.", tmpl, 0) for i in range(n)]
        t0, c0 = time.perf_counter(), time.process_time()
        comps, _ = t.run_requests(reqs)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        failed = sum(c.error is not None for c in comps)
        if failed:
            print(f"  ({failed} of {n} requests failed)", file=sys.stderr)
        return n / dt, 1000 * cpu / n
    finally:
        t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--requests-per-slot", type=int, default=16, help="requests = max(64, this * concurrency)")
    ap.add_argument("--max-requests", type=int, default=1024)
    ap.add_argument("--transport", default="auto", choices=["auto", "aiohttp", "httpx"])
    ap.add_argument("--typed", action="store_true", help="use chat.completions.create (typed params + pydantic)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    proc, url = start_server(args.latency)
    try:
        print(
            f"openai teacher -> fake server ({args.latency * 1000:.0f} ms latency), transport={args.transport}, "
            f"{'typed create()' if args.typed else 'raw post'}, "
            f"{os.cpu_count()} CPU cores, cache off"
        )
        print(f"{'concurrency':>11} {'requests':>8} {'req/s':>8} {'ideal':>8} {'ratio':>6} {'client CPU ms/req':>18}")
        for i, c in enumerate(args.concurrency):
            n = min(args.max_requests, max(64, args.requests_per_slot * c))
            rps, cpu_ms = run(url, c, n, args.transport, i, args.typed)
            ideal = c / args.latency
            print(f"{c:>11} {n:>8} {rps:>8.1f} {ideal:>8.1f} {rps / ideal:>6.2f} {cpu_ms:>18.2f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
