"""Responses benchmark: what Cairn's Responses API and its Agents API cost in front of a model server that
streams tokens as fast as it can, against calling that server directly and against chat completions
streamed through Cairn, in the same run.

The upstream is ``_fast_upstream.py`` (an OpenAI-compatible chat-completions server in a process of its
own that streams ``--tokens`` one-word chunks per request as fast as it can). The router is a
`cairn serve` (one worker, fresh data directory, SQLite) with no models of its own and the upstream as a
``remote::openai`` provider, in open mode on loopback with the access log and rate limits off. Cairn's
other bounds on inference are opened so that ``--streams`` streams may run at once: the open-streams
limit (``CAIRN_INFERENCE_STREAMS_PER_TENANT``, 4 a tenant by default) is off, and the provider's
``max_concurrency`` and ``queue_depth`` (16 and 64 by default) are ``--streams`` each. Five paths:

  direct     POST /v1/chat/completions on the upstream;
  chat       the same through Cairn;
  responses  POST /v1/responses through Cairn (stored, as by default; ``--no-store`` sends store false);
  conversation  the same in a conversation of its own (``conversation``: its input and output appended to
             it), the stateful Responses request an Agents turn compares with;
  agents     a streamed turn through Cairn, POST /v1/agents/{agent_id}/session/{session_id}/turn with
             the one user message, in a session of its own.

The agents path runs on two agents made once per run, the chat model through the router with greedy
sampling, one with ``max_tokens`` 1 (for the one-token requests) and one with none, as the other paths
send it. A session's turns read every earlier turn of it, so each turn has a fresh session, which keeps
its context the one user message that the Responses path sends; the sessions are all made before the
warm-up, so that neither the clocks nor the router's CPU of a phase count them; the conversations of the
conversation path too, one per request.

Measures:

  1. time to first token (the first piece of text: a chunk with content, a
     ``response.output_text.delta``, a ``step_progress`` with a text delta) of ``--ttft-runs`` one-token
     streamed requests on each path, taking turns in alternating order: p50 and p99, what Cairn adds
     (routed minus direct), the median of the paired differences (each routed request minus the direct
     one of the same turn) and the difference of the minima;
  2. events/s on one worker: one client streams an answer of ``--tokens`` tokens, the events it receives
     (every SSE ``data`` frame but ``[DONE]``; an Agents stream has none) over the time from the request
     to the last event, median of ``--runs`` runs on each path in alternating order; the router's CPU
     per token;
  3. ``--streams`` concurrent streams of ``--tokens`` tokens on each path, ``--rounds`` times in
     alternating order: errors (any status but 200, a stream cut short or failed), the p50 and p99 of
     the delay between two pieces of text of a stream at the client, Cairn's added delay (routed minus
     direct), and the router's resident size (``VmRSS``) before the first round and after each round,
     and its peak over them (``VmHWM``, reset through ``/proc/<pid>/clear_refs`` before the first).
Prints the figures, the targets (MET / NOT MET), where the CPU went (this process, the router, the
upstream, the rest of the machine) and the load average. The client is one httpx.AsyncClient per server,
with a connection for each stream.

Run by hand: .venv/bin/python bench/responses_bench.py [--ttft-runs 200] [--streams 256] [--tokens 256]
Targets (issue 15): Responses' added time to first token <= 5 ms p50; ``--streams`` concurrent Responses
streams without error, p99 added inter-event delay <= 20 ms, router RSS flat (<= 32 MiB growth). Chat
completions through Cairn are quoted beside them. Issue 16: the agents path within 10% of the Responses
path, which runs the same loop: its added time to first token p50 <= 1.1 times Responses', its median
events/s >= 0.9 times Responses'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from _harness import QUIET, Server
from inference_bench import CpuMeter, alternate, loadavg, log, med, pct, run_bench, table, verdict
from vector_batch_bench import vm_bytes

MiB = 1 << 20
MODEL = "fast"
PROVIDER = "upstream"
PROMPT = "Tell me about the cat."
WARM_UP = 3  # requests on each path before any measure
TARGETS = {"ttft_added_ms": 5.0, "gap_p99_added_ms": 20.0, "rss_mib": 32, "agents_within": 0.10}
ENDS = {
    "chat": ("[DONE]",),
    "responses": ("response.completed", "response.incomplete"),
    "conversation": ("response.completed", "response.incomplete"),
    "agents": ("turn_complete",),
}
Face = Literal["chat", "responses", "conversation", "agents"]


class Upstream(Server):
    """``_fast_upstream.py`` in a process of its own, streaming ``tokens`` tokens per answer."""

    def __init__(self, work: Path, tokens: int) -> None:
        super().__init__(work, work / "upstream.log")
        self.tokens = tokens

    def command(self) -> list[str]:
        script = Path(__file__).with_name("_fast_upstream.py")
        return [sys.executable, str(script), "--port", str(self.port), "--tokens", str(self.tokens)]


def router_settings(upstream: str, streams: int) -> dict[str, str]:
    provider = {
        "id": PROVIDER,
        "type": "remote::openai",
        "base_url": upstream + "/v1",
        "timeout": 120,
        "max_concurrency": streams,
        "queue_depth": streams,
        "models": [{"id": MODEL}],
    }
    return {
        **QUIET,
        "CAIRN_EMBEDDED_MODELS": "false",
        "CAIRN_INFERENCE_STREAMS_PER_TENANT": "0",
        "CAIRN_PROVIDERS": json.dumps([provider]),
    }


@dataclass
class Stream:
    """One streamed answer as the client received it, in ``time.perf_counter`` seconds."""

    started: float
    texts: list[float]  # when each piece of text arrived
    events: int
    ended: float  # when the last event arrived

    @property
    def ttft_ms(self) -> float:
        return (self.texts[0] - self.started) * 1000

    @property
    def events_s(self) -> float:
        return self.events / (self.ended - self.started)

    @property
    def tokens_s(self) -> float:
        return len(self.texts) / (self.ended - self.started)

    def gaps_ms(self) -> list[float]:
        return [(later - earlier) * 1000 for earlier, later in zip(self.texts, self.texts[1:], strict=False)]


@dataclass(frozen=True)
class Route:
    """A way to a streamed answer: chat completions on the upstream or through Cairn, a response or an
    agent's turn through Cairn."""

    name: str
    client: httpx.AsyncClient
    model: str
    face: Face = "chat"
    store: bool = True
    fresh: dict[int | None, list[str]] = field(default_factory=dict)
    """Agents: the turn paths of fresh sessions, by the ``max_tokens`` of their agent (None: none);
    conversation: the ids of fresh conversations, by the ``max_output_tokens`` of the requests to come."""

    async def prepare(self, count: int, limit: int | None = None) -> None:
        """Agents: a new agent whose ``max_tokens`` is ``limit`` and ``count`` sessions of it, one per turn
        to come; conversation: ``count`` conversations, one per request to come."""
        paths = self.fresh.setdefault(limit, [])
        if self.face == "conversation":
            paths.extend([(await self._post("/v1/conversations", {}))["id"] for _ in range(count)])
        if self.face != "agents":
            return
        config = {
            "model": self.model,
            "instructions": "",
            "sampling_params": {"strategy": {"type": "greedy"}, "max_tokens": limit or 0},
        }
        agent = (await self._post("/v1/agents", {"agent_config": config}))["agent_id"]
        for _ in range(count):
            session = await self._post(f"/v1/agents/{agent}/session", {"session_name": "bench"})
            paths.append(f"/v1/agents/{agent}/session/{session['session_id']}/turn")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name}: {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()  # type: ignore[no-any-return]

    def request(self, limit: int | None) -> tuple[str, dict[str, Any]]:
        if self.face in ("agents", "conversation") and not self.fresh.get(limit):
            raise RuntimeError(f"{self.name}: nothing fresh left for max_tokens {limit}")
        if self.face == "agents":
            turn = {"messages": [{"role": "user", "content": PROMPT}], "stream": True}
            return self.fresh[limit].pop(), turn
        if self.face in ("responses", "conversation"):
            body: dict[str, Any] = {"model": self.model, "input": PROMPT, "stream": True, "store": self.store}
            if self.face == "conversation":
                body["conversation"] = self.fresh[limit].pop()
            return "/v1/responses", body | ({"max_output_tokens": limit} if limit else {})
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return "/v1/chat/completions", body | ({"max_tokens": limit} if limit else {})

    def read(self, line: str) -> tuple[str, bool]:
        """One ``data`` frame but ``[DONE]``: its kind, and whether it is a piece of text."""
        event = orjson.loads(line[6:])
        if "error" in event or event.get("type") in ("error", "response.failed"):
            raise RuntimeError(f"{self.name}: {line[:300]}")
        if self.face == "agents":
            payload = event["event"]["payload"]
            kind = payload["event_type"]
            return kind, kind == "step_progress" and payload["delta"]["type"] == "text"
        if self.face in ("responses", "conversation"):
            return event["type"], event["type"] == "response.output_text.delta"
        return "chunk", any((choice.get("delta") or {}).get("content") for choice in event["choices"])

    async def stream(self, tokens: int, limit: int | None = None) -> Stream:
        """One answer, read to its end and checked: ``limit`` (or ``tokens``) pieces of text, and the
        end a stream of its kind ends with."""
        path, body = self.request(limit)
        texts: list[float] = []
        events, last, ended = 0, "", 0.0
        started = time.perf_counter()
        async with self.client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(
                    f"{self.name}: HTTP {response.status_code}: {(await response.aread())[:300]!r}"
                )
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                if line == "data: [DONE]":
                    last = "[DONE]"
                    continue
                last, text = self.read(line)
                events, ended = events + 1, now
                if text:
                    texts.append(now)
        if last not in ENDS[self.face]:
            raise RuntimeError(f"{self.name}: the stream ended with {last or 'nothing'}")
        if len(texts) != (limit or tokens):
            raise RuntimeError(f"{self.name}: {len(texts)} pieces of text, not {limit or tokens}")
        return Stream(started, texts, events, ended)


@dataclass
class Concurrent:
    """The rounds of ``--streams`` concurrent streams on one route."""

    streams: list[Stream] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    wall: float = 0.0

    def gaps_ms(self) -> list[float]:
        return [gap for stream in self.streams for gap in stream.gaps_ms()]


async def concurrently(route: Route, count: int, tokens: int, into: Concurrent) -> None:
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(route.stream(tokens) for _ in range(count)), return_exceptions=True)
    into.wall += time.perf_counter() - started
    for outcome in outcomes:
        if isinstance(outcome, Stream):
            into.streams.append(outcome)
        else:
            into.failures.append(outcome)


