#!/usr/bin/env python3
"""Cairn Files API benchmark: throughput, memory, latency, with same-run baselines.

Run by hand (not in CI), from the repo:

    .venv/bin/python bench/files_bench.py            # full run, ~2-4 minutes, needs ~8 GiB free disk
    .venv/bin/python bench/files_bench.py --quick    # 1 MiB and 100 MiB only, no 100k listing
    .venv/bin/python bench/files_bench.py --backends sqlite+local,postgres+s3   # the same, on each

It starts its own ``cairn serve`` (random free port, fresh data directory in a temp dir on the same
filesystem as the repo) on each backend set in turn (a fresh PostgreSQL database, a SeaweedFS of its own
with a fresh bucket), measures, prints a table and a target summary, and removes everything it made,
even on failure or Ctrl-C. Standard library + httpx; external tools: curl, dd, wrk (optional), and
nginx + ``../shared/bench/nginx_baseline.sh`` (optional) for the loopback ceiling.
MB/s means 10^6 bytes per second throughout (as curl and dd report it); sizes are MiB/GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from _harness import BACKENDS, REPO, Server, WrkResult, backend, wrk, wrk_create_lua

NGINX_SCRIPT = REPO.parent / "shared" / "bench" / "nginx_baseline.sh"
MiB = 1 << 20
MB = 1e6
SMALL_RUNS = 5
LARGE_RUNS = 3  # uploads of sizes >= 1 GiB
DD_RUNS = 5  # every size: dd is cheap and its first run is often an outlier
PRECONDITION_FILES = 5  # x the largest size: see Bench.precondition
TTFB_RUNS = 5  # downloads of the largest size (throughput median comes from these too)
CONCURRENCY = 16
SMALL_FILE_BYTES = 1024
HTTP_CREATES = 1000  # created over HTTP: they are also the "1k files" listing
LIST_ROWS_LARGE = 100_000
LIST_PAGE = 100

# --------------------------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def fmt_size(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


def fmt(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    return f"{value:{spec}}{unit}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a != a or b != b or b == 0:
        return None
    return a / b


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    for r in rows:
        out.append(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


def run(cmd: list[str], timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def write_random(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(MiB, left))
            hasher.update(block)
            f.write(block)
            left -= len(block)
    return hasher.hexdigest()


# ------------------------------------------------------------------------------------------- monitors


class RssSampler:
    """Samples VmRSS of one pid every ``interval`` seconds from a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.baseline = self.peak = self._read()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._read())
                self.samples += 1
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self.peak = max(self.peak, self._read())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


PF_KTHREAD = 0x00200000


class ForeignCpu:
    """CPU used by user processes outside this benchmark's process tree (other sessions, services), sampled
    from /proc every half second and at every phase boundary. Kernel threads are left out (our own
    writeback and softirq work runs there); processes that live less than one sample are missed."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.cores = os.cpu_count() or 1
        self.prev: dict[int, float] = {}
        self.ours: set[int] = {self.me}
        # command-line substrings of processes this benchmark causes but does not start (nginx, PostgreSQL)
        self.claims: set[str] = set()
        self.total = 0.0
        self.names: dict[str, float] = {}
        self.phases: list[tuple[str, float, float, dict[str, float]]] = []  # name, wall s, foreign cpu s, top
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.scan()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.scan()

    def stop(self) -> None:
        self._stop.set()

    def scan(self) -> None:
        procs: dict[int, tuple[int, str, float]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            rparen = stat.rfind(")")
            comm = stat[stat.find("(") + 1 : rparen]
            fields = stat[rparen + 2 :].split()
            if int(fields[6]) & PF_KTHREAD:
                continue
            procs[int(entry)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / self.tick)
        with self._lock:
            for pid, (_ppid, comm, cpu) in procs.items():
                if pid in self.ours:
                    continue
                chain, p = [], pid
                while p in procs and p not in self.ours and p > 1 and len(chain) < 64:
                    chain.append(p)
                    p = procs[p][0]
                if p in self.ours or any(self._claimed(c) for c in chain):
                    self.ours.update(chain)
                    continue
                if pid in self.prev:
                    delta = cpu - self.prev[pid]
                elif self.prev:  # first seen: it started since the last scan
                    delta = cpu
                else:
                    delta = 0.0
                if delta > 0:
                    self.total += delta
                    self.names[comm] = self.names.get(comm, 0.0) + delta
            self.prev = {pid: v[2] for pid, v in procs.items() if pid not in self.ours}

    def _claimed(self, pid: int) -> bool:
        if not self.claims or pid in self.prev:
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            return False
        return any(claim.encode() in cmdline for claim in self.claims)

    def snapshot(self) -> tuple[float, float, dict[str, float]]:
        self.scan()
        with self._lock:
            return time.monotonic(), self.total, dict(self.names)

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def share(self, name: str) -> float | None:
        """Foreign CPU as a fraction of the machine during the last phase called ``name``."""
        for n, wall, cpu, _ in reversed(self.phases):
            if n == name:
                return cpu / (wall * self.cores) if wall > 0 else None
        return None


class _Phase:
    def __init__(self, monitor: ForeignCpu, name: str) -> None:
        self.monitor, self.name = monitor, name

    def __enter__(self) -> None:
        self.start = self.monitor.snapshot()

    def __exit__(self, *exc: object) -> None:
        t1, c1, n1 = self.monitor.snapshot()
        t0, c0, n0 = self.start
        top = {k: v - n0.get(k, 0.0) for k, v in n1.items() if v - n0.get(k, 0.0) > 0.05}
        self.monitor.phases.append((self.name, t1 - t0, c1 - c0, top))


# ------------------------------------------------------------------------------------------- measures


def curl_upload(url: str, path: Path) -> tuple[float, dict]:
    """Streamed multipart POST; returns (seconds from start to full response, file object)."""
    result = run(
        [
            "curl",
            "-sS",
            "-H",
            "Expect:",
            "-F",
            "purpose=assistants",
            "-F",
            f"file=@{path}",
            "-w",
            "\n%{http_code} %{time_total}",
            f"{url}/v1/files",
        ]
    )
    body, _, tail = result.stdout.rpartition("\n")
    code, total = tail.split()
    if result.returncode != 0 or code != "200":
        raise RuntimeError(
            f"upload of {path.name} failed: curl rc={result.returncode} http={code} "
            f"{body[:300]} {result.stderr}"
        )
    return float(total), json.loads(body)


def curl_download(url: str) -> tuple[int, float, float]:
    """GET to /dev/null; returns (bytes, total seconds, time to first byte after the request was sent)."""
    result = run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{time_total} %{time_pretransfer} %{time_starttransfer}",
            url,
        ]
    )
    code, size, total, pre, start = result.stdout.split()
    if result.returncode != 0 or code != "200":
        raise RuntimeError(f"download failed: curl rc={result.returncode} http={code} {result.stderr}")
    return int(size), float(total), float(start) - float(pre)


def dd_durable(path: Path, mib: int) -> float:
    """MB/s of ``dd if=/dev/zero bs=1M count=N conv=fdatasync``."""
    result = run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fdatasync"])
    path.unlink(missing_ok=True)
    m = re.search(r"^(\d+) bytes .* copied, ([\d.e+-]+) s", result.stderr, re.M)
    if result.returncode != 0 or not m:
        raise RuntimeError(f"dd failed: {result.stderr}")
    return int(m.group(1)) / float(m.group(2)) / MB


def raw_loopback(size: int) -> float:
    """MB/s of one TCP stream over loopback between two Python threads (1 MiB sendall / recv_into)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = [0]

    def sink() -> None:
        conn, _ = listener.accept()
        buf = bytearray(MiB)
        with conn:
            while n := conn.recv_into(buf):
                received[0] += n

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    block = bytes(MiB)
    client = socket.create_connection(listener.getsockname())
    t0 = time.perf_counter()
    left = size
    while left:
        n = min(MiB, left)
        client.sendall(memoryview(block)[:n])
        left -= n
    client.shutdown(socket.SHUT_WR)
    thread.join()
    elapsed = time.perf_counter() - t0
    client.close()
    listener.close()
    assert received[0] == size
    return size / elapsed / MB


