"""The ``mcp`` tool of the Responses API: a remote MCP server's tools, offered to the model as functions
and run on the server (``core.ports.mcp``).

- A tool ``{"type": "mcp", "server_label", "server_url", "headers" | "authorization", "allowed_tools",
  "require_approval"}`` names a server (http or https; ``connector_id`` and ``tunnel_id`` are OpenAI's
  and refused). Its tools are listed once per chain: a listing already in the context (an
  ``mcp_list_tools`` item of the same ``server_label``, from ``previous_response_id``, the conversation
  or the input) is used again; otherwise the server lists them and the new item opens the response's
  output. A server that cannot list them fails the request: 424, as OpenAI answers.
- The listed tools that ``allowed_tools`` allows (names, or ``{"tool_names", "read_only"}``) are offered
  to the model under their own names; two tools of one name in a request are a 400.
- ``require_approval`` (``always``, the default, ``never``, or ``{"always": filter, "never": filter}``):
  a call that needs approval is not run: the response ends with an ``mcp_approval_request`` item, and a
  later request (in the same chain) answers it with an ``mcp_approval_response``. Approved, the call runs
  before the model's first step and shows as an ``mcp_call`` with its ``approval_request_id``; refused,
  the model reads that it was refused (``transcript``).
- A call shows as an ``mcp_call`` item: its ``arguments``, then its ``output`` or its ``error`` (the
  server's failure, or the tool's own: ``mcp_tool_execution_error``), which the model reads either way;
  an MCP server's failure never fails the response (``core.agents.mcp_tools``, shared with the Agents
  API: the listing checked, a call run, its output cut with a note).
- The headers and the token are credentials: they are never logged, and the response object shows the
  tool without them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..agents.loop import ServerTool, ToolCall, ToolOutput
from ..agents.mcp_tools import (
    MAX_TOOLS,
    MAX_URL_CHARS,
    checked_headers,
    checked_tools,
    function,
    http_url,
    list_tools,
    text_of,
    tool_runner,
)
from ..errors import InvalidInput
from ..ports.inference import Json
from ..ports.mcp import McpClient, McpServer
from .items import new_id
from .render import ToolFace

MAX_SERVERS = 8
LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECRETS = ("headers", "authorization")


@dataclass(frozen=True)
class McpSpec:
    """One ``mcp`` tool of a request, checked."""

    at: int  # its index in ``tools``
    label: str
    server: McpServer
    allowed: Any  # None (all), a list of names, or a filter object
    approval: Any  # "always", "never", or {"always": filter, "never": filter}


@dataclass
class McpTools:
    """What a request's ``mcp`` tools add to its run."""

    listings: list[Json] = field(default_factory=list)  # new mcp_list_tools items, opening the output
    functions: list[Json] = field(default_factory=list)  # tools whose calls wait for approval
    server_tools: dict[str, ServerTool] = field(default_factory=dict)  # tools that run when called
    faces: dict[str, ToolFace] = field(default_factory=dict)
    approved: list[tuple[ToolCall, ServerTool]] = field(default_factory=list)
    offered: dict[str, list[str]] = field(default_factory=dict)  # each server's tools, by label


async def mcp_tools(client: McpClient, tools: list[Json], history: list[Json], items: list[Json]) -> McpTools:
    """The request's ``mcp`` tools: listed (or their listing found in the context: ``history``, the
    chain's or the conversation's items, and ``items``, the input), offered, and the input's approvals
    taken."""
    context = history + items
    specs = [_spec(tool, at) for at, tool in enumerate(tools) if tool.get("type") == "mcp"]
    if len(specs) > MAX_SERVERS:
        raise InvalidInput(f"At most {MAX_SERVERS} MCP servers in one request.", param="tools")
    labels = [spec.label for spec in specs]
    if len(set(labels)) < len(labels):
        raise InvalidInput("Two mcp tools have one server_label.", param="tools")
    made = McpTools()
    runners: dict[tuple[str, str], ServerTool] = {}
    answered = _answered(items)
    for spec in specs:
        listing = _listing_in(context, spec.label)
        if listing is None:
            listing = await _list(client, spec)
            made.listings.append(listing)
        made.offered[spec.label] = []
        for tool in listing["tools"]:
            if not _allowed(tool, spec.allowed):
                continue
            name = tool["name"]
            if any(name in names for names in made.offered.values()):
                raise InvalidInput(f"Two tools are named `{name}`.", param="tools")
            made.offered[spec.label].append(name)
            runner = runners[spec.label, name] = ServerTool(
                name, function(tool), tool_runner(client, spec.server, name)
            )
            face = _call_face(spec.label, answered)
            if _needs_approval(tool, spec.approval):
                made.functions.append(runner.definition)
                made.faces[name] = replace(face, held=_request_face(spec.label))
            else:
                made.server_tools[name] = runner
                made.faces[name] = face
    made.approved = _approved(items, history, context, runners)
    return made


