"""Pieces the benchmarks share: Cairn servers of their own on a backend set of their choice, and their peak
RSS."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "tests"))  # PostgreSQL databases and SeaweedFS, as the test suite makes them
from _services import (  # noqa: E402
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    postgres_database,
    start_seaweedfs,
)

BACKENDS = ("sqlite+local", "postgres+local", "postgres+s3")
QUIET = {"CAIRN_ACCESS_LOG": "false", "CAIRN_RATE_LIMITS": "false"}


def cairn_command() -> list[str]:
    """The repo's ``.venv/bin/cairn``; without that venv (a worktree run with another venv's python and
    ``PYTHONPATH=src``), ``python -m cairn`` of the running interpreter, which imports what this process
    imports."""
    script = REPO / ".venv/bin/cairn"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cairn"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # type: ignore[no-any-return]


class RssPeak(threading.Thread):
    """Samples a process's resident set every 20 ms; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)


class Server:
    """``cairn serve`` in its own process group on a free port, logging to ``log_path``. Its environment
    is the caller's without any ``CAIRN_*`` variable, plus ``settings`` (``CAIRN_*`` names and values).
    A subclass runs another server by its ``command``, one that answers ``GET /health`` too."""

    def __init__(
        self, data_dir: Path, log_path: Path, settings: dict[str, str] | None = None, workers: int = 1
    ) -> None:
        self.data_dir, self.log_path, self.workers = data_dir, log_path, workers
        self.settings = settings or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [*cairn_command(), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        return cmd + (["--workers", str(self.workers)] if self.workers > 1 else [])

    def start(self) -> None:
        self.port = free_port()
        cmd = self.command()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, **self.settings},
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cairn serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    if self.workers > 1:
                        time.sleep(1.5)  # let every worker finish its startup
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"cairn serve did not become healthy in 60 s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_cairn(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``cairn serve`` on the embedded default with a fresh data directory, access log and rate limits off
    (the benches measure throughput), logging beside the data directory; returns once it answers."""
    server = Server(data_dir, data_dir.with_name("server.log"), QUIET)
    server.start()
    assert server.proc is not None
    return server.proc, server.url


@contextlib.contextmanager
def backend(name: str, work: Path) -> Iterator[dict[str, str]]:
    """The ``CAIRN_*`` settings of a fresh, empty backend set (one of ``BACKENDS``): for PostgreSQL a new
    database on ``postgres_server()``, for S3 a SeaweedFS of its own (data under ``work``) with a
    new bucket. Everything it made is removed on exit."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: one of {', '.join(BACKENDS)}")
    with contextlib.ExitStack() as cleanup:
        settings: dict[str, str] = {}
        if name.startswith("postgres"):
            settings["CAIRN_DATABASE_URL"] = cleanup.enter_context(postgres_database("cairn_bench_"))
        if name.endswith("+s3"):
            root = Path(tempfile.mkdtemp(prefix="seaweedfs.", dir=work))
            cleanup.callback(shutil.rmtree, root, ignore_errors=True)
            seaweed = start_seaweedfs(root)
            cleanup.callback(seaweed.stop)
            bucket = f"cairn-bench-{secrets.token_hex(6)}"
            seaweed.client.create_bucket(Bucket=bucket)
            cleanup.callback(seaweed.client.delete_bucket, Bucket=bucket)
            settings.update(
                CAIRN_BLOB_STORE=f"s3://{bucket}/cairn",
                CAIRN_S3_ENDPOINT_URL=seaweed.endpoint,
                CAIRN_S3_REGION=S3_REGION,
                CAIRN_S3_ACCESS_KEY_ID=S3_ACCESS_KEY,
                CAIRN_S3_SECRET_ACCESS_KEY=S3_SECRET_KEY,
            )
        yield settings


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses and socket errors
    raw: str = field(repr=False, default="")


def wrk_command(
    url: str, seconds: int, script: Path | None = None, connections: int = 16, threads: int = 2
) -> list[str]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    return [*cmd, *(["-s", str(script)] if script else []), url]


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    """The figures of one ``wrk --latency`` report."""
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    if not (rps and requests and lat):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return WrkResult(
        float(rps.group(1)), _wrk_ms(lat["50"]), _wrk_ms(lat["99"]), int(requests.group(1)), errors, out
    )


def wrk(
    url: str, seconds: int, script: Path | None = None, connections: int = 16, threads: int = 2
) -> WrkResult:
    result = subprocess.run(
        wrk_command(url, seconds, script, connections, threads),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr}\n{result.stdout}")
    return parse_wrk(result.stdout)


def wrk_create_lua(size: int) -> str:
    """A wrk script whose every request is ``POST /v1/files`` of a ``size``-byte file (multipart)."""
    return rf"""
local boundary = "cairnbench7d3f"
local payload = string.rep("x", {size})
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
wrk.body = "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n" ..
  "--" .. boundary .. "\r\n" ..
  "Content-Disposition: form-data; name=\"file\"; filename=\"small.bin\"\r\n" ..
  "Content-Type: application/octet-stream\r\n\r\n" .. payload .. "\r\n" ..
  "--" .. boundary .. "--\r\n"
"""
