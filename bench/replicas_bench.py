#!/usr/bin/env python3
"""Cairn replicas benchmark: two single-worker replicas against one, on shared PostgreSQL + S3 (+ Redis).

Run by hand (not in CI), from the repo:

    .venv/bin/python bench/replicas_bench.py                        # 5 rounds x 3 kinds x 8 s, ~5 min
    .venv/bin/python bench/replicas_bench.py --rounds 1 --seconds 3 # quick check
    .venv/bin/python bench/replicas_bench.py --balancer nginx       # through nginx, as in docs/deploy.md

It makes a fresh PostgreSQL database and a SeaweedFS of its own with a fresh bucket, starts two
``cairn serve`` replicas (one worker each, own data directories) on them, with rate limits kept in Redis
at limits too high to bite, and measures small requests: creates (``POST /v1/files`` of a few KiB),
metadata reads (``GET /v1/files/{id}``) and content reads (``GET /v1/files/{id}/content``) of a pool of
files created first. Load: two ``wrk -t1`` processes, both aimed at replica 1 ("1 replica") or one at
each ("2 replicas"); with ``--balancer nginx`` both go through an nginx in front of one or both replicas.
The two set-ups alternate within every round, so drifting background load hits both alike. Prints req/s
medians, the 2/1 ratio, and where the CPU went; removes everything it made, even on failure or Ctrl-C.

wrk is required (``apt-get install -y wrk``): a Python load generator on the same 2 cores saturates
before one replica does (files_bench.py's httpx creates run at about half wrk's rate).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _harness import REPO, Server, WrkResult, backend, free_port, parse_wrk, wrk_command, wrk_create_lua

KINDS = {
    "create": "POST /v1/files",
    "get": "GET /v1/files/{id}",
    "content": "GET /v1/files/{id}/content",
}
SETUPS = ("1 replica", "2 replicas")
POOL = 256  # files the reads pick from at random
TARGET_RATIO = 1.4
HIGH_LIMIT = "1000000"  # per tenant per minute: the largest the settings accept, far above what is reached


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def reads_lua(ids: list[str], suffix: str) -> str:
    """A wrk script whose every request reads one file of ``ids`` at random (``suffix``: "" or /content)."""
    quoted = ", ".join(f'"{i}"' for i in ids)
    return f"""
