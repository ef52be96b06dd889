"""Server-sent events: the one response that streams a face's events, whatever the face.

A face gives an async iterator of its events (the producer), ``render`` (event → one frame, built with
``frame`` or ``DONE``) and ``render_error`` (exception → the face's in-band error frame). Invariants:

- The first event is pulled before ``http.response.start``. An exception before it propagates, so the
  error handlers answer with a status code and the family's envelope. Keep-alives start after the first
  frame, so a producer should yield its first event promptly (``response.created``).
- The producer is iterated, and closed, in one task of its own (its cancel scopes and context never change
  task). It hands its frames to the socket through ``_Frames``: the frames rendered while the socket was
  busy go out together, in one write (a model server's read often brings many tokens at once), and it
  waits while ``MAX_AHEAD_BYTES`` are pending, so memory is bounded and a slow client slows it down.
- While the producer yields nothing for ``keepalive_seconds``, a ``: keep-alive`` comment line goes out.
  The producer's pending step is neither cancelled nor restarted.
- The client leaving (``http.disconnect``, or a send that fails) cancels the producer's task: its
  pending await gets ``CancelledError`` and its ``finally`` blocks run.
- However the response ends (last event, failure, client gone, the response itself cancelled), the
  producer is closed (``aclose``) before the response returns, waiting at most ``close_seconds``.
- An exception after the first frame becomes one ``render_error`` frame, then the stream ends cleanly.

``render`` runs on the event loop for every event: it must be cheap (orjson is). Blocking work belongs
in the producer, off the loop."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

__all__ = ["DONE", "KEEPALIVE", "EventStreamResponse", "frame"]

log = logging.getLogger("cairn.api")

E = TypeVar("E")

DONE = b"data: [DONE]\n\n"
"""The frame that ends an OpenAI chat completions stream."""
KEEPALIVE = b": keep-alive\n"
"""A comment line and no blank line after it: a blank line after an ``id:`` makes some clients (the
``openai`` package's decoder) dispatch an empty event."""


def frame(data: Any, *, event: str | None = None, id: str | None = None) -> bytes:
    """One SSE frame: ``event:`` and ``id:`` lines when given, then ``data:`` as one line of JSON (JSON
    escapes line breaks, so the data never needs splitting)."""
    head = b""
    if event is not None:
        head += b"event: " + _field(event) + b"\n"
    if id is not None:
        head += b"id: " + _field(id) + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _field(value: str) -> bytes:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"An SSE field may not contain a line break or NUL: {value!r}")
    return value.encode()


class _Signal(enum.Enum):
    END = "end"  # the producer is exhausted
    LEFT = "left"  # the client went away


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


_Item = bytes | _Failed | _Signal
MAX_AHEAD_BYTES = 64 << 10


class _Frames:
    """The frames the producer rendered and the socket has not taken yet, joined, then its last item
    (``END`` or a failure). ``get`` takes all that is pending at once; ``put`` waits while ``limit``
    bytes are pending."""

    def __init__(self, limit: int = MAX_AHEAD_BYTES) -> None:
        self._limit = limit
        self._pending = bytearray()
        self._last: _Failed | _Signal | None = None
        self._added = asyncio.Event()
        self._taken = asyncio.Event()

    async def put(self, frame: bytes) -> None:
        while len(self._pending) >= self._limit:
            self._taken.clear()
            await self._taken.wait()
        self._pending += frame
        self._added.set()

    def end(self, last: _Failed | _Signal) -> None:
        self._last = last
        self._added.set()

    async def get(self) -> _Item:
        """What is pending, else the last item; cancelled while it waits, it has taken nothing."""
        while not self._pending and self._last is None:
            self._added.clear()
            await self._added.wait()
        if not self._pending:
            assert self._last is not None
            return self._last
        taken = bytes(self._pending)
        self._pending.clear()
        self._taken.set()
        return taken