def nginx_baseline(mib: int) -> tuple[float | None, float | None, str]:
    if not NGINX_SCRIPT.exists():
        return None, None, f"nginx baseline skipped: {NGINX_SCRIPT} not found"
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        return None, None, "nginx baseline skipped: nginx not installed (apt-get install -y nginx-light)"
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    try:
        result = run(["bash", str(NGINX_SCRIPT), str(mib)], timeout=600, env=env)
    except subprocess.TimeoutExpired:
        return None, None, "nginx baseline skipped: timed out"
    lines = result.stdout.strip().splitlines()
    m = re.search(r"nginx median: download ([\d.]+) MB/s, upload ([\d.]+) MB/s", lines[-1] if lines else "")
    if result.returncode != 0 or not m:
        return None, None, f"nginx baseline failed (rc={result.returncode}): {result.stderr.strip()[-300:]}"
    return float(m.group(1)), float(m.group(2)), lines[-1]


async def _http_creates(url: str, count: int, concurrency: int) -> tuple[float, list[float], list[str]]:
    payload = os.urandom(SMALL_FILE_BYTES)
    latencies: list[float] = []
    ids: list[str] = []
    counter = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                r = await client.post(
                    "/v1/files",
                    data={"purpose": "assistants"},
                    files={"file": (f"small-{i}.bin", payload, "application/octet-stream")},
                )
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"small create failed: {r.status_code} {r.text[:300]}")
                ids.append(r.json()["id"])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return count / elapsed, latencies, ids


def list_walk(url: str, passes: int, expect: int | None = None) -> list[float]:
    """Walks the whole listing ``passes`` times with limit=100 pages chained by ``after``; returns the
    latency of every page request in ms."""
    samples: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/v1/files", params={"limit": LIST_PAGE})  # warm the connection
        for _ in range(passes):
            after, seen = None, 0
            while True:
                params: dict[str, str | int] = {"limit": LIST_PAGE}
                if after:
                    params["after"] = after
                t0 = time.perf_counter()
                r = client.get("/v1/files", params=params)
                samples.append((time.perf_counter() - t0) * 1e3)
                r.raise_for_status()
                page = r.json()
                seen += len(page["data"])
                if not page["has_more"]:
                    break
                after = page["last_id"]
            if expect is not None and seen != expect:
                raise RuntimeError(f"listing returned {seen} files, expected {expect}")
    return samples


TEMPLATE_ROW = "SELECT * FROM objects WHERE tenant='default' AND bucket='files' ORDER BY id LIMIT 1"
FILE_COUNT = "SELECT count(*) FROM objects WHERE tenant='default' AND bucket='files'"