def mcp_tool_choice(choice: Json, tools: McpTools) -> str | Json:
    """``{"type": "mcp", "server_label", "name"}``: that tool, forced; without ``name``: any tool."""
    names = tools.offered.get(choice.get("server_label") or "")
    if names is None:
        raise InvalidInput(
            "tool_choice names an MCP server that no mcp tool names.", param="tool_choice.server_label"
        )
    name = choice.get("name")
    if name is None:
        return "required"
    if name not in names:
        raise InvalidInput(
            f"tool_choice names `{str(name)[:128]}`, not a tool of its server.", param="tool_choice.name"
        )
    return {"type": "function", "function": {"name": name}}


def shown_tools(tools: list[Json]) -> list[Json]:
    """The request's tools as the response object shows them: an ``mcp`` tool without its credentials."""
    return [
        {key: value for key, value in tool.items() if key not in SECRETS}
        if tool.get("type") == "mcp"
        else tool
        for tool in tools
    ]


def mcp_call_answer(item: Json) -> str:
    """What the model read of an ``mcp_call`` item: its output, or its error."""
    error = item.get("error")
    if not isinstance(error, dict):  # none, or a client's string
        return str(error or item.get("output") or "")
    if error.get("type") == "mcp_tool_execution_error":
        return text_of(error.get("content") or []) or "The tool failed."
    return str(error.get("message") or "The MCP server failed.")


# The spec


def _spec(tool: Json, at: int) -> McpSpec:
    param = f"tools[{at}]"
    label = tool.get("server_label")
    if not isinstance(label, str) or not LABEL.match(label):
        raise InvalidInput(
            "server_label must be 1 to 64 letters, digits, '_' or '-'.", param=f"{param}.server_label"
        )
    url = tool.get("server_url")
    if url is None:
        raise InvalidInput(
            "An mcp tool needs server_url: connectors and tunnels are not available on this server.",
            param=f"{param}.server_url",
        )
    if not isinstance(url, str) or not http_url(url):
        raise InvalidInput(
            f"server_url must be an http or https URL of at most {MAX_URL_CHARS} characters.",
            param=f"{param}.server_url",
        )
    return McpSpec(
        at=at,
        label=label,
        server=McpServer(url, _headers(tool, param)),
        allowed=_filter_or_names(tool.get("allowed_tools"), f"{param}.allowed_tools"),
        approval=_approval(tool.get("require_approval"), f"{param}.require_approval"),
    )


def _headers(tool: Json, param: str) -> dict[str, str]:
    headers = checked_headers(tool.get("headers") or {}, f"{param}.headers")
    token = tool.get("authorization")
    if token is not None:
        bearer = f"Bearer {token}" if isinstance(token, str) else token
        headers.update(checked_headers({"Authorization": bearer}, f"{param}.headers"))
    return headers


