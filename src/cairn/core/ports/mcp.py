"""Remote MCP servers, which the Responses API's ``mcp`` tool reaches (``core.responses.mcp``):
list a server's tools, call one. Implemented over streamable HTTP with the official ``mcp`` package
(``adapters.mcp_http``), which bounds each exchange in time and in bytes.

Errors: ``McpServerError`` for anything the server, or the way to it, did wrong (unreachable, an HTTP
refusal, a JSON-RPC error, no answer in time, an answer too large or not MCP); never a bare exception
of the transport. A tool that ran and failed is an answer (``is_error``), not an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .inference import Json


@dataclass(frozen=True)
class McpServer:
    url: str  # http or https
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # credentials: never logged


@dataclass(frozen=True)
class McpAnswer:
    content: list[Json]  # the tool's content blocks, as MCP defines them ({"type": "text", "text"}, …)
    is_error: bool


class McpClient(Protocol):
    async def list_tools(self, server: McpServer, limit: int) -> list[Json]:
        """The server's first ``limit`` tools, each ``{"name", "description", "input_schema",
        "annotations"}`` (the last two as MCP gives them)."""

    async def call_tool(self, server: McpServer, name: str, arguments: Json) -> McpAnswer: ...