def each_route(
    routes: list[Route], phase: str, step: Callable[[Route], Awaitable[Any]]
) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    """``step`` on each route, for ``alternate``, in a CPU phase named ``<phase> <route>``."""
    return [(f"{phase} {route.name}", partial(step, route)) for route in routes]


@dataclass
class Results:
    ttft: dict[str, list[float]] = field(default_factory=dict)
    single: dict[str, list[Stream]] = field(default_factory=dict)
    concurrent: dict[str, Concurrent] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    rss_peak: int = 0
    load: dict[str, str] = field(default_factory=dict)
    cpu: CpuMeter = field(default_factory=CpuMeter)


async def bench(args: argparse.Namespace, work: Path, res: Results) -> None:
    cpu = res.cpu
    res.load["start"] = loadavg()
    upstream = Upstream(work, args.tokens)
    upstream.start()
    router = Server(work / "router", work / "router.log", router_settings(upstream.url, args.streams))
    try:
        router.start()
        assert upstream.proc is not None and router.proc is not None
        cpu.upstream_pid, pid = upstream.proc.pid, router.proc.pid
        cpu.server_pid = pid
        limits = httpx.Limits(max_connections=args.streams + 8, max_keepalive_connections=args.streams + 8)
        async with (
            httpx.AsyncClient(base_url=upstream.url, timeout=300, limits=limits) as direct,
            httpx.AsyncClient(base_url=router.url, timeout=300, limits=limits) as routed,
        ):
            routes = [
                Route("direct", direct, MODEL),
                Route("chat", routed, f"{PROVIDER}/{MODEL}"),
                Route("responses", routed, f"{PROVIDER}/{MODEL}", face="responses", store=not args.no_store),
                Route("conversation", routed, f"{PROVIDER}/{MODEL}", face="conversation"),
                Route("agents", routed, f"{PROVIDER}/{MODEL}", face="agents"),
            ]
            whole = WARM_UP + args.runs + args.streams * args.rounds
            log(f"agents and conversation: {whole + args.ttft_runs} sessions and conversations")
            for route in routes:
                await route.prepare(args.ttft_runs, limit=1)
                await route.prepare(whole)
            log(f"warming up: {WARM_UP} requests on each path")
            with cpu.phase("warm-up"):
                for route in routes:
                    for _ in range(WARM_UP):
                        await route.stream(args.tokens)
            res.rss["after the warm-up"] = vm_bytes(pid, "VmRSS")

            log(f"time to first token: {args.ttft_runs} one-token requests on each path")
            res.ttft = {route.name: [] for route in routes}
            for run in range(1, args.ttft_runs + 1):
                steps = each_route(routes, "ttft", lambda r: r.stream(args.tokens, limit=1))
                for route, stream in zip(routes, await alternate(run, steps, cpu), strict=True):
                    res.ttft[route.name].append(stream.ttft_ms)

            log(f"events/s: {args.runs} runs of one {args.tokens}-token stream on each path")
            res.single = {route.name: [] for route in routes}
            for run in range(1, args.runs + 1):
                steps = each_route(routes, "one stream", lambda r: r.stream(args.tokens))
                for route, stream in zip(routes, await alternate(run, steps, cpu), strict=True):
                    res.single[route.name].append(stream)

            res.concurrent = {route.name: Concurrent() for route in routes}
            res.rss["before the concurrent streams"] = vm_bytes(pid, "VmRSS")
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from here on
            for run in range(1, args.rounds + 1):
                log(
                    f"round {run}/{args.rounds}: {args.streams} concurrent {args.tokens}-token streams a path"
                )
                steps = each_route(
                    routes,
                    f"{args.streams} streams",
                    lambda r: concurrently(r, args.streams, args.tokens, res.concurrent[r.name]),
                )
                await alternate(run, steps, cpu)
                res.rss[f"after round {run}"] = vm_bytes(pid, "VmRSS")
            res.rss_peak = vm_bytes(pid, "VmHWM")
        res.load["end"] = loadavg()
    finally:
        router.stop()
        upstream.stop()


