"""A tenant's tool groups, as Llama Stack's tool-runtime has them, and the tools Cairn runs for them: the
built-in groups (``core.agents.toolgroups``: ``builtin::rag``) and the remote MCP servers the tenant
registered (``provider_id`` ``model-context-protocol`` and an ``mcp_endpoint``), reached on the MCP
client of the Responses API (``core.agents.mcp_tools``).

- ``register`` lists the server's tools first: a server that cannot list them is 424, as the Responses
  API answers, and nothing is kept. The group is kept with the names of the tools it listed; registering
  a name again replaces the group. A built-in group cannot be registered or deleted, and a group of
  another provider (web search, code interpreter, …) is refused by name: this server has none.
- A registered group's tools are asked of its server whenever they are listed or offered, and shown as
  Llama Stack shows an MCP server's tools: the input schema's properties as ``parameters`` and the
  server's URI as ``metadata.endpoint``.
- ``invoke`` runs a tool by its name: ``knowledge_search`` (with its ``vector_db_ids`` and
  ``query_config`` among the arguments, as Llama Stack's agents pass them), else the tool of that name of
  the first registered group that listed one. A server that fails is 424; a tool that fails is the
  result's ``error_code`` 1, as Llama Stack shows it.
- ``server_tools`` are the tools an agent's (or a turn's) ``toolgroups`` offer the loop. A registered
  group's are listed when the agent is made and when a turn starts or resumes (424 if its server cannot
  list them); a call's arguments are the model's with the entry's ``args`` over them, as Llama Stack
  passes them; a server's or a tool's failure is an error the model reads.
- Whatever reaches a server takes the request's ``McpHeaders`` (Llama Stack's ``mcp_headers``): the
  headers given for that server's URL go to it, and nowhere else; nothing keeps them.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import FailedDependency, InvalidInput, McpServerError, NotFound
from ..ports.inference import Json
from ..ports.mcp import McpClient
from ..ports.tool_groups import ToolGroupRows
from ..records import ToolGroupRecord
from ..vectors.stores import VectorStores
from .loop import ServerTool, ToolOutput, ToolRunner
from .mcp_tools import McpHeaders, function, http_url, list_tools, output, tool_runner
from .toolgroups import GROUPS, PROVIDER, RAG, ToolParameter, ToolSpec, group_of, knowledge_search

MCP_PROVIDER = "model-context-protocol"
BUILTIN_PREFIX = "builtin::"
MAX_GROUPS = 64  # registered, per tenant


@dataclass(frozen=True)
class ToolGroup:
    """A group as Llama Stack shows it: built in (no endpoint), or registered."""

    id: str
    provider_id: str
    mcp_uri: str | None = None
    args: Json | None = None


@dataclass(frozen=True)
class GroupTool:
    """A tool of a group, as Llama Stack lists it."""

    group: ToolGroup
    spec: ToolSpec
    metadata: Json | None = None


@dataclass(frozen=True)
class Invocation:
    """Llama Stack's ``ToolInvocationResult``."""

    content: list[Json]
    error_code: int | None = None
    error_message: str | None = None
    metadata: Json | None = None


