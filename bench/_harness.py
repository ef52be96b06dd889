"""Pieces the upload and workspace benchmarks share: a Cairn server of their own, and its peak RSS."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


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


def start_cairn(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``cairn serve`` on a free port with a fresh data directory, access log and rate limits off (the
    benches measure throughput), no other ``CAIRN_*`` setting of the caller's; returns once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    server = subprocess.Popen(
        [str(REPO / ".venv/bin/cairn"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env={**env, "CAIRN_ACCESS_LOG": "false", "CAIRN_RATE_LIMITS": "false"},
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            httpx.get(f"{url}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return server, url