def bulk_rows(template: dict, count: int) -> list[tuple]:
    """``count`` copies of a real ``objects`` row under fresh ids (same format as the server's: ``file-``
    + 12 hex ms + 20 random hex), older than every existing row, as tuples in the template's column order."""
    oldest_ms = int(template["id"][5:17], 16)
    key_is_id = template["key"] == template["id"]
    rows = []
    for i in range(count):
        ms = oldest_ms - 1 - i // 10  # ten rows per millisecond, all older than the real ones
        new_id = f"file-{ms:012x}{secrets.token_hex(10)}"
        values = dict(template)
        values.update(id=new_id, created_at=ms // 1000, filename=f"bulk-{i}.bin")
        if key_is_id:
            values["key"] = new_id
        rows.append(tuple(values.values()))
    return rows


def bulk_insert(settings: dict[str, str], data_dir: Path, total: int) -> int:
    """Tops the metadata database's ``objects`` table up to ``total`` rows (see ``bulk_rows``): PostgreSQL
    when the settings name one, else the SQLite file in the data directory. Returns the rows added."""
    if "CAIRN_DATABASE_URL" in settings:
        return asyncio.run(_bulk_insert_postgres(settings["CAIRN_DATABASE_URL"], total))
    conn = sqlite3.connect(data_dir / "cairn.db", timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        conn.row_factory = sqlite3.Row
        template = dict(conn.execute(TEMPLATE_ROW).fetchone())
        rows = bulk_rows(template, total - conn.execute(FILE_COUNT).fetchone()[0])
        quoted = ", ".join(f'"{c}"' for c in template)
        marks = ", ".join("?" for _ in template)
        with conn:
            conn.executemany(f"INSERT INTO objects ({quoted}) VALUES ({marks})", rows)
        return len(rows)
    finally:
        conn.close()


async def _bulk_insert_postgres(url: str, total: int) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        template = dict(await conn.fetchrow(TEMPLATE_ROW))
        rows = bulk_rows(template, total - await conn.fetchval(FILE_COUNT))
        await conn.copy_records_to_table("objects", records=rows, columns=list(template))
        return len(rows)
    finally:
        await conn.close()


def delete_file(url: str, file_id: str) -> None:
    r = httpx.delete(f"{url}/v1/files/{file_id}", timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"delete {file_id} failed: {r.status_code} {r.text[:200]}")


def verify_round_trip(url: str, file_id: str, expected_sha: str, size: int) -> str:
    hasher = hashlib.sha256()
    n = 0
    with httpx.stream("GET", f"{url}/v1/files/{file_id}/content", timeout=120) as r:
        r.raise_for_status()
        etag = r.headers.get("etag", "").strip('"')
        for chunk in r.iter_raw(MiB):
            hasher.update(chunk)
            n += len(chunk)
    digest = hasher.hexdigest()
    if n != size or digest != expected_sha:
        raise RuntimeError(f"round trip of {fmt_size(size // MiB)} corrupted: {n} bytes, sha256 {digest}")
    if etag and etag != expected_sha:
        raise RuntimeError(f"ETag {etag} differs from the sha256 {expected_sha}")
    return "ok (sha256 + ETag)" if etag else "ok (sha256)"


# --------------------------------------------------------------------------------------------- the run


@dataclass
class SizeResult:
    mib: int
    up: list[float] = field(default_factory=list)  # MB/s per run
    down: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)
    rss_up: tuple[int, int, int] | None = None  # (baseline, peak, growth) bytes of the worst run
    rss_down: tuple[int, int, int] | None = None
    verified: str = ""


@dataclass
class BackendRun:
    """What one backend set measured."""

    name: str
    settings: dict[str, str]  # its CAIRN_* settings
    sizes: dict[int, SizeResult] = field(default_factory=dict)
    get_w1: WrkResult | None = None
    get_w2: WrkResult | None = None
    create_wrk: WrkResult | None = None
    create_wrk_w2: WrkResult | None = None
    create_http: tuple[float, list[float]] | None = None
    list_1k: list[float] = field(default_factory=list)
    list_100k: list[float] = field(default_factory=list)
    bulk_rows: int = 0
    rows_at_get: int = 0

    @property
    def on_s3(self) -> bool:
        return "CAIRN_BLOB_STORE" in self.settings

    def phase(self, what: str) -> str:
        return f"{self.name}: {what}"


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, monitor: ForeignCpu) -> None:
        self.args, self.tmp, self.monitor = args, tmp, monitor
        self.first_touch: list[float] = []
        self.server: Server | None = None
        self.runs: list[BackendRun] = []
        self.sources: dict[int, tuple[Path, str]] = {}
        self.dd: dict[int, list[float]] = {mib: [] for mib in args.sizes}
        self.notes: list[str] = []
        self.loopback: list[float] = []
        self.nginx_down = self.nginx_up = None
        self.nginx_line = ""
        self.has_wrk = shutil.which("wrk") is not None
        if not self.has_wrk:
            self.notes.append("wrk not installed (apt-get install -y wrk): GET req/s and wrk creates skipped")

    # -- lifecycle
    def start_server(self, run: BackendRun, workers: int = 1) -> Server:
        self.stop_server()
        settings = {**run.settings, "CAIRN_RATE_LIMITS": "false"}  # throughput, not the limits, is measured
        self.server = Server(self.data_dir(run), self.tmp / f"server-{run.name}.log", settings, workers)
        self.server.start()
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def data_dir(self, run: BackendRun) -> Path:
        return self.tmp / f"data-{run.name}"

    # -- phases
    def prepare(self) -> None:
        for mib in self.args.sizes:
            path = self.tmp / f"src-{mib}MiB.bin"
            log(f"writing {fmt_size(mib)} of random bytes to {path.name}")
            self.sources[mib] = (path, write_random(path, mib * MiB))
        os.sync()

    def precondition(self) -> None:
        """On a thin-provisioned virtual disk the first write to a block is several times slower than a
        rewrite (measured here: ~300 MB/s vs ~2 GB/s with fdatasync), and ext4 soon reuses freed blocks.
        Without this step whichever of dd, nginx or Cairn first lands on never-written blocks loses. Writing
        and deleting a few files as large as the largest size first makes every later writer rewrite."""
        mib = max(self.args.sizes)
        n = PRECONDITION_FILES
        log(f"preconditioning the disk: {n} x {fmt_size(mib)} written with fdatasync, then deleted")
        paths = [self.tmp / f"precondition-{i}.bin" for i in range(n)]
        try:
            for path in paths:
                result = run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fdatasync"])
                m = re.search(r"^(\d+) bytes .* copied, ([\d.e+-]+) s", result.stderr, re.M)
                if m:
                    self.first_touch.append(int(m.group(1)) / float(m.group(2)) / MB)
        finally:
            for path in paths:
                path.unlink(missing_ok=True)
        os.sync()

    def baselines(self) -> None:
        with self.monitor.phase("dd"):
            for mib in self.args.sizes:
                log(f"dd conv=fdatasync {fmt_size(mib)} x{DD_RUNS}")
                for _ in range(DD_RUNS):
                    os.sync()
                    self.dd[mib].append(dd_durable(self.tmp / "dd.bin", mib))
        largest = max(self.args.sizes)
        log(f"raw TCP loopback {fmt_size(largest)} x3")
        with self.monitor.phase("loopback"):
            self.loopback = [raw_loopback(largest * MiB) for _ in range(3)]
        if self.args.no_nginx:
            self.nginx_line = "nginx baseline skipped (--no-nginx)"
        else:
            log(f"nginx baseline ({NGINX_SCRIPT.name} {largest}), ~30 s")
            self.monitor.claims.add("nginx-baseline")
            try:
                with self.monitor.phase("nginx"):
                    self.nginx_down, self.nginx_up, self.nginx_line = nginx_baseline(largest)
            finally:
                self.monitor.claims.discard("nginx-baseline")
        os.sync()  # nginx's uploads are written without fsync: flush them before measuring Cairn

    def measure(self, name: str, settings: dict[str, str]) -> None:
        """Every Cairn measure on one backend set; its data directory is removed afterwards."""
        run = BackendRun(name, settings, {mib: SizeResult(mib) for mib in self.args.sizes})
        self.runs.append(run)
        database = settings.get("CAIRN_DATABASE_URL", "").rsplit("/", 1)[-1]
        if database:
            self.monitor.claims.add(database)  # its PostgreSQL connections are this benchmark's work
        try:
            self.transfers(run)
            self.metadata(run)
        finally:
            self.stop_server()
            self.monitor.claims.discard(database)
            shutil.rmtree(self.data_dir(run), ignore_errors=True)

    def transfers(self, run: BackendRun) -> None:
        server = self.start_server(run)
        largest = max(self.args.sizes)
        for mib in self.args.sizes:
            res = run.sizes[mib]
            path, sha = self.sources[mib]
            with self.monitor.phase(run.phase(f"upload {fmt_size(mib)}")):
                kept = self._uploads(server, res, path)
            res.verified = verify_round_trip(server.url, kept, sha, mib * MiB)
            with self.monitor.phase(run.phase(f"download {fmt_size(mib)}")):
                self._downloads(server, res, kept, TTFB_RUNS if mib == largest else SMALL_RUNS)
            delete_file(server.url, kept)

    def _uploads(self, server: Server, res: SizeResult, path: Path) -> str:
        """Uploads ``path`` several times, keeping only the last copy; returns its id."""
        mib = res.mib
        runs = LARGE_RUNS if mib >= 1024 else SMALL_RUNS
        log(f"upload {fmt_size(mib)} x{runs}")
        kept: str | None = None
        for _ in range(runs):
            if mib >= 100:
                os.sync()  # start every large run with no dirty pages of anyone's
            with RssSampler(server.proc.pid) as rss:
                seconds, obj = curl_upload(server.url, path)
            if obj["bytes"] != mib * MiB:
                raise RuntimeError(f"server recorded {obj['bytes']} bytes for a {mib} MiB upload")
            res.up.append(mib * MiB / seconds / MB)
            if res.rss_up is None or rss.growth > res.rss_up[2]:
                res.rss_up = (rss.baseline, rss.peak, rss.growth)
            if kept:
                delete_file(server.url, kept)
            kept = obj["id"]
        assert kept is not None
        return kept

    def _downloads(self, server: Server, res: SizeResult, file_id: str, runs: int) -> None:
        log(f"download {fmt_size(res.mib)} x{runs}")
        for _ in range(runs):
            with RssSampler(server.proc.pid) as rss:
                size, seconds, ttfb = curl_download(f"{server.url}/v1/files/{file_id}/content")
            if size != res.mib * MiB:
                raise RuntimeError(f"downloaded {size} bytes of a {res.mib} MiB file")
            res.down.append(size / seconds / MB)
            res.ttfb_ms.append(ttfb * 1e3)
            if res.rss_down is None or rss.growth > res.rss_down[2]:
                res.rss_down = (rss.baseline, rss.peak, rss.growth)

    def metadata(self, run: BackendRun) -> None:
        server = self.server or self.start_server(run)
        url = server.url
        log(f"{HTTP_CREATES} small creates over HTTP (httpx, {CONCURRENCY} connections)")
        with self.monitor.phase(run.phase("creates httpx")):
            rate, latencies, ids = asyncio.run(_http_creates(url, HTTP_CREATES, CONCURRENCY))
        run.create_http = (rate, latencies)
        log("list pages at 1k files (20 passes)")
        with self.monitor.phase(run.phase("list 1k")):
            run.list_1k = list_walk(url, passes=20, expect=HTTP_CREATES)
        if not self.args.quick:
            log(f"bulk-inserting rows up to {LIST_ROWS_LARGE:,} in the metadata database")
            run.bulk_rows = bulk_insert(run.settings, self.data_dir(run), LIST_ROWS_LARGE)
            log(f"list pages at {LIST_ROWS_LARGE // 1000}k files (one full walk)")
            with self.monitor.phase(run.phase("list 100k")):
                run.list_100k = list_walk(url, passes=1, expect=LIST_ROWS_LARGE)
        run.rows_at_get = LIST_ROWS_LARGE if not self.args.quick else HTTP_CREATES
        if not self.has_wrk:
            return
        target = f"{url}/v1/files/{ids[len(ids) // 2]}"
        seconds = self.args.wrk_seconds
        log(f"wrk GET /v1/files/{{id}} {seconds}s, {CONCURRENCY} connections, 1 worker")
        wrk(target, 1)  # warm-up
        with self.monitor.phase(run.phase("GET w1")):
            run.get_w1 = wrk(target, seconds)
        lua = self.tmp / "create.lua"
        lua.write_text(wrk_create_lua(SMALL_FILE_BYTES))
        log(f"wrk small creates {self.args.create_seconds}s, 1 worker")
        with self.monitor.phase(run.phase("creates wrk w1")):
            run.create_wrk = wrk(f"{url}/v1/files", self.args.create_seconds, script=lua)
        if not self.args.no_workers2:
            server = self.start_server(run, workers=2)
            target = f"{server.url}/v1/files/{ids[len(ids) // 2]}"
            log(f"wrk GET /v1/files/{{id}} {seconds}s, {CONCURRENCY} connections, --workers 2")
            wrk(target, 1)
            with self.monitor.phase(run.phase("GET w2")):
                run.get_w2 = wrk(target, seconds)
            log(f"wrk small creates {self.args.create_seconds}s, --workers 2")
            with self.monitor.phase(run.phase("creates wrk w2")):
                run.create_wrk_w2 = wrk(f"{server.url}/v1/files", self.args.create_seconds, script=lua)
        self.stop_server()

    # -- report
    def reference(self) -> BackendRun | None:
        """The run S3 backends are compared with: the embedded default, sqlite+local."""
        return next((r for r in self.runs if r.name == "sqlite+local"), None)

    def report(self, elapsed: float) -> int:
        a = self.args
        largest = max(a.sizes)
        P = print
        P()
        P("=" * 100)
        P(
            f"Cairn Files API benchmark  ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
            f"{platform.python_implementation()} {platform.python_version()}, commit {git_rev()}, "
            f"{'--quick' if a.quick else 'full run'}, {elapsed:.0f} s)"
        )
        P(
            f"backends: {', '.join(r.name for r in self.runs)};  data dir filesystem: {fs_of(self.tmp)};  "
            "MB = 10^6 bytes"
        )
        P("=" * 100)

        P(
            "\n1. Transfers (curl; upload = streamed multipart POST until the response, "
            "download = GET to /dev/null)"
        )
        rows = []
        for run in self.runs:
            for mib in a.sizes:
                r = run.sizes[mib]
                rows.append(
                    [
                        run.name,
                        fmt_size(mib),
                        f"{fmt(med(r.up))} ({fmt(min(r.up))}-{fmt(max(r.up))}) x{len(r.up)}",
                        fmt(ratio(med(r.up), med(self.dd[mib])), ".2f", "x"),
                        f"{fmt(med(r.down))} ({fmt(min(r.down))}-{fmt(max(r.down))}) x{len(r.down)}",
                        f"{fmt(med(r.ttfb_ms), '.2f')}",
                        f"{r.rss_up[2] / MiB:.1f} / {r.rss_down[2] / MiB:.1f}"
                        if r.rss_up and r.rss_down
                        else "n/a",
                        r.verified,
                    ]
                )
        P(
            table(
                [
                    "backend",
                    "size",
                    "upload MB/s med (min-max)",
                    "up/dd",
                    "download MB/s med (min-max)",
                    "TTFB ms med",
                    "RSS growth up/down MiB",
                    "round trip",
                ],
                rows,
            )
        )

        P(f"\n2. Server RSS during the {fmt_size(largest)} transfers (VmRSS sampled every 20 ms; worst run)")
        for run in self.runs:
            big = run.sizes[largest]
            for label, rss in (("upload", big.rss_up), ("download", big.rss_down)):
                if rss:
                    P(
                        f"   {run.name:<15} {label:<9} baseline {rss[0] / MiB:7.1f} MiB   "
                        f"peak {rss[1] / MiB:7.1f} MiB   growth {rss[2] / MiB:6.1f} MiB"
                    )

        P(f"\n3. Time to first byte, {fmt_size(largest)} download (time_starttransfer - time_pretransfer)")
        for run in self.runs:
            ttfb = run.sizes[largest].ttfb_ms
            P(
                f"   {run.name:<15} x{len(ttfb)}: median {fmt(med(ttfb), '.2f')} ms, "
                f"min {fmt(min(ttfb, default=None), '.2f')}, max {fmt(max(ttfb, default=None), '.2f')}"
            )

        P(f"\n4/5. Request rates (wrk -t2 -c{CONCURRENCY}; GET at {self.runs[0].rows_at_get:,} rows)")
        rows = []
        for run in self.runs:
            for label, w in (
                ("GET /v1/files/{id}, 1 worker", run.get_w1),
                ("GET /v1/files/{id}, --workers 2", run.get_w2),
                ("POST /v1/files 1 KiB (wrk), 1 worker", run.create_wrk),
                ("POST /v1/files 1 KiB (wrk), --workers 2", run.create_wrk_w2),
            ):
                if w:
                    rows.append(
                        [
                            run.name,
                            label,
                            f"{w.rps:,.0f}",
                            f"{w.p50_ms:.2f}",
                            f"{w.p99_ms:.2f}",
                            f"{w.requests:,}",
                            str(w.errors),
                        ]
                    )
            if run.create_http:
                rate, lat = run.create_http
                rows.append(
                    [
                        run.name,
                        f"POST /v1/files 1 KiB (httpx async, {HTTP_CREATES} files), 1 worker",
                        f"{rate:,.0f}",
                        f"{pct([x * 1e3 for x in lat], 50):.2f}",
                        f"{pct([x * 1e3 for x in lat], 99):.2f}",
                        f"{len(lat):,}",
                        "0",
                    ]
                )
        P(table(["backend", "request", "req/s", "p50 ms", "p99 ms", "requests", "errors"], rows))

        P(
            f"\n6. List pages (GET /v1/files?limit={LIST_PAGE}&after=..., whole listing walked, "
            "one keep-alive httpx connection; latency includes ~0.3 ms of client)"
        )
        rows = []
        for run in self.runs:
            listings = [
                (f"{HTTP_CREATES:,} files (created over HTTP)", run.list_1k),
                (f"{LIST_ROWS_LARGE:,} files ({run.bulk_rows:,} rows bulk-inserted)", run.list_100k),
            ]
            rows += [
                [run.name, label, f"{pct(pages, 50):.2f}", f"{pct(pages, 99):.2f}", str(len(pages))]
                for label, pages in listings
                if pages
            ]
        P(table(["backend", "table size", "p50 ms", "p99 ms", "pages"], rows))
        if any(run.bulk_rows for run in self.runs):
            P(
                f"   note: all but the first {HTTP_CREATES:,} of the {LIST_ROWS_LARGE:,} rows were "
                "bulk-inserted straight into the metadata database (copies of a real row, fresh ids) while "
                "the server ran; only their listing is measured."
            )

        P("\n7. Baselines (same run, same filesystem)")
        for mib in a.sizes:
            P(
                f"   dd if=/dev/zero bs=1M count={mib} conv=fdatasync: "
                f"median {fmt(med(self.dd[mib]))} MB/s "
                f"(runs: {', '.join(fmt(x) for x in self.dd[mib])})"
            )
        if self.first_touch:
            P(
                f"   disk preconditioning ({len(self.first_touch)} x {fmt_size(largest)}, fdatasync, deleted "
                f"before measuring): {', '.join(fmt(x) for x in self.first_touch)} MB/s\n"
                "     (first writes to never-used blocks of a "
                "thin virtual disk are slow; all measured writers then rewrite blocks)"
            )
        P(f"   raw TCP loopback, Python threads, {fmt_size(largest)}: median {fmt(med(self.loopback))} MB/s")
        P(f"   {self.nginx_line}")
        for note in self.notes:
            P(f"   note: {note}")

        P(f"\n8. Ratios ({fmt_size(largest)})")
        dd = med(self.dd[largest])
        for run in self.runs:
            up, down = med(run.sizes[largest].up), med(run.sizes[largest].down)
            P(f"   {run.name}")
            P(f"     upload / dd durable write : {fmt(up)} / {fmt(dd)} = {fmt(ratio(up, dd), '.2f', 'x')}")
            P(
                f"     upload / nginx PUT        : {fmt(up)} / {fmt(self.nginx_up)} = "
                f"{fmt(ratio(up, self.nginx_up), '.2f', 'x')}   (nginx does not fsync; Cairn does)"
            )
            P(
                f"     download / nginx download : {fmt(down)} / {fmt(self.nginx_down)} = "
                f"{fmt(ratio(down, self.nginx_down), '.2f', 'x')}"
            )
        ref = self.reference()
        for run in self.runs:
            if ref is None or run is ref:
                continue
            mine, theirs = run.sizes[largest], ref.sizes[largest]
            P(f"   {run.name} / {ref.name}")
            for label, x, y in (("upload", mine.up, theirs.up), ("download", mine.down, theirs.down)):
                P(
                    f"     {label:<9} MB/s      : {fmt(med(x))} / {fmt(med(y))} = "
                    f"{fmt(ratio(med(x), med(y)), '.2f', 'x')}"
                )
            for label, x, y in (
                ("upload", mine.rss_up, theirs.rss_up),
                ("download", mine.rss_down, theirs.rss_down),
            ):
                if x and y:
                    P(
                        f"     RSS growth {label:<9}: {x[2] / MiB:.1f} / {y[2] / MiB:.1f} MiB = "
                        f"{fmt(ratio(x[2], y[2]), '.1f', 'x')}"
                    )

        P(
            "\n9. Machine load: CPU used by processes outside this benchmark (other sessions, services), "
            "per phase"
        )
        rows = []
        for name, wall, cpu, top in self.monitor.phases:
            names = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:3])
            rows.append(
                [
                    name,
                    f"{wall:.1f}",
                    f"{cpu:.1f}",
                    f"{cpu / (wall * self.monitor.cores):.0%}" if wall else "n/a",
                    names,
                ]
            )
        P(table(["phase", "wall s", "other CPU-s", "of machine", "top other processes"], rows))
        P(
            "   (the PostgreSQL connections of a backend's own database count as this benchmark's; "
            "PostgreSQL's background processes count as other)"
        )
        total_wall = sum(r[1] for r in self.monitor.phases)
        total_cpu = sum(r[2] for r in self.monitor.phases)
        if total_wall and total_cpu / (total_wall * self.monitor.cores) > 0.1:
            P(
                f"   WARNING: other processes used {total_cpu / (total_wall * self.monitor.cores):.0%} "
                "of the machine "
                "during the measured phases: figures are noisier and lower than on an idle machine."
            )

        targets: list[tuple[str, bool | None, str, str]] = []
        for run in self.runs:
            targets += self.s3_targets(run) if run.on_s3 else self.local_targets(run)

        P("\n" + "=" * 100)
        P("SUMMARY: targets")
        P(
            table(
                ["target", "measured", "status", "other CPU"],
                [
                    [n, v, "n/a" if ok is None else ("MET" if ok else "NOT MET"), sh]
                    for n, ok, v, sh in targets
                ],
            )
        )
        met = sum(1 for _, ok, _, _ in targets if ok)
        missed = [n for n, ok, _, _ in targets if ok is False]
        P(f"\n{met}/{len(targets)} targets met" + (f"; not met: {'; '.join(missed)}" if missed else "") + ".")
        P(
            "'other CPU': share of the machine's CPU used by processes outside this benchmark during the "
            "phase that produced the figure (section 9); above ~10% the figure is understated."
        )
        P("=" * 100)
        return 0

    def _target(
        self, run: BackendRun, name: str, ok: bool | None, value: str, phase: str
    ) -> tuple[str, bool | None, str, str]:
        """One summary row: ``name`` qualified by the backend and the sizes measured, and the share of the
        machine other processes used during ``phase`` of this backend."""
        largest = max(self.args.sizes)
        on = "" if largest >= 1024 else f" [on {fmt_size(largest)}: --quick/--sizes]"
        share = self.monitor.share(run.phase(phase))
        return f"{name}{on} [{run.name}]", ok, value, "" if share is None else f"{share:.0%}"

    def local_targets(self, run: BackendRun) -> list[tuple[str, bool | None, str, str]]:
        """Blobs on the local disk: against dd, nginx and the absolute figures of the Files API issue."""
        largest = max(self.args.sizes)
        big = run.sizes[largest]
        up, down = med(big.up), med(big.down)
        upload, download = f"upload {fmt_size(largest)}", f"download {fmt_size(largest)}"
        T = partial(self._target, run)
        r_dd = ratio(up, med(self.dd[largest]))
        r_ng = ratio(up, self.nginx_up)
        r_nd = ratio(down, self.nginx_down)
        ttfb = med(big.ttfb_ms)
        out = [
            T(
                "1 GiB upload >= 0.8x dd durable write",
                None if r_dd is None else r_dd >= 0.8,
                fmt(r_dd, ".2f", "x"),
                upload,
            ),
            T(
                "1 GiB upload >= 0.8x nginx PUT (aim)",
                None if r_ng is None else r_ng >= 0.8,
                fmt(r_ng, ".2f", "x"),
                upload,
            ),
            *(
                T(
                    f"RSS growth <= 32 MiB during {label}",
                    None if rss is None else rss[2] <= 32 * MiB,
                    "n/a" if rss is None else f"{rss[2] / MiB:.1f} MiB",
                    phase,
                )
                for label, rss, phase in (
                    ("upload", big.rss_up, upload),
                    ("download", big.rss_down, download),
                )
            ),
            T("1 GiB download >= 1 GB/s", down >= 1000, f"{fmt(down)} MB/s", download),
            T(
                "1 GiB download >= 0.5x nginx",
                None if r_nd is None else r_nd >= 0.5,
                fmt(r_nd, ".2f", "x"),
                download,
            ),
            T("TTFB < 5 ms", ttfb < 5, f"{fmt(ttfb, '.2f')} ms", download),
        ]
        g, g2 = run.get_w1, run.get_w2
        w2 = f" (--workers 2: {g2.rps:,.0f})" if g2 else ""
        out.append(
            T(
                "GET /v1/files/{id} >= 2,000 req/s (1 worker)",
                None if g is None else g.rps >= 2000,
                "n/a" if g is None else f"{g.rps:,.0f} req/s{w2}",
                "GET w1",
            )
        )
        w2 = f" (--workers 2: {g2.p99_ms:.2f})" if g2 else ""
        out.append(
            T(
                "GET /v1/files/{id} p99 < 20 ms (1 worker)",
                None if g is None else g.p99_ms < 20,
                "n/a" if g is None else f"{g.p99_ms:.2f} ms{w2}",
                "GET w1",
            )
        )
        c, c2, h = run.create_wrk, run.create_wrk_w2, run.create_http
        if c is not None:
            assert h is not None  # the httpx creates run first
            extra = f" (httpx: {h[0]:,.0f}" + (f"; wrk --workers 2: {c2.rps:,.0f}" if c2 else "") + ")"
            out.append(
                T(
                    "small creates >= 1,000/s (wrk, 1 worker)",
                    c.rps >= 1000,
                    f"{c.rps:,.0f}/s{extra}",
                    "creates wrk w1",
                )
            )
        elif h:
            out.append(
                T(
                    "small creates >= 1,000/s (httpx, 1 worker)",
                    h[0] >= 1000,
                    f"{h[0]:,.0f}/s",
                    "creates httpx",
                )
            )
        if run.list_100k:
            p50 = pct(run.list_100k, 50)
            out.append(T("list page p50 < 5 ms at 100k files", p50 < 5, f"{p50:.2f} ms", "list 100k"))
        else:
            out.append(T("list page p50 < 5 ms at 100k files", None, "not measured (--quick)", "list 100k"))
        return out

    def s3_targets(self, run: BackendRun) -> list[tuple[str, bool | None, str, str]]:
        """Blobs on S3 (issue 5): against the embedded default of the same run, and RSS within 64 MiB."""
        largest = max(self.args.sizes)
        big = run.sizes[largest]
        ref = self.reference()
        r_up = ratio(med(big.up), med(ref.sizes[largest].up)) if ref else None
        upload, download = f"upload {fmt_size(largest)}", f"download {fmt_size(largest)}"
        out = [
            self._target(
                run,
                "1 GiB upload >= 0.5x sqlite+local",
                None if r_up is None else r_up >= 0.5,
                fmt(r_up, ".2f", "x") if ref else "n/a (sqlite+local not in --backends)",
                upload,
            )
        ]
        for label, rss, phase in (("upload", big.rss_up, upload), ("download", big.rss_down, download)):
            out.append(
                self._target(
                    run,
                    f"RSS growth <= 64 MiB during {label}",
                    None if rss is None else rss[2] <= 64 * MiB,
                    "n/a" if rss is None else f"{rss[2] / MiB:.1f} MiB",
                    phase,
                )
            )
        return out