class ToolGroups:
    def __init__(
        self,
        rows: ToolGroupRows,
        vector_stores: VectorStores,
        mcp: McpClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rows = rows
        self._vector_stores = vector_stores
        self._mcp = mcp
        self._clock = clock

    # Groups

    async def register(
        self,
        tenant: str,
        group_id: str,
        provider_id: str,
        mcp_uri: str | None,
        args: Json | None,
        headers: McpHeaders,
    ) -> ToolGroup:
        if group_id in GROUPS:
            raise InvalidInput(
                f"`{group_id}` is a built-in tool group: it cannot be registered.", param="toolgroup_id"
            )
        if provider_id != MCP_PROVIDER or group_id.startswith(BUILTIN_PREFIX):
            raise InvalidInput(
                f"The tool group `{group_id}` of `{provider_id}` is not available on this server: the "
                f"groups registered here are MCP servers (provider_id `{MCP_PROVIDER}`).",
                param="provider_id",
            )
        if mcp_uri is None:
            raise InvalidInput("An MCP tool group needs mcp_endpoint.", param="mcp_endpoint")
        if not http_url(mcp_uri):
            raise InvalidInput("mcp_endpoint.uri must be an http or https URL.", param="mcp_endpoint.uri")
        groups = await self.rows.list_groups(tenant)
        if len(groups) >= MAX_GROUPS and all(group.id != group_id for group in groups):
            raise InvalidInput(f"At most {MAX_GROUPS} tool groups can be registered.", param="toolgroup_id")
        listed = await list_tools(self._mcp, headers.server(mcp_uri), group_id, "mcp_endpoint")
        record = ToolGroupRecord(
            group_id, tenant, self._clock(), MCP_PROVIDER, mcp_uri, args, [tool["name"] for tool in listed]
        )
        await self.rows.put_group(record)
        return _registered(record)

    async def get(self, tenant: str, group_id: str) -> ToolGroup:
        if group_id in GROUPS:
            return ToolGroup(group_id, PROVIDER)
        return _registered(await self._record(tenant, group_id))

    async def list(self, tenant: str) -> builtins.list[ToolGroup]:
        """The built-in groups, then the registered ones in the order they were registered."""
        registered = [_registered(record) for record in await self.rows.list_groups(tenant)]
        return [*(ToolGroup(group_id, PROVIDER) for group_id in GROUPS), *registered]

    async def delete(self, tenant: str, group_id: str) -> None:
        if group_id in GROUPS:
            raise InvalidInput(
                f"`{group_id}` is a built-in tool group: it cannot be deleted.", param="toolgroup_id"
            )
        if not await self.rows.delete_group(tenant, group_id):
            raise _no_group(group_id)

    # Tools

    async def tools(self, tenant: str, group_id: str | None, headers: McpHeaders) -> builtins.list[GroupTool]:
        """The tools of a group (``group_id`` may be a ``group/tool`` name: its group's), or of every
        group."""
        groups = [await self.get(tenant, group_of(group_id))] if group_id else await self.list(tenant)
        return [tool for group in groups for tool in await self._group_tools(group, headers)]

    async def tool(self, tenant: str, name: str, headers: McpHeaders) -> GroupTool:
        """The tool of that name that ``invoke`` would run."""
        group = await self._group_of_tool(tenant, name)
        tools = [] if group is None else await self._group_tools(group, headers)
        found = next((tool for tool in tools if tool.spec.name == name), None)
        if found is None:  # no group has one, or its server no longer does
            raise _no_tool(name)
        return found

    async def endpoint_tools(self, uri: str, headers: McpHeaders) -> builtins.list[GroupTool]:
        """The tools of any MCP server (``/v1/tool-runtime/list-tools`` with an ``mcp_endpoint``)."""
        if not http_url(uri):
            raise InvalidInput("mcp_endpoint.uri must be an http or https URL.", param="mcp_endpoint")
        return await self._group_tools(ToolGroup(uri, MCP_PROVIDER, uri), headers)

    async def invoke(self, tenant: str, name: str, kwargs: Json, headers: McpHeaders) -> Invocation:
        group = await self._group_of_tool(tenant, name)
        if group is None:
            raise _no_tool(name)
        if group.mcp_uri is None:  # knowledge_search
            search = await knowledge_search(
                {key: value for key, value in kwargs.items() if key != "query"},
                self._vector_stores,
                tenant,
                "kwargs",
            )
            found = await search.run({"query": kwargs.get("query")})
        else:
            try:
                answer = await self._mcp.call_tool(headers.server(group.mcp_uri), name, kwargs)
            except McpServerError as exc:
                raise FailedDependency(
                    f"The MCP server of the tool group `{group.id}` failed: {exc.message}", param="tool_name"
                ) from None
            found = output(answer)
        if found.error is not None:
            return Invocation(
                [{"type": "text", "text": found.error}], error_code=1, error_message=found.error
            )
        details = found.details if group.mcp_uri is None else None
        return Invocation([{"type": "text", "text": found.text}], error_code=0, metadata=details)

    async def server_tools(
        self, tenant: str, toolgroups: Sequence[str | Json], param: str, headers: McpHeaders
    ) -> dict[str, ServerTool]:
        """The tools of ``toolgroups`` (an agent's, or a turn's), checked: ``InvalidInput`` naming the
        entry (``param[i]``) for a group or tool the tenant does not have, or arguments that cannot be
        honoured."""
        tools: dict[str, ServerTool] = {}
        for at, entry in enumerate(toolgroups):
            where = f"{param}[{at}]"
            name, args = (entry, {}) if isinstance(entry, str) else (entry["name"], entry.get("args") or {})
            group = group_of(name)
            offered = await self._offered(tenant, group, args, where, headers)
            if name != group:
                offered = [tool for tool in offered if f"{group}/{tool.name}" == name]
                if not offered:
                    raise InvalidInput(f"The tool group `{group}` has no tool `{name}`.", param=where)
            for tool in offered:
                if tool.name in tools:
                    raise InvalidInput(f"The tool `{tool.name}` is named twice.", param=where)
                tools[tool.name] = tool
        return tools

    # Internals

    async def _record(self, tenant: str, group_id: str) -> ToolGroupRecord:
        record = await self.rows.get_group(tenant, group_id)
        if record is None:
            raise _no_group(group_id)
        return record

    async def _group_of_tool(self, tenant: str, name: str) -> ToolGroup | None:
        """The group whose tool of that name ``invoke`` runs: built in, else the first registered."""
        for group_id, specs in GROUPS.items():
            if any(spec.name == name for spec in specs):
                return ToolGroup(group_id, PROVIDER)
        record = next((r for r in await self.rows.list_groups(tenant) if name in r.tools), None)
        return None if record is None else _registered(record)

    async def _group_tools(self, group: ToolGroup, headers: McpHeaders) -> builtins.list[GroupTool]:
        if group.mcp_uri is None:
            return [GroupTool(group, spec) for spec in GROUPS[group.id]]
        listed = await list_tools(self._mcp, headers.server(group.mcp_uri), group.id, "toolgroup_id")
        return [GroupTool(group, _spec(tool), {"endpoint": group.mcp_uri}) for tool in listed]

    async def _offered(
        self, tenant: str, group_id: str, args: Json, param: str, headers: McpHeaders
    ) -> builtins.list[ServerTool]:
        if group_id == RAG:
            return [await knowledge_search(args, self._vector_stores, tenant, f"{param}.args")]
        record = None if group_id in GROUPS else await self.rows.get_group(tenant, group_id)
        if record is None:
            raise InvalidInput(f"The tool group `{group_id}` is not available on this server.", param=param)
        server = headers.server(record.mcp_uri)
        return [
            ServerTool(
                tool["name"], function(tool), _with_args(tool_runner(self._mcp, server, tool["name"]), args)
            )
            for tool in await list_tools(self._mcp, server, group_id, param)
        ]


def _registered(record: ToolGroupRecord) -> ToolGroup:
    return ToolGroup(record.id, record.provider_id, record.mcp_uri, record.args)


def _spec(tool: Json) -> ToolSpec:
    """An MCP server's tool as Llama Stack lists it: a parameter per property of its input schema."""
    schema = tool["input_schema"]
    properties = schema.get("properties")
    required = schema.get("required")
    parameters = []
    for name, described in (properties if isinstance(properties, dict) else {}).items():
        described = described if isinstance(described, dict) else {}
        kind, text = described.get("type"), described.get("description")
        parameters.append(
            ToolParameter(
                str(name),
                kind if isinstance(kind, str) else "string",
                text if isinstance(text, str) else "",
                required=isinstance(required, list) and name in required,
            )
        )
    return ToolSpec(tool["name"], tool["description"] or "", tuple(parameters))


def _with_args(run: ToolRunner, args: Json) -> ToolRunner:
    """A call with the group's ``args`` over the model's arguments; its answer without the details an
    ``mcp_call`` item shows (a ``tool_execution`` step shows its content only)."""

    async def with_args(arguments: Json) -> ToolOutput:
        answered = await run({**arguments, **args})
        return ToolOutput(answered.text, error=answered.error)

    return with_args


def _no_group(group_id: str) -> NotFound:
    return NotFound(f"Tool group '{group_id[:128]}' not found.", param="toolgroup_id")


def _no_tool(name: str) -> NotFound:
    return NotFound(f"Tool '{name[:128]}' not found.", param="tool_name")