local ids = {{{quoted}}}
request = function()
  return wrk.format("GET", "/v1/files/" .. ids[math.random(#ids)] .. "{suffix}")
end
"""


# ------------------------------------------------------------------------------------------ CPU use

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.25


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O) since boot."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK  # user nice system idle iowait irq softirq steal


class CpuGroups:
    """CPU time of named groups of processes: a process and its descendants (``trees``), or every process
    whose command line contains a string (``matches``), measured by ``watching``."""

    def __init__(self) -> None:
        self.trees: dict[str, list[int]] = {}
        self.matches: dict[str, str] = {}
        self._group_of: dict[tuple[int, int], str | None] = {}  # (pid, start time) -> group

    @property
    def names(self) -> list[str]:
        return [*self.trees, *self.matches]

    @contextlib.contextmanager
    def watching(self) -> Iterator[dict[str, float]]:
        """Fills the dict it yields, once the block is done, with the cores each group used meanwhile and
        the machine's busy cores ("machine"). Samples every quarter second, so a process that comes and
        goes in between (a PostgreSQL connection the pool opens and closes) counts up to its last sample."""
        t0, busy0 = time.monotonic(), _machine_busy()
        first = self._sample()
        seen = dict(first)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_SECONDS):
                seen.update(self._sample())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        cores: dict[str, float] = {}
        try:
            yield cores
        finally:
            stop.set()
            thread.join()
            seen.update(self._sample())
            wall = time.monotonic() - t0
            used = dict.fromkeys(self.names, 0.0)
            for key, (name, cpu) in seen.items():
                used[name] += cpu - first.get(key, (name, 0.0))[1]
            cores.update({name: seconds / wall for name, seconds in used.items()})
            cores["machine"] = (_machine_busy() - busy0) / wall

    def _sample(self) -> dict[tuple[int, int], tuple[str, float]]:
        """(pid, start time) -> (group, CPU seconds used so far) of every process in a group."""
        stats: dict[int, tuple[int, int, float]] = {}  # pid -> parent, start time, CPU seconds
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                f = stat[stat.rfind(")") + 2 :].split()
                stats[int(entry)] = (int(f[1]), int(f[19]), (int(f[11]) + int(f[12])) / TICK)
        grouped = {}
        for pid, (_, start, cpu) in stats.items():
            key = (pid, start)
            if key not in self._group_of:
                self._group_of[key] = self._classify(pid, stats)
            if name := self._group_of[key]:
                grouped[key] = (name, cpu)
        return grouped

    def _classify(self, pid: int, stats: dict[int, tuple[int, int, float]]) -> str | None:
        ancestor = pid
        for _ in range(64):
            for name, roots in self.trees.items():
                if ancestor in roots:
                    return name
            if ancestor not in stats or ancestor <= 1:
                break
            ancestor = stats[ancestor][0]
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        return next((name for name, needle in self.matches.items() if needle in cmdline), None)


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Sample:
    """One measurement: both wrk processes together."""

    rps: float
    errors: int
    p99_ms: float
    cores: dict[str, float]  # CPU used per group, in cores (CPU seconds per wall second)


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (kind, setup) -> rounds

    def add(self, kind: str, setup: str, sample: Sample) -> None:
        self.samples.setdefault((kind, setup), []).append(sample)

    def rps(self, kind: str, setup: str) -> list[float]:
        return [s.rps for s in self.samples.get((kind, setup), [])]


def run_wrk_pair(urls: list[str], seconds: int, script: Path, connections: int) -> tuple[WrkResult, float]:
    """Runs one ``wrk -t1`` per URL at once; returns their summed figures and the CPU seconds they used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            wrk_command(url, seconds, script, connections, threads=1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outputs = [proc.communicate(timeout=seconds + 60) for proc in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode:
            raise RuntimeError(f"wrk failed: {err}\n{out}")
    results = [parse_wrk(out) for out, _ in outputs]
    total = WrkResult(
        sum(r.rps for r in results),
        max(r.p50_ms for r in results),
        max(r.p99_ms for r in results),
        sum(r.requests for r in results),
        sum(r.errors for r in results),
    )
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return total, cpu


# ------------------------------------------------------------------------------------------ nginx


def nginx_conf(prefix: Path, port: int, replicas: list[str]) -> str:
    """A load balancer in front of ``replicas`` (host:port), set up as docs/deploy.md advises."""
    servers = "".join(f"    server {r};\n" for r in replicas)
    return f"""user root;
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  upstream cairn {{
{servers}    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
      proxy_pass http://cairn;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }}
  }}
}}
"""


@contextlib.contextmanager
def nginx(prefix: Path, replicas: list[str]) -> Iterator[tuple[str, int]]:
    """An nginx balancing over ``replicas``; yields its URL and master pid, and stops it on exit."""
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, replicas))
    proc = subprocess.Popen(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'error.log').read_text()[-1000:]}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


# ------------------------------------------------------------------------------------------ the run


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.entry: dict[str, list[str]] = {}  # setup -> the URL each of the two wrk processes aims at
        self.scripts: dict[str, Path] = {}
        self.cpu = CpuGroups()
        self.results = Results()

    def start(self, stack: contextlib.ExitStack) -> None:
        settings = stack.enter_context(backend("postgres+s3", self.tmp))
        self.cpu.matches["postgres"] = settings["CAIRN_DATABASE_URL"].rsplit("/", 1)[-1]
        self.cpu.matches["seaweedfs"] = f"-s3.port={settings['CAIRN_S3_ENDPOINT_URL'].rsplit(':', 1)[-1]} "
        settings["CAIRN_ACCESS_LOG"] = "false"
        if self.args.no_redis:
            settings["CAIRN_RATE_LIMITS"] = "false"
        else:
            settings["CAIRN_REDIS_URL"] = self.args.redis_url
            self.cpu.matches["redis (shared)"] = "redis-server"
            for kind in ("UPLOADS", "RETRIEVALS", "DELETIONS"):
                settings[f"CAIRN_RATE_LIMIT_{kind}"] = HIGH_LIMIT
        replicas = []
        for n in (1, 2):
            server = Server(self.tmp / f"data-{n}", self.tmp / f"replica-{n}.log", settings)
            stack.callback(server.stop)
            server.start()
            assert server.proc is not None
            self.cpu.trees[f"replica {n}"] = [server.proc.pid]
            replicas.append(server)
        one, two = replicas[0].url, replicas[1].url
        if self.args.balancer == "nginx":
            hosts = [r.url.removeprefix("http://") for r in replicas]
            url1, pid1 = stack.enter_context(nginx(self.tmp / "nginx-1", hosts[:1]))
            url2, pid2 = stack.enter_context(nginx(self.tmp / "nginx-2", hosts))
            self.cpu.trees["nginx"] = [pid1, pid2]
            self.entry = {"1 replica": [url1, url1], "2 replicas": [url2, url2]}
        else:
            self.entry = {"1 replica": [one, one], "2 replicas": [one, two]}
        ids = self.make_pool(one, two)
        size = self.args.file_kib * 1024
        for kind, text in (
            ("create", wrk_create_lua(size)),
            ("get", reads_lua(ids, "")),
            ("content", reads_lua(ids, "/content")),
        ):
            self.scripts[kind] = self.tmp / f"{kind}.lua"
            self.scripts[kind].write_text(text)

    def make_pool(self, one: str, two: str) -> list[str]:
        """Creates the files the reads pick from, through replica 1, and reads one back through replica 2
        (the replicas share one database and one bucket)."""
        log(f"creating {POOL} files of {self.args.file_kib} KiB through replica 1")
        payload = os.urandom(self.args.file_kib * 1024)
        ids = []
        with httpx.Client(base_url=one, timeout=30) as client:
            for i in range(POOL):
                r = client.post(
                    "/v1/files", data={"purpose": "assistants"}, files={"file": (f"pool-{i}.bin", payload)}
                )
                r.raise_for_status()
                ids.append(r.json()["id"])
        r = httpx.get(f"{two}/v1/files/{ids[0]}/content", timeout=30)
        if r.status_code != 200 or r.content != payload:
            raise RuntimeError(f"replica 2 does not see what replica 1 stored: {r.status_code}")
        return ids

    def measure(self, kind: str, setup: str, seconds: int) -> Sample:
        urls = [f"{url}/v1/files" for url in self.entry[setup]]  # the read scripts choose their own paths
        with self.cpu.watching() as cores:
            total, wrk_cpu = run_wrk_pair(urls, seconds, self.scripts[kind], self.args.connections // 2)
        if total.errors > total.requests // 100:
            raise RuntimeError(f"{KINDS[kind]}, {setup}: {total.errors} of {total.requests} requests failed")
        cores["wrk"] = wrk_cpu / seconds
        ours = sum(v for name, v in cores.items() if name != "machine")
        cores["everything else"] = max(0.0, cores["machine"] - ours)
        return Sample(total.rps, total.errors, total.p99_ms, cores)

    def run(self) -> None:
        warm = min(2, self.args.seconds)
        log(f"warming up: {warm} s of each request kind on each setup")
        for kind in KINDS:
            for setup in SETUPS:
                self.measure(kind, setup, warm)
        for n in range(self.args.rounds):
            order = SETUPS if n % 2 == 0 else SETUPS[::-1]
            for kind in KINDS:
                for setup in order:
                    sample = self.measure(kind, setup, self.args.seconds)
                    self.results.add(kind, setup, sample)
                    log(
                        f"round {n + 1}/{self.args.rounds} {KINDS[kind]:<27} {setup:<10}: "
                        f"{sample.rps:7,.0f} req/s, p99 {sample.p99_ms:6.1f} ms, errors {sample.errors}, "
                        f"machine busy {sample.cores['machine']:.2f} cores"
                    )


# ------------------------------------------------------------------------------------------ report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        lines.append(
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(lines)


def git_rev() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    try:
        return (git("rev-parse", "--short", "HEAD") or "?") + (
            "+dirty src" if git("status", "--porcelain", "--", "src") else ""
        )
    except OSError:
        return "?"


def report(bench: Bench, load_before: str, load_after: str, elapsed: float) -> None:
    a, res = bench.args, bench.results
    P = print
    P()
    P("=" * 100)
    P(
        f"Cairn replicas benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"commit {git_rev()}, {elapsed:.0f} s)"
    )
    limits = "rate limits off" if a.no_redis else f"rate limits in Redis ({a.redis_url}) at {HIGH_LIMIT}/min"
    P(
        f"PostgreSQL + SeaweedFS (S3), {limits}; single-worker replicas, access log off; "
        f"{a.rounds} rounds x {a.seconds} s; load: 2 x wrk -t1 -c{a.connections // 2}"
        + (" through nginx" if a.balancer == "nginx" else " (2 replicas: one wrk each)")
        + f"; files of {a.file_kib} KiB, reads over a pool of {POOL}"
    )
    P(f"load average before: {load_before}   after: {load_after}")
    P("=" * 100)

    P(f"\n1. Requests per second (both wrk summed; median of {a.rounds} rounds, min-max)")
    rows, verdicts = [], []
    for kind, label in KINDS.items():
        one, two = res.rps(kind, "1 replica"), res.rps(kind, "2 replicas")
        ratio = med(two) / med(one) if one and med(one) else float("nan")
        pairs = ", ".join(f"{t / o:.2f}" for o, t in zip(one, two, strict=True) if o)
        busy_with_one = med([s.cores["machine"] for s in res.samples[(kind, "1 replica")]])
        ok = ratio >= TARGET_RATIO
        verdicts.append(ok)
        rows.append(
            [
                label + (f" ({a.file_kib} KiB)" if kind == "create" else ""),
                f"{med(one):,.0f} ({min(one):,.0f}-{max(one):,.0f})",
                f"{med(two):,.0f} ({min(two):,.0f}-{max(two):,.0f})",
                f"{ratio:.2f}x",
                f"{(os.cpu_count() or 1) / busy_with_one:.2f}x",
                pairs,
                "MET" if ok else "NOT MET",
            ]
        )
    P(
        table(
            [
                "request",
                "1 replica",
                "2 replicas",
                "2/1",
                "ceiling",
                "per round 2/1",
                f"target >= {TARGET_RATIO}x",
            ],
            rows,
        )
    )
    P(
        "   ceiling: the machine's cores over the cores busy with one replica (section 3): the most any\n"
        "   number of replicas can serve here over one, if a request costs the CPU it costs with one."
    )

    P(
        "\n2. Latency and errors (p99 of the slower wrk, median of rounds; errors: non-2xx responses and "
        "socket errors, all rounds)"
    )
    rows = []
    for kind, label in KINDS.items():
        for setup in SETUPS:
            samples = res.samples[(kind, setup)]
            rows.append(
                [label, setup, f"{med([s.p99_ms for s in samples]):.1f}", str(sum(s.errors for s in samples))]
            )
    P(table(["request", "setup", "p99 ms", "errors"], rows))

    groups = [*bench.cpu.names, "wrk", "everything else", "machine"]
    P(f"\n3. Where the CPU went (cores in use, median of rounds; the machine has {os.cpu_count()})")
    rows = []
    for kind, label in KINDS.items():
        for setup in SETUPS:
            samples = res.samples[(kind, setup)]
            rows.append([label, setup, *(f"{med([s.cores[g] for s in samples]):.2f}" for g in groups)])
    P(table(["request", "setup", *[g if g != "machine" else "machine busy" for g in groups]], rows))
    P(
        "   postgres: the connections to this run's database; redis (shared): every redis-server process,\n"
        "   other users' included; everything else: the machine's busy time minus all of the above (other\n"
        "   sessions, PostgreSQL's background processes, the kernel's work for no process)."
    )

    P("\n" + "=" * 100)
    met = sum(verdicts)
    P(
        f"SUMMARY: two single-worker replicas >= {TARGET_RATIO}x one, for small requests: "
        f"{met}/{len(verdicts)} request kinds met"
    )
    P("=" * 100)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds; each measures every kind on both setups"
    )
    parser.add_argument("--seconds", type=int, default=8, help="duration of each measurement (default 8)")
    parser.add_argument(
        "--connections", type=int, default=16, help="connections in all, split over the two wrk (default 16)"
    )
    parser.add_argument(
        "--file-kib", type=int, default=4, help="size of the files created and read (default 4)"
    )
    parser.add_argument(
        "--balancer",
        choices=("wrk", "nginx"),
        default="wrk",
        help="wrk: each wrk aims at a replica itself (default); nginx: both go through nginx",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="Redis for the rate limits (default redis://127.0.0.1:6379/15)",
    )
    parser.add_argument("--no-redis", action="store_true", help="rate limits off instead of in Redis")
    args = parser.parse_args()
    if args.connections < 2 or args.rounds < 1:
        parser.error("--connections must be at least 2 and --rounds at least 1")
    for tool in ("wrk", *(["nginx"] if args.balancer == "nginx" else [])):
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None:
            print(f"error: {tool} is required (apt-get install -y {tool})", file=sys.stderr)
            return 2

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="cairn-replicas."))
    bench = Bench(args, tmp)
    started = time.monotonic()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        with contextlib.ExitStack() as stack:
            bench.start(stack)
            bench.run()
        load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        report(bench, load_before, load_after, time.monotonic() - started)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")


if __name__ == "__main__":
    sys.exit(main())
