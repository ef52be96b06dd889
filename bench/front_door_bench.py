"""Front-door benchmark: what hostile clients cost a keyed server, against the same server left alone.

Starts `cairn serve` (random port, fresh data directory, one API key, access log and rate limits off) and,
in each run:
  - flood: 20 clients at once each POST a 300 MB JSON body to `/v1/artifacts` without a key (the bytes
    are generated as they are sent); prints the server's peak RSS growth over idle and how long the
    clients took to get their 401;
  - health: `GET /health` polled for --seconds alone (the baseline), then again while 4 clients send
    oversized request heads (1 MiB headers, over and over) and 4 clients open JSON bodies and stall
    them (the server's idle timeout is 2 s here); prints p50/p99 of both and the ratio.
Prints each run, then medians.

Run by hand: .venv/bin/python bench/front_door_bench.py [--runs 3] [--seconds 10]
Targets (issue: front door): RSS growth during the flood <= 32 MiB; /health p99 under attack < 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _harness import QUIET, REPO, RssPeak, Server

MiB = 1 << 20
FLOOD_CLIENTS, FLOOD_BYTES = 20, 300_000_000


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def _flood_one(url: str) -> float:
    """Send a 300 MB JSON body without a key until the server answers or closes; seconds taken."""
    started = time.monotonic()
    head = (
        f"POST /v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {FLOOD_BYTES}\r\n\r\n"
    ).encode()
    chunk = b" " * MiB
    with contextlib.closing(_connect(url)) as sock, contextlib.suppress(OSError):
        sock.sendall(head + b'{"key": "')
        for _ in range(FLOOD_BYTES // MiB):
            sock.sendall(chunk)
    return time.monotonic() - started


def flood(server: Server) -> tuple[float, float]:
    """(peak RSS growth in MiB, slowest client's seconds)."""
    assert server.proc is not None
    sampler = RssPeak(server.proc.pid)
    idle = sampler.rss()
    sampler.start()
    results: list[float] = []
    threads = [
        threading.Thread(target=lambda: results.append(_flood_one(server.url))) for _ in range(FLOOD_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sampler.stop.set()
    sampler.join()
    return (sampler.peak - idle) / MiB, max(results)


def _loop(stop: threading.Event, attack: Callable[[], None]) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            attack()


def _huge_head(url: str) -> None:
    with contextlib.closing(_connect(url)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * MiB + b"\r\n\r\n")
        sock.recv(1024)


def _stalled_body(url: str, key: str) -> None:
    with contextlib.closing(_connect(url)) as sock:
        sock.sendall(
            f"POST /v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"key":'.encode()
        )
        sock.recv(1024)  # the 408, after the idle timeout


def health_latencies(url: str, seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            client.get("/health").raise_for_status()
            latencies.append((time.monotonic() - started) * 1000)
            time.sleep(0.01)
    return latencies


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def health(server: Server, key: str, seconds: float) -> tuple[float, float, float, float]:
    """(p50, p99 alone; p50, p99 under attack) in ms."""
    alone = health_latencies(server.url, seconds)
    stop = threading.Event()
    attackers = [
        threading.Thread(target=_loop, args=(stop, lambda: _huge_head(server.url))) for _ in range(4)
    ]
    attackers += [
        threading.Thread(target=_loop, args=(stop, lambda: _stalled_body(server.url, key))) for _ in range(4)
    ]
    for thread in attackers:
        thread.start()
    time.sleep(0.5)
    attacked = health_latencies(server.url, seconds)
    stop.set()
    for thread in attackers:
        thread.join()
    return p(alone, 50), p(alone, 99), p(attacked, 50), p(attacked, 99)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-front-door.") as work:
        data_dir = Path(work) / "data"
        created = subprocess.run(
            [
                str(REPO / ".venv/bin/cairn"),
                "keys",
                "create",
                "--tenant",
                "bench",
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.strip().splitlines()[-1]
        server = Server(data_dir, Path(work) / "server.log", {**QUIET, "CAIRN_IDLE_TIMEOUT": "2"})
        server.start()
        rows = []
        try:
            print("run  flood RSS growth MiB  slowest 401 s  health p50/p99 alone ms  under attack ms  ratio")
            for run in range(1, args.runs + 1):
                growth, slowest = flood(server)
                p50, p99, a50, a99 = health(server, key, args.seconds)
                rows.append((growth, slowest, p50, p99, a50, a99))
                print(
                    f"{run:<4} {growth:<20.1f} {slowest:<14.2f} {p50:.1f} / {p99:<17.1f} "
                    f"{a50:.1f} / {a99:<11.1f} {a99 / p99:.2f}x"
                )
        finally:
            server.stop()
        med = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(
            f"median {med[0]:<18.1f} {med[1]:<14.2f} {med[2]:.1f} / {med[3]:<17.1f} "
            f"{med[4]:.1f} / {med[5]:<11.1f} {med[5] / med[3]:.2f}x"
        )
        print(
            f"targets: RSS growth <= 32 MiB: {'MET' if med[0] <= 32 else 'NOT MET'}; "
            f"p99 under attack < 50 ms: {'MET' if med[5] < 50 else 'NOT MET'}"
        )


if __name__ == "__main__":
    main()
