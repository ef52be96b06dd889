"""Remote MCP servers over streamable HTTP (``core.ports.mcp``), with the official ``mcp`` package's
client: one session per exchange (a listing, or a call), opened and closed within it.

Bounds: ``connect_seconds`` to reach the server, ``list_seconds`` / ``call_seconds`` for a whole
exchange (the session's opening and closing included), ``max_bytes`` for each HTTP answer (SSE streams
included), uncompressed (a compressed answer is refused, so that none can expand past the bound), and
``MAX_PAGES`` pages of a listing. Every failure is ``McpServerError``: an HTTP refusal keeps its status
(``http_error``), a JSON-RPC error its code (``mcp_protocol_error``), no answer in time is a 504 and no
way to the server a 502. The request's headers carry the client's credentials: they are never logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx2
from pydantic import BaseModel, ValidationError

from ..core.errors import McpServerError
from ..core.ports.inference import Json
from ..core.ports.mcp import McpAnswer, McpServer

if TYPE_CHECKING:
    from mcp import Client

log = logging.getLogger("cairn.mcp")

MAX_PAGES = 16
T = TypeVar("T")


class StreamableHttpMcp:
    def __init__(
        self,
        *,
        connect_seconds: float = 10.0,
        list_seconds: float = 30.0,
        call_seconds: float = 120.0,
        max_bytes: int = 8 << 20,
    ) -> None:
        self._connect_seconds = connect_seconds
        self._list_seconds = list_seconds
        self._call_seconds = call_seconds
        self._max_bytes = max_bytes

    async def list_tools(self, server: McpServer, limit: int) -> list[Json]:
        async def listing(client: Client) -> list[Json]:
            tools: list[Any] = []
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if cursor is None or len(tools) >= limit:
                    break
            return [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.input_schema,
                    "annotations": tool.annotations and _json(tool.annotations),
                }
                for tool in tools[:limit]
            ]

        return await self._exchange(server, self._list_seconds, listing)

    async def call_tool(self, server: McpServer, name: str, arguments: Json) -> McpAnswer:
        async def call(client: Client) -> McpAnswer:
            result = await client.call_tool(name, arguments)
            blocks = [_json(block) for block in result.content]
            return McpAnswer(blocks, bool(result.is_error))

        return await self._exchange(server, self._call_seconds, call)

    async def _exchange(self, server: McpServer, seconds: float, work: Callable[[Client], Awaitable[T]]) -> T:
        # the mcp package is imported at the first exchange: it is a third of the server's start-up time
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        transport = _Bounded(httpx2.AsyncHTTPTransport(), self._max_bytes)
        try:
            with anyio.fail_after(seconds):
                async with (
                    httpx2.AsyncClient(
                        headers={**server.headers, "Accept-Encoding": "identity"},
                        timeout=httpx2.Timeout(seconds, connect=self._connect_seconds),
                        transport=transport,
                    ) as http,
                    Client(
                        streamable_http_client(
                            server.url, http_client=http, max_sse_event_size=self._max_bytes
                        ),
                        read_timeout_seconds=seconds,
                        cache=None,
                    ) as client,
                ):
                    return await work(client)
        except TimeoutError:
            raise McpServerError(
                f"The MCP server did not answer within {seconds:g} seconds.", kind="http_error", status=504
            ) from None
        except Exception as exc:
            raise _failure(exc, transport) from None


def _json(model: BaseModel) -> Json:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _failure(exc: Exception, transport: _Bounded) -> McpServerError:
    """What went wrong, from the first of the (possibly grouped) exceptions and what the transport saw."""
    from mcp import MCPError

    while isinstance(exc, ExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if transport.refusal is not None:
        return McpServerError(transport.refusal, kind="http_error", status=502)
    status = transport.status or 0
    if isinstance(exc, MCPError) and status >= 400:  # the MCP client's stand-in for the HTTP error
        return McpServerError(f"The MCP server answered HTTP {status}.", kind="http_error", status=status)
    if isinstance(exc, MCPError):
        return McpServerError(exc.message[:1000], kind="mcp_protocol_error", status=exc.code)
    if isinstance(exc, httpx2.TimeoutException):
        return McpServerError("The MCP server did not answer in time.", kind="http_error", status=504)
    if isinstance(exc, httpx2.TransportError):
        return McpServerError(
            f"The MCP server cannot be reached: {type(exc).__name__}.", kind="http_error", status=502
        )
    if isinstance(exc, ValidationError):
        return McpServerError("The MCP server's answer is not MCP.", kind="mcp_protocol_error", status=-32603)
    log.warning("mcp.failed error=%s", type(exc).__name__)
    return McpServerError(f"The MCP exchange failed: {type(exc).__name__}.", kind="http_error", status=502)


class _Bounded(httpx2.AsyncBaseTransport):
    """The transport, with every answer cut at ``max_bytes`` (and a compressed one refused). It keeps
    what says best what went wrong: its first refusal, and the status of the last answer (the MCP client
    turns an HTTP error into a JSON-RPC one)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self.refusal: str | None = None
        self.status: int | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        self.status = response.status_code
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            await response.aclose()
            raise self._refuse("The MCP server sent a compressed answer; Cairn reads only identity.")
        if int(response.headers.get("content-length") or 0) > self._max_bytes:
            await response.aclose()
            raise self._refuse(f"The MCP server's answer is over {self._max_bytes:,} bytes.")
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Capped(response, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _refuse(self, message: str) -> httpx2.StreamError:
        self.refusal = self.refusal or message
        return httpx2.StreamError(message)


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response, transport: _Bounded) -> None:
        self._response = response
        self._transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = 0
        async for chunk in self._response.aiter_raw():
            read += len(chunk)
            if read > self._transport._max_bytes:
                raise self._transport._refuse(
                    f"The MCP server's answer is over {self._transport._max_bytes:,} bytes."
                )
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
