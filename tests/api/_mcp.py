"""A real MCP server for the tests of Cairn's MCP tools: the ``mcp`` package's ``MCPServer`` (formerly
FastMCP) with three tools (``add``, ``echo``, ``broken``), serving streamable HTTP on a free port of
127.0.0.1, optionally behind a bearer token."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.responses import PlainTextResponse


def tools_server() -> MCPServer:
    server = MCPServer("calc")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @server.tool()
    def broken() -> str:
        """Always fails."""
        raise ToolError("the gears are stuck")

    return server


def bearer_only(app, token: str):
    """The MCP app, answering 401 to a request without the bearer token."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and (b"authorization", f"Bearer {token}".encode()) not in scope["headers"]:
            await PlainTextResponse("no token", status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


@contextlib.contextmanager
def serving(token: str | None = None) -> Iterator[str]:
    """The server's URL while it runs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = tools_server().streamable_http_app()
    server = uvicorn.Server(
        uvicorn.Config(app if token is None else bearer_only(app, token), log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the MCP server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def closed_url() -> str:
    """The URL of an MCP server that is not there (a port nothing listens on)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{closed.getsockname()[1]}/mcp"
