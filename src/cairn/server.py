"""How Cairn is served: uvicorn with httptools and uvloop, behind a bounded request head.

httptools accepts a head of any size and joins a header's pieces by repeated concatenation, so one
200 MiB header costs minutes of event-loop time. ``BoundedHttpToolsProtocol`` answers before the parser
does work proportional to the input: a head over ``HeadLimits.total_bytes``, a header over ``line_bytes``
or more than ``count`` headers → 431; a head still incomplete ``timeout`` seconds after the connection
opened (or after its request began) → 408; both in plain text, closing the connection. A response sent
before a body of over ``DISCARD_BYTES`` was read (401, 413, …) closes the connection too, rather than
reading the rest only to drop it. And the application gets the body bytes that arrived before the client
went away (uvicorn drops them).
docs/decisions.md D20 says why this is a subclass of uvicorn's protocol rather than another server.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors import Multiprocess

from .settings import Settings

KiB = 1 << 10
DISCARD_BYTES = 1 << 20
"""A body answered before it was read is read and dropped to keep the connection if it is this small."""


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """nginx's default buffers for a head (4 x 8 KiB) and hyper's header count."""

    timeout: float
    total_bytes: int = 32 * KiB
    line_bytes: int = 8 * KiB
    count: int = 100


class _HeadRefused(Exception):
    pass


class _Cycle(RequestResponseCycle):
    async def receive(self) -> Any:
        """Body bytes that arrived before the disconnect come first: an interrupted upload keeps them."""
        if self.disconnected and self.body and not self.response_complete:
            body, self.body = bytes(self.body), bytearray()
            return {"type": "http.request", "body": body, "more_body": self.more_body}
        return await super().receive()

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and self.more_body and not self._rest_is_small():
            self.keep_alive = False  # answered before a large body was read: close rather than read it all
        await super().send(message)

    def _rest_is_small(self) -> bool:
        length = dict(self.scope["headers"]).get(b"content-length", b"")
        return length.isdigit() and int(length) <= DISCARD_BYTES


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, head_limits: HeadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = head_limits
        self._in_head = True
        self._head_bytes = 0
        self._message_completed = False
        self._head_refused: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            super().data_received(data)
        elif self._head_bytes + len(data) <= self._limits.total_bytes:
            self._feed_head(data)
        else:
            # The parser never sees more of a head than is left of its budget, plus the byte that ends it.
            view = memoryview(data)
            while view and self._in_head and not self.transport.is_closing():
                room = self._limits.total_bytes - self._head_bytes + 1
                piece, view = view[:room], view[room:]
                self._feed_head(piece)  # type: ignore[arg-type]
            if view and not self.transport.is_closing():
                super().data_received(view)  # type: ignore[arg-type]

    def _feed_head(self, data: bytes) -> None:
        self._message_completed = False
        super().data_received(data)
        if not self._in_head or self._message_completed:
            # The head came whole. Bytes of the next request that shared this read are not counted, so a
            # head can pass the limit by one read before it is refused, but no further.
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._limits.total_bytes:
            self._answer_and_close(
                431, f"The request head is larger than {self._limits.total_bytes:,} bytes."
            )
        else:
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._in_head = False
        limits = self._limits
        if len(self.headers) > limits.count:
            self._head_refused = f"A request may have at most {limits.count} headers."
        elif any(len(name) + len(value) > limits.line_bytes for name, value in self.headers):
            self._head_refused = f"A request header is larger than {limits.line_bytes:,} bytes."
        if self._head_refused:
            raise _HeadRefused  # the parser stops; uvicorn answers through send_400_response
        super().on_headers_complete()
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = _Cycle  # uvicorn builds its cycle itself; only receive and send differ

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._message_completed = True

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(*((431, self._head_refused) if self._head_refused else (400, msg)))

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._limits.timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_bytes:
            self._answer_and_close(
                408, f"The request head did not arrive within {self._limits.timeout:g} seconds."
            )
        else:
            self.transport.close()  # a connection that never sent a byte

    def _answer_and_close(self, status: int, message: str) -> None:
        body = message.encode()
        self.transport.write(
            STATUS_LINE[status]
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The server as Cairn runs it, in `cairn serve` and in the tests alike."""
    return uvicorn.Config(
        app,
        **{
            "host": settings.server.host,
            "port": settings.server.port,
            "loop": "uvloop",
            "http": functools.partial(
                BoundedHttpToolsProtocol, head_limits=HeadLimits(timeout=settings.limits.idle_timeout)
            ),
            "ws": "websockets-sansio",  # the Responses API's WebSocket mode
            "ws_max_size": settings.limits.max_json_bytes,
            "lifespan": "on",
            "proxy_headers": False,  # forwarded headers are the app's to judge (server.trusted_proxies)
            "server_header": False,
            "timeout_keep_alive": settings.limits.keepalive_timeout,
            "timeout_graceful_shutdown": 30,
            **options,
        },
    )


def serve(settings: Settings) -> None:
    """Bind first, then start the app: `ready` is logged only once the socket listens, and a port in use
    fails before anything starts."""
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["cairn"] = {
        "handlers": ["default"],
        "level": settings.server.log_level.upper(),
        "propagate": False,
    }
    config = uvicorn_config(
        "cairn.app:app_from_env",
        settings,
        factory=True,
        workers=settings.server.workers,
        log_config=log_config,
        log_level=settings.server.log_level,
        access_log=settings.server.access_log,
    )
    socket = config.bind_socket()
    socket.listen(config.backlog)  # connections wait in the backlog while the app starts
    if config.workers > 1:
        Multiprocess(config, sockets=[socket]).run()
    else:
        uvicorn.Server(config).run(sockets=[socket])
