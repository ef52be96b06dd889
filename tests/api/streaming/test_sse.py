"""The SSE response under a real uvicorn server (Cairn's own protocol and config), read by real SSE
clients: httpx's line reader and the ``openai`` package's decoder. The app is a tiny FastAPI app with
Cairn's error handlers whose producers report, through a ``Probe``, what happened to them."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from _support import assert_openai_error
from fastapi import FastAPI
from openai._streaming import SSEDecoder
from starlette.types import Message

from cairn.api.errors import install_error_handlers
from cairn.api.sse import DONE, EventStreamResponse, frame
from cairn.core.errors import NotFound
from cairn.server import uvicorn_config
from cairn.settings import Settings

KEEPALIVE_SECONDS = 0.2
PAD = "x" * 65_536


@dataclass
class Probe:
    """What a producer saw, written on the server's thread and read on the test's."""

    produced: int = 0
    tasks: set[int] = field(default_factory=set)  # the tasks its code ran in, closing included
    step_cancelled: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)


PROBES: dict[str, Probe] = {}


def render(event: dict[str, Any]) -> bytes:
    if event["type"] == "done":
        return DONE
    return frame(event, event=event["type"], id=str(event["n"]))


def render_error(exc: Exception) -> bytes:
    return frame(
        {"error": {"message": str(exc), "type": "server_error", "code": "stream_failed"}}, event="error"
    )


def delta(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "delta", "n": n, **extra}


async def counting(probe: Probe, n: int) -> AsyncIterator[dict[str, Any]]:
    try:
        for i in range(n):
            yield delta(i)
            probe.produced += 1
        yield {"type": "done"}
    finally:
        probe.closed.set()


async def pausing(probe: Probe) -> AsyncIterator[dict[str, Any]]:
    """One event, a silence of several keep-alive periods in one await, then the rest."""
    try:
        yield delta(0)
        try:
            await asyncio.sleep(4 * KEEPALIVE_SECONDS)
        except asyncio.CancelledError:
            probe.step_cancelled.set()
            raise
        yield delta(1)
        yield {"type": "done"}
    finally:
        probe.closed.set()


async def hanging(probe: Probe, first: bool) -> AsyncIterator[dict[str, Any]]:
    try:
        if first:
            yield delta(0)
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends this
        except asyncio.CancelledError:
            probe.step_cancelled.set()
            raise
        yield delta(1)
    finally:
        await asyncio.sleep(0)  # a finally block that awaits still runs to its end
        probe.closed.set()


async def failing(probe: Probe, after: int, error: Exception) -> AsyncIterator[dict[str, Any]]:
    try:
        for i in range(after):
            yield delta(i)
        raise error
    finally:
        probe.closed.set()


async def flooding(probe: Probe) -> AsyncIterator[dict[str, Any]]:
    """64 KiB events as fast as they are taken, 1,000 of them (64 MiB) unless something holds it back."""
    try:
        for i in range(1000):
            probe.tasks.add(id(asyncio.current_task()))
            probe.produced += 1
            yield delta(i, pad=PAD)
    finally:
        probe.tasks.add(id(asyncio.current_task()))
        probe.closed.set()


def sse_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    def stream(producer: AsyncIterator[dict[str, Any]]) -> EventStreamResponse:
        return EventStreamResponse(
            producer, render, render_error=render_error, keepalive_seconds=KEEPALIVE_SECONDS
        )

    @app.get("/count")
    async def count(probe: str, n: int) -> EventStreamResponse:
        return stream(counting(PROBES[probe], n))

    @app.get("/pause")
    async def pause(probe: str) -> EventStreamResponse:
        return stream(pausing(PROBES[probe]))

    @app.get("/hang")
    async def hang(probe: str, first: bool) -> EventStreamResponse:
        return stream(hanging(PROBES[probe], first))

    @app.get("/fail")
    async def fail(probe: str, after: int, kind: str) -> EventStreamResponse:
        error = NotFound("No such stream.") if kind == "not_found" else RuntimeError("the model broke")
        return stream(failing(PROBES[probe], after, error))

    @app.get("/flood")
    async def flood(probe: str) -> EventStreamResponse:
        return stream(flooding(PROBES[probe]))

    return app


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("sse"))
    config = uvicorn_config(
        sse_app(), settings, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the SSE test server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        yield client


def new_probe() -> tuple[str, Probe]:
    token = secrets.token_hex(4)
    PROBES[token] = Probe()
    return token, PROBES[token]


def read_frames(lines: Iterator[str]) -> Iterator[list[str]]:
    """The raw lines of each frame, comment lines as frames of their own, until the body ends."""
    pending: list[str] = []
    for line in lines:
        if line.startswith(":"):
            yield [line]
        elif line:
            pending.append(line)
        elif pending:
            yield pending
            pending = []
    assert not pending, f"the stream ended inside a frame: {pending}"


def test_sse_events_arrive_in_order_with_headers(http: httpx.Client) -> None:
    token, probe = new_probe()
    with http.stream("GET", "/count", params={"probe": token, "n": 50}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        frames = list(read_frames(response.iter_lines()))
    expected = [["event: delta", f"id: {i}", f'data: {{"type":"delta","n":{i}}}'] for i in range(50)]
    assert frames == [*expected, ["data: [DONE]"]]
    assert probe.produced == 50 and probe.closed.is_set()


def test_sse_events_parse_with_the_openai_decoder(http: httpx.Client) -> None:
    token, _ = new_probe()
    with http.stream("GET", "/count", params={"probe": token, "n": 20}) as response:
        events = list(SSEDecoder().iter_bytes(response.iter_bytes()))
    assert [(e.event, e.id, e.json()) for e in events[:-1]] == [
        ("delta", str(i), {"type": "delta", "n": i}) for i in range(20)
    ]
    assert events[-1].data == "[DONE]"


def test_sse_keepalive_while_producer_waits_without_cancelling_its_step(http: httpx.Client) -> None:
    token, probe = new_probe()
    with http.stream("GET", "/pause", params={"probe": token}) as response:
        frames = list(read_frames(response.iter_lines()))
    kinds = [next((line for line in lines if line.startswith((":", "id:"))), lines[-1]) for lines in frames]
    assert kinds[0] == "id: 0" and kinds[-2:] == ["id: 1", "data: [DONE]"], kinds
    keepalives = kinds[1:-2]
    assert set(keepalives) == {": keep-alive"} and 2 <= len(keepalives) <= 5, kinds
    assert not probe.step_cancelled.is_set()  # the sleep ran its whole length through the keep-alives
    assert probe.closed.is_set()


def test_sse_keepalive_is_invisible_to_the_openai_decoder(http: httpx.Client) -> None:
    """After an ``id:``, a blank line would make this decoder dispatch an empty event: there is none."""
    token, _ = new_probe()
    with http.stream("GET", "/pause", params={"probe": token}) as response:
        events = list(SSEDecoder().iter_bytes(response.iter_bytes()))
    assert [e.data for e in events] == ['{"type":"delta","n":0}', '{"type":"delta","n":1}', "[DONE]"]


def test_sse_client_disconnect_cancels_the_producer(http: httpx.Client) -> None:
    token, probe = new_probe()
    with http.stream("GET", "/hang", params={"probe": token, "first": True}) as response:
        lines = response.iter_lines()
        assert next(read_frames(lines))[1] == "id: 0"
        assert not probe.step_cancelled.wait(KEEPALIVE_SECONDS)  # still waiting while we listen
    left = time.monotonic()  # leaving the block closed the connection mid-body
    assert probe.step_cancelled.wait(2), "the producer's pending await was never cancelled"
    assert probe.closed.wait(2), "the producer's finally did not run"
    assert time.monotonic() - left < 1


def test_sse_client_disconnect_before_first_event_cancels_the_producer(base_url: str) -> None:
    token, probe = new_probe()
    with (
        httpx.Client(base_url=base_url, timeout=KEEPALIVE_SECONDS) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get("/hang", params={"probe": token, "first": False})  # no head before the first event
    assert probe.step_cancelled.wait(2), "the producer's pending await was never cancelled"
    assert probe.closed.wait(2), "the producer's finally did not run"


@pytest.mark.parametrize("kind", ["not_found", "runtime"])
def test_sse_failure_after_first_event_is_one_error_frame_then_a_clean_end(
    http: httpx.Client, kind: str
) -> None:
    token, probe = new_probe()
    with http.stream("GET", "/fail", params={"probe": token, "after": 2, "kind": kind}) as response:
        assert response.status_code == 200
        frames = list(read_frames(response.iter_lines()))  # a cut connection would raise here
    assert [lines[1] for lines in frames[:2]] == ["id: 0", "id: 1"]
    message = "No such stream." if kind == "not_found" else "the model broke"
    error = f'data: {{"error":{{"message":"{message}","type":"server_error","code":"stream_failed"}}}}'
    assert frames[2:] == [["event: error", error]]
    assert probe.closed.is_set()
    assert http.get("/count", params={"probe": new_probe()[0], "n": 1}).status_code == 200  # server fine


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("not_found", 404, "not_found"), ("runtime", 500, "internal_error")]
)
def test_sse_failure_before_first_event_is_a_normal_error_response(
    http: httpx.Client, kind: str, status: int, code: str
) -> None:
    token, probe = new_probe()
    response = http.get("/fail", params={"probe": token, "after": 0, "kind": kind})
    assert_openai_error(response, status, code=code)
    assert probe.closed.is_set()


def test_sse_slow_client_holds_the_producer_back(http: httpx.Client) -> None:
    token, probe = new_probe()
    with http.stream("GET", "/flood", params={"probe": token}) as response:
        assert response.status_code == 200
        time.sleep(0.5)  # read nothing: only socket buffers and the 64 KiB of frames ahead may fill
        held_at = probe.produced
        assert held_at < 500, f"the producer ran {held_at} events ahead of a client that reads nothing"
        assert not probe.closed.is_set()
    assert probe.closed.wait(2), "the producer was not closed when the client left"
    # closed by the task that iterated it (left to the garbage collector, a new task would close it)
    assert len(probe.tasks) == 1
    assert probe.produced < 500  # stopped, not drained


def test_sse_events_that_come_together_go_out_in_one_write() -> None:
    """Events a producer yields without waiting between them (the tokens of one read from a model
    server) are one body message, not one each; the bytes are the same."""
    sent: list[Message] = []

    async def burst() -> AsyncIterator[dict[str, Any]]:
        for i in range(50):
            yield delta(i)
        yield {"type": "done"}

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    response = EventStreamResponse(burst(), render, render_error=render_error)
    asyncio.run(response({"type": "http", "path": "/burst"}, receive, send))
    bodies = [message["body"] for message in sent if message["type"] == "http.response.body"]
    assert b"".join(bodies) == b"".join(render(delta(i)) for i in range(50)) + DONE
    assert len(bodies) <= 3, f"{len(bodies)} writes"  # the first event, the rest, the end