def git_rev() -> str:
    try:
        out = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], timeout=10).stdout.strip()
        dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], timeout=10).stdout.strip()
        return (out or "?") + ("+dirty src" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def fs_of(path: Path) -> str:
    try:
        out = run(["df", "-hT", str(path)], timeout=10).stdout.splitlines()[-1].split()
        return f"{out[0]} ({out[1]}), {out[4]} free"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def wait_for_idle(monitor: ForeignCpu, limit: float) -> None:
    """Waits (up to ``limit`` s) until other processes use under 10% of the machine over 3 s."""
    deadline = time.monotonic() + limit
    while True:
        t0, c0, n0 = monitor.snapshot()
        time.sleep(3)
        t1, c1, n1 = monitor.snapshot()
        share = (c1 - c0) / ((t1 - t0) * monitor.cores)
        top = sorted(((v - n0.get(k, 0.0), k) for k, v in n1.items()), reverse=True)[:3]
        busy = ", ".join(f"{k} {v:.1f}s" for v, k in top if v > 0.05)
        if share < 0.10:
            log(f"machine quiet enough: other processes use {share:.0%} of the CPU")
            return
        if time.monotonic() >= deadline:
            log(f"WARNING: other processes still use {share:.0%} of the CPU ({busy}); measuring anyway")
            return
        log(f"waiting for other processes to quiet down: {share:.0%} of the CPU in use ({busy})")


def pick_tmp_parent(explicit: str | None) -> Path:
    """A temp dir on the same filesystem as the repo: the system temp dir if it is, else the repo's parent."""
    if explicit:
        return Path(explicit)
    system_tmp = Path(tempfile.gettempdir())
    if system_tmp.stat().st_dev == REPO.stat().st_dev:
        return system_tmp
    return REPO.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the 1 GiB size and the 100k listing (fast check)"
    )
    parser.add_argument("--sizes", help="comma-separated sizes in MiB (default 1,100,1024; --quick: 1,100)")
    parser.add_argument(
        "--wrk-seconds", type=int, help="duration of each GET wrk run (default 10; --quick 5)"
    )
    parser.add_argument(
        "--create-seconds", type=int, help="duration of each wrk create run (default 5; --quick 3)"
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx baseline")
    parser.add_argument("--no-workers2", action="store_true", help="skip the --workers 2 runs")
    parser.add_argument(
        "--backends",
        default="sqlite+local",
        help=f"comma-separated backend sets, measured in turn ({', '.join(BACKENDS)}; default sqlite+local)",
    )
    parser.add_argument(
        "--tmp-dir", help="parent of the temp dir (default: system temp if on the repo's filesystem)"
    )
    parser.add_argument("--no-precondition", action="store_true", help="skip the disk preconditioning writes")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=60,
        help="wait up to this many seconds for other processes to quiet down first (default 60)",
    )
    args = parser.parse_args()
    args.sizes = (
        sorted({int(s) for s in args.sizes.split(",")})
        if args.sizes
        else ([1, 100] if args.quick else [1, 100, 1024])
    )
    args.wrk_seconds = args.wrk_seconds or (5 if args.quick else 10)
    args.create_seconds = args.create_seconds or (3 if args.quick else 5)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if (
        not args.backends
        or len(set(args.backends)) < len(args.backends)
        or set(args.backends) - set(BACKENDS)
    ):
        print(f"error: --backends takes distinct names among {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    for tool in ("curl", "dd"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is required", file=sys.stderr)
            return 2

    parent = pick_tmp_parent(args.tmp_dir)
    largest = max(args.sizes) * MiB
    nginx_need = 0 if args.no_nginx else 4 * largest  # its source + three PUT copies
    # SeaweedFS keeps the bytes of deleted objects until it compacts its volumes
    s3_need = (LARGE_RUNS + 1) * largest if any(b.endswith("+s3") for b in args.backends) else 0
    need = (
        max(
            3 * largest + max(nginx_need, s3_need),
            0 if args.no_precondition else PRECONDITION_FILES * largest,
        )
        + 1024 * MiB
    )
    free = shutil.disk_usage(parent).free
    log(f"temp parent {parent}: {free / (1 << 30):.1f} GiB free, need ~{need / (1 << 30):.1f} GiB")
    if free < need:
        print(
            f"error: not enough free disk in {parent} "
            f"({free / (1 << 30):.1f} GiB < {need / (1 << 30):.1f} GiB)",
            file=sys.stderr,
        )
        return 2

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    monitor = ForeignCpu()
    wait_for_idle(monitor, args.wait_idle)
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench.", dir=parent))
    bench = Bench(args, tmp, monitor)
    started = time.monotonic()
    try:
        if not args.no_precondition:
            bench.precondition()
        bench.prepare()
        bench.baselines()
        for name in args.backends:
            log(f"backend {name}")
            with backend(name, tmp) as settings:
                bench.measure(name, settings)
        return bench.report(time.monotonic() - started)
    except BaseException:
        if bench.server is not None:
            print(f"--- server log tail ---\n{bench.server.tail()}", file=sys.stderr)
        raise
    finally:
        monitor.stop()
        bench.stop_server()
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")


if __name__ == "__main__":
    sys.exit(main())