def _filter_or_names(value: Any, param: str) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        value = {"tool_names": value}
    if not isinstance(value, dict) or set(value) - {"tool_names", "read_only"}:
        raise InvalidInput("Expected a list of tool names or {tool_names, read_only}.", param=param)
    names = value.get("tool_names")
    if names is not None and (
        not isinstance(names, list) or len(names) > MAX_TOOLS or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidInput(f"tool_names must be at most {MAX_TOOLS} names.", param=f"{param}.tool_names")
    if value.get("read_only") is not None and not isinstance(value["read_only"], bool):
        raise InvalidInput("read_only must be a boolean.", param=f"{param}.read_only")
    return value


def _approval(value: Any, param: str) -> Any:
    if value is None:
        return "always"
    if value in ("always", "never"):
        return value
    if not isinstance(value, dict) or not value or set(value) - {"always", "never"}:
        raise InvalidInput("Expected always, never, or {always, never} filters.", param=param)
    return {key: _filter_or_names(found, f"{param}.{key}") or {} for key, found in value.items()}


def _matches(tool: Json, filter_: Json) -> bool:
    """Whether the tool meets every condition the filter gives (an empty filter: every tool)."""
    names = filter_.get("tool_names")
    read_only = filter_.get("read_only")
    if names is not None and tool["name"] not in names:
        return False
    return read_only is None or bool((tool.get("annotations") or {}).get("readOnlyHint")) == read_only


def _allowed(tool: Json, allowed: Any) -> bool:
    return allowed is None or _matches(tool, allowed)


def _needs_approval(tool: Json, approval: Any) -> bool:
    """``always`` wins; a tool that neither filter names needs approval unless only ``always`` is given."""
    if isinstance(approval, str):
        return approval == "always"
    if "always" in approval and _matches(tool, approval["always"]):
        return True
    if "never" in approval and _matches(tool, approval["never"]):
        return False
    return "never" in approval


# Listing


def _listing_in(context: list[Json], label: str) -> Json | None:
    """The chain's last good listing of the server, its tools checked as a new one's are."""
    for item in reversed(context):
        if (
            item.get("type") == "mcp_list_tools"
            and item.get("server_label") == label
            and not item.get("error")
        ):
            return {**item, "tools": checked_tools(item["tools"])}
    return None


async def _list(client: McpClient, spec: McpSpec) -> Json:
    return {
        "id": new_id("mcpl_"),
        "type": "mcp_list_tools",
        "server_label": spec.label,
        "tools": await list_tools(client, spec.server, spec.label, f"tools[{spec.at}]"),
        "error": None,
    }


# Faces and approvals


def _call_face(label: str, approved_ids: set[str]) -> ToolFace:
    def fields(call: ToolCall) -> Json:
        return {
            "server_label": label,
            "name": call.name,
            "arguments": call.arguments,
            "output": None,
            "error": None,
            "approval_request_id": call.call_id if call.call_id in approved_ids else None,
        }

    def result(call: ToolCall, output: ToolOutput) -> Json:
        details = output.details or {
            "output": None,
            "error": {
                "type": "mcp_tool_execution_error",
                "content": [{"type": "text", "text": output.error}],
            },
        }
        return {"arguments": call.arguments, "output": details["output"], "error": details["error"]}

    return ToolFace("mcp_call", "mcp_", fields, result, streams_arguments=True, failed_event=True)


def _request_face(label: str) -> ToolFace:
    def fields(call: ToolCall) -> Json:
        return {"server_label": label, "name": call.name, "arguments": call.arguments}

    return ToolFace("mcp_approval_request", "mcpr_", fields, lambda call, output: {})


def _answered(items: list[Json]) -> set[str]:
    return {item["approval_request_id"] for item in items if item.get("type") == "mcp_approval_response"}


def _approved(
    items: list[Json], history: list[Json], context: list[Json], runners: Mapping[tuple[str, str], ServerTool]
) -> list[tuple[ToolCall, ServerTool]]:
    """The calls the input approves, each with what runs it; every answer must answer a request of the
    context that no earlier answer did."""
    requests = {item["id"]: item for item in context if item.get("type") == "mcp_approval_request"}
    earlier = _answered(history)
    approved = []
    for at, item in enumerate(items):
        if item.get("type") != "mcp_approval_response":
            continue
        param = f"input[{at}].approval_request_id"
        request = requests.get(item["approval_request_id"])
        if request is None:
            raise InvalidInput(
                f"No approval request '{item['approval_request_id'][:80]}' in this response's context.",
                param=param,
            )
        if request["id"] in earlier:
            raise InvalidInput(
                f"The approval request '{request['id'][:80]}' was answered already.", param=param
            )
        if not item["approve"]:
            continue
        runner = runners.get((request["server_label"], request["name"]))
        if runner is None:
            raise InvalidInput(
                f"The approved call is of `{request['name'][:128]}` on the MCP server "
                f"`{request['server_label'][:64]}`, which this request's tools do not offer.",
                param=param,
            )
        approved.append((ToolCall(request["id"], request["name"], request["arguments"]), runner))
    return approved