class EventStreamResponse(Response):
    """Not generic as a class, so a route may be annotated ``-> EventStreamResponse`` (FastAPI reads the
    annotation); ``__init__`` ties the producer's event type to the renderer's."""

    media_type = "text/event-stream"
    close_seconds = 5.0

    def __init__(
        self,
        producer: AsyncIterator[E],
        render: Callable[[E], bytes],
        *,
        render_error: Callable[[Exception], bytes],
        keepalive_seconds: float = 15.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.producer: AsyncIterator[Any] = producer
        self.render_event: Callable[[Any], bytes] = render
        self.render_error = render_error
        self.keepalive_seconds = keepalive_seconds
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        frames = _Frames()
        pump = asyncio.create_task(self._pump(frames))
        left = asyncio.create_task(_client_left(receive))
        try:
            if not await self._stream(frames, left, send):
                log.info("sse.client_left path=%s", scope.get("path"))
        finally:
            left.cancel()
            await self._stop(pump)

    async def _stream(self, frames: _Frames, left: asyncio.Task[None], send: Send) -> bool:
        """Send the stream; False when the client left before its end."""
        item = await self._next(frames, left, send, keepalive=None)  # no keep-alive before the head
        if isinstance(item, _Failed):
            raise item.error
        if item is _Signal.LEFT:
            return False
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        while isinstance(item, bytes):
            if not await _body(send, item):
                return False
            item = await self._next(frames, left, send, keepalive=self.keepalive_seconds)
        if item is _Signal.LEFT:
            return False
        if isinstance(item, _Failed):
            log.warning("sse.failed error=%s", type(item.error).__name__, exc_info=item.error)
            if not await _body(send, self.render_error(item.error)):
                return False
        return await _body(send, b"", more=False)

    async def _next(
        self, frames: _Frames, left: asyncio.Task[None], send: Send, *, keepalive: float | None
    ) -> _Item:
        """The producer's next item, or LEFT; a keep-alive every ``keepalive`` seconds of waiting."""
        get = asyncio.ensure_future(frames.get())
        try:
            while True:
                await asyncio.wait((get, left), timeout=keepalive, return_when=asyncio.FIRST_COMPLETED)
                if left.done():
                    return _Signal.LEFT
                if get.done():
                    return get.result()
                if not await _body(send, KEEPALIVE):
                    return _Signal.LEFT
        finally:
            get.cancel()

    async def _pump(self, frames: _Frames) -> None:
        """Iterate the producer in this one task; it is closed before the last item (END or the
        failure) goes out, so once the stream has its last item the pump has nothing left to do."""
        try:
            try:
                async for event in self.producer:
                    await frames.put(self.render_event(event))
            finally:
                await _aclose(self.producer)
        except Exception as exc:
            frames.end(_Failed(exc))
        else:
            frames.end(_Signal.END)

    async def _stop(self, pump: asyncio.Task[None]) -> None:
        """Cancel the pump (its pending await gets CancelledError) and wait, at most ``close_seconds``,
        for the producer's ``finally`` blocks and ``aclose`` to run."""
        pump.cancel()
        await asyncio.wait((pump,), timeout=self.close_seconds)
        if not pump.done():
            log.warning("sse.producer_stuck seconds=%s", self.close_seconds)
        elif pump.cancelled():
            # A pump cancelled before its first step never reached its ``finally``; closing twice is a no-op.
            await _aclose(self.producer)


async def _client_left(receive: Receive) -> None:
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


async def _body(send: Send, chunk: bytes, *, more: bool = True) -> bool:
    """Send a piece of the body; False when the client is gone (ASGI 2.4 servers raise OSError)."""
    try:
        await send({"type": "http.response.body", "body": chunk, "more_body": more})
    except OSError:
        return False
    return True


async def _aclose(producer: AsyncIterator[Any]) -> None:
    aclose = getattr(producer, "aclose", None)
    if aclose is not None:
        await aclose()