def _router_us(res: Results, phase: str, units: int) -> float:
    """The router's CPU per unit of work (a piece of text, a request) in a phase, in µs."""
    record = res.cpu.phases.get(phase)
    return record.server * 1e6 / units if record and units else float("nan")


def report(args: argparse.Namespace, res: Results) -> int:
    """Prints the figures and the targets; the number of targets not met."""
    missed = 0
    direct = res.ttft["direct"]
    print(f"1. Time to first token, {len(direct)} one-token streamed requests on each path")
    rows = [["direct", f"{pct(direct, 50):.2f}", f"{pct(direct, 99):.2f}", f"{min(direct):.2f}", *[""] * 5]]
    added = {}
    for name in ("chat", "responses", "conversation", "agents"):
        through = res.ttft[name]
        paired = [r - d for r, d in zip(through, direct, strict=True)]
        added[name] = pct(through, 50) - pct(direct, 50)
        rows.append(
            [
                name,
                f"{pct(through, 50):.2f}",
                f"{pct(through, 99):.2f}",
                f"{min(through):.2f}",
                f"{added[name]:+.2f}",
                f"{pct(through, 99) - pct(direct, 99):+.2f}",
                f"{med(paired):+.2f}",
                f"{min(through) - min(direct):+.2f}",
                f"{_router_us(res, f'ttft {name}', len(through)) / 1000:.2f}",
            ]
        )
    headers = ["path", "p50 ms", "p99 ms", "min ms", "added p50", "added p99", "paired median", "minima"]
    print(table([*headers, "router CPU ms"], rows))
    print("   router CPU ms: the router's CPU per request (clock ticks of 10 ms, summed over the phase)")
    ok = added["responses"] <= TARGETS["ttft_added_ms"]
    missed += not ok
    print(
        f"   target responses added p50 <= {TARGETS['ttft_added_ms']:.0f} ms: {added['responses']:.2f} ms "
        f"{verdict(ok)} (chat completions: {added['chat']:.2f} ms)"
    )
    within = TARGETS["agents_within"]
    ok = added["agents"] <= added["responses"] * (1 + within)
    missed += not ok
    print(
        f"   target agents added p50 <= {1 + within:.1f}x responses': {added['agents']:.2f} ms against "
        f"{added['responses']:.2f} ms {verdict(ok)}"
    )
    print(
        f"   agents against responses in a conversation (both read and append a history): "
        f"{added['agents'] / added['conversation']:.2f}x ({added['conversation']:.2f} ms)\n"
    )

    print(f"2. One client, one stream of {args.tokens} tokens at a time, {args.runs} runs on each path")
    rows = []
    for name, streams in res.single.items():
        events_s = med([s.events_s for s in streams])
        tokens = sum(len(s.texts) for s in streams)
        router = f"{_router_us(res, f'one stream {name}', tokens):.0f}" if name != "direct" else ""
        rows.append(
            [
                name,
                f"{streams[0].events}",
                " ".join(f"{s.events_s:.0f}" for s in streams),
                f"{events_s:.0f}",
                f"{med([s.tokens_s for s in streams]):.0f}",
                f"{med([s.tokens_s for s in streams]) / med([s.tokens_s for s in res.single['direct']]):.2f}",
                router,
            ]
        )
    headers = ["path", "events", "events/s each run", "median", "tokens/s", "over direct", "router µs/token"]
    print(table(headers, rows))
    print(
        "   events: SSE data frames but [DONE] (a response and a turn have their lifecycle events besides "
        "the deltas); router µs/token: the router's CPU over the pieces of text it sent"
    )
    events_s = {
        name: med([s.events_s for s in res.single[name]]) for name in ("responses", "conversation", "agents")
    }
    ok = events_s["agents"] >= events_s["responses"] * (1 - within)
    missed += not ok
    print(
        f"   target agents events/s >= {1 - within:.1f}x responses': {events_s['agents']:.0f} against "
        f"{events_s['responses']:.0f} ({events_s['agents'] / events_s['responses']:.2f}x) {verdict(ok)}"
    )
    stateful = events_s["agents"] / events_s["conversation"]
    print(f"   agents against responses in a conversation: {stateful:.2f}x\n")

    print(
        f"3. {args.streams} concurrent streams of {args.tokens} tokens on each path, {args.rounds} round(s)"
    )
    gaps = {name: run.gaps_ms() for name, run in res.concurrent.items()}
    rows = []
    for name, run in res.concurrent.items():
        tokens = sum(len(s.texts) for s in run.streams)
        direct_gaps, own = gaps["direct"], gaps[name]
        routed = name != "direct"
        rows.append(
            [
                name,
                f"{len(run.streams)}/{len(run.failures)}",
                f"{tokens / run.wall:.0f}" if run.wall else "",
                f"{pct([s.ttft_ms for s in run.streams], 50):.0f}",
                f"{pct(own, 50):.2f}",
                f"{pct(own, 99):.2f}",
                f"{max(own, default=float('nan')):.1f}",
                f"{pct(own, 50) - pct(direct_gaps, 50):+.2f}" if routed else "",
                f"{pct(own, 99) - pct(direct_gaps, 99):+.2f}" if routed else "",
                f"{_router_us(res, f'{args.streams} streams {name}', tokens):.0f}" if routed else "",
            ]
        )
    headers = ["path", "ok/failed", "tokens/s", "TTFT p50 ms", "gap p50 ms", "gap p99 ms", "max ms"]
    print(table([*headers, "added p50", "added p99", "router µs/token"], rows))
    print("   gap: the delay between two pieces of text of one stream at the client, over every stream")
    for name, run in res.concurrent.items():
        for failure in run.failures[:5]:
            print(f"   {name} failure: {failure!r}")
    print(table(["router RSS", "MiB"], [[k, f"{v / MiB:.1f}"] for k, v in res.rss.items()]))
    print(f"   peak over the rounds (VmHWM): {res.rss_peak / MiB:.1f} MiB")
    failures = sum(len(run.failures) for run in res.concurrent.values())
    gap_added = pct(gaps["responses"], 99) - pct(gaps["direct"], 99)
    growth = (res.rss[f"after round {args.rounds}"] - res.rss["before the concurrent streams"]) / MiB
    ok_errors = not res.concurrent["responses"].failures
    ok_gap = gap_added <= TARGETS["gap_p99_added_ms"]
    ok_rss = growth <= TARGETS["rss_mib"]
    missed += (not ok_errors) + (not ok_gap) + (not ok_rss)
    print(f"   target no errors (responses): {verdict(ok_errors)} ({failures} failed streams on all paths)")
    chat_added = pct(gaps["chat"], 99) - pct(gaps["direct"], 99)
    print(
        f"   target responses added gap p99 <= {TARGETS['gap_p99_added_ms']:.0f} ms: {gap_added:+.2f} ms "
        f"{verdict(ok_gap)} (chat completions: {chat_added:+.2f} ms)"
    )
    print(
        f"   target router RSS flat (<= {TARGETS['rss_mib']} MiB from before the first round to after the "
        f"last): {growth:+.1f} MiB {verdict(ok_rss)}\n"
    )

    print("4. Where the CPU went (cores: CPU seconds over wall seconds; others: every other process)")
    print(res.cpu.report(server="router"))
    print(
        f"   load average 1/5/15 min: {res.load.get('start')} at the start, {res.load.get('end')} at the end"
    )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ttft-runs", type=int, default=200, help="one-token requests a path (default 200)")
    parser.add_argument("--runs", type=int, default=5, help="single streams a path in measure 2 (default 5)")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per answer (default 256)")
    parser.add_argument("--streams", type=int, default=256, help="concurrent streams (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of concurrent streams (default 3)")
    parser.add_argument("--no-store", action="store_true", help="responses with store false")
    args = parser.parse_args()
    res = Results()
    settings = f"tokens {args.tokens}, streams {args.streams}, store {not args.no_store}"
    return run_bench(
        "responses-bench", settings, lambda work: bench(args, work, res), lambda: report(args, res)
    )


if __name__ == "__main__":
    sys.exit(main())
