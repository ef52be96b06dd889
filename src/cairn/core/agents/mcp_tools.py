"""A remote MCP server's tools as the agent loop runs them, for every face that offers them (the
Responses API's ``mcp`` tool, the Agents API's MCP tool groups): the server's listing, checked; a tool
as a chat-completions function; a call run on the server, its answer as the model reads it.

- A listing keeps at most ``MAX_TOOLS`` tools, of valid names (MCP's rule), each with a schema. A server
  that cannot list its tools is ``FailedDependency`` (424): ``Error retrieving tool list from MCP
  server: '<label>'. …``, as OpenAI answers.
- A call's answer is its text (a block without text by its type), cut at ``MAX_OUTPUT_CHARS`` with a
  note; the server's failure, or the tool's own (``is_error``), is an error the model reads, never an
  exception: ``details`` keep ``{"output", "error"}`` as an ``mcp_call`` item shows them.
- The headers a request gives for a server (credentials, often) are checked as HTTP headers, never
  shown in an error or a ``repr``, and never kept. ``McpHeaders`` are Llama Stack's ``mcp_headers``:
  headers by server URL, each set sent to the server of its URL only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse, urlsplit

from ..errors import FailedDependency, InvalidInput, McpServerError
from ..ports.inference import Json
from ..ports.mcp import McpAnswer, McpClient, McpServer
from .loop import ToolOutput, ToolRunner

MAX_TOOLS = 128  # of one server
MAX_OUTPUT_CHARS = 100_000
MAX_URL_CHARS = 2048
MAX_HEADERS = 32  # sent to one server
MAX_HEADER_CHARS = 8192
MAX_HEADER_SERVERS = 16  # in one request's ``McpHeaders``
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")  # MCP's rule for a tool's name
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")  # an HTTP token


def http_url(url: str) -> bool:
    """Whether ``url`` is one an MCP server may have: http or https, with a host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return len(url) <= MAX_URL_CHARS and parts.scheme in ("http", "https") and bool(parts.hostname)


def checked_headers(given: Any, param: str) -> dict[str, str]:
    """``given`` as headers to send a server: an object of at most ``MAX_HEADERS`` valid HTTP headers;
    else ``InvalidInput`` naming ``param``, and the header's name but never its value (a credential)."""
    if not isinstance(given, dict) or len(given) > MAX_HEADERS:
        raise InvalidInput(f"headers must be an object of at most {MAX_HEADERS} headers.", param=param)
    for name, value in given.items():
        if (
            not HEADER_NAME.match(name)
            or not isinstance(value, str)
            or len(value) > MAX_HEADER_CHARS
            or any(ch in value for ch in "\r\n\0")
        ):
            raise InvalidInput(f"The header `{name[:64]}` is not a valid HTTP header.", param=param)
    return dict(given)


@dataclass(frozen=True)
class McpHeaders:
    """Headers a request gives for MCP servers, by server URL (Llama Stack's ``mcp_headers``)."""

    by_url: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def checked(cls, given: Any, param: str) -> McpHeaders:
        """``given``: an object of at most ``MAX_HEADER_SERVERS`` URLs, each with its headers."""
        if given is None:
            return cls()
        if not isinstance(given, dict) or len(given) > MAX_HEADER_SERVERS:
            raise InvalidInput(
                f"mcp_headers must be an object of at most {MAX_HEADER_SERVERS} server URLs.", param=param
            )
        by_url = {}
        for url, headers in given.items():
            if not http_url(url):
                raise InvalidInput(
                    f"mcp_headers' keys must be http or https URLs of at most {MAX_URL_CHARS} characters.",
                    param=param,
                )
            by_url[url] = checked_headers(headers, param)
        return cls(by_url)

    def server(self, url: str) -> McpServer:
        """The server at ``url``, with the headers given for it: those of every URL of the same host
        (with its port) and path, as Llama Stack matches them (the scheme and the query aside)."""
        headers: dict[str, str] = {}
        for given, values in self.by_url.items():
            if _host_and_path(given) == _host_and_path(url):
                headers.update(values)
        return McpServer(url, headers)


NO_HEADERS = McpHeaders()


def _host_and_path(url: str) -> tuple[str, str]:
    parts = urlparse(url)
    return parts.netloc, parts.path


async def list_tools(client: McpClient, server: McpServer, label: str, param: str) -> list[Json]:
    """The server's tools, checked; ``FailedDependency`` naming ``label`` if it cannot list them."""
    try:
        listed = await client.list_tools(server, MAX_TOOLS)
    except McpServerError as exc:
        raise FailedDependency(
            f"Error retrieving tool list from MCP server: '{label}'. {exc.message}", param=param
        ) from None
    return checked_tools(listed)


def checked_tools(listed: Iterable[Any]) -> list[Json]:
    """The tools as a listing holds them: at most ``MAX_TOOLS``, of valid names, with a schema."""
    tools = []
    for tool in listed:
        if (
            not isinstance(tool, dict)
            or not isinstance(tool.get("name"), str)
            or not TOOL_NAME.match(tool["name"])
        ):
            continue
        schema = tool.get("input_schema")
        description = tool.get("description")
        annotations = tool.get("annotations")
        tools.append(
            {
                "name": tool["name"],
                "description": description if isinstance(description, str) else None,
                "input_schema": schema if isinstance(schema, dict) else {"type": "object"},
                "annotations": annotations if isinstance(annotations, dict) else None,
            }
        )
    return tools[:MAX_TOOLS]


def function(tool: Json) -> Json:
    """A listed tool as the model sees it."""
    described: Json = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool["description"]:
        described["description"] = tool["description"]
    return {"type": "function", "function": described}


def tool_runner(client: McpClient, server: McpServer, name: str) -> ToolRunner:
    async def run(arguments: Json) -> ToolOutput:
        try:
            answer = await client.call_tool(server, name, arguments)
        except McpServerError as exc:
            return ToolOutput("", details={"output": None, "error": exc.error}, error=exc.message)
        return output(answer)

    return run


def output(answer: McpAnswer) -> ToolOutput:
    text = _cut(text_of(answer.content))
    if answer.is_error:
        error = {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": text}]}
        return ToolOutput("", details={"output": None, "error": error}, error=text or "The tool failed.")
    return ToolOutput(text, details={"output": text, "error": None})


def text_of(content: list[Json]) -> str:
    """The text of MCP content blocks; a block without text (an image, …) by its type."""
    parts = []
    for block in content:
        if block.get("type") == "text":
            parts.append(str(block.get("text") or ""))
        elif isinstance((block.get("resource") or {}).get("text"), str):
            parts.append(block["resource"]["text"])
        else:
            parts.append(f"[{block.get('type', 'content')}]")
    return "\n".join(parts)


def _cut(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return f"{text[:MAX_OUTPUT_CHARS]}\n[The output was cut at {MAX_OUTPUT_CHARS:,} characters.]"
