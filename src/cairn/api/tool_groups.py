"""Llama Stack's tool groups, tools and tool-runtime as its client calls them around agents
(``client.toolgroups``, ``client.tools``, ``client.tool_runtime``; the ``Agent`` helper lists the tools of
each group it is given), under ``/v1``: the built-in groups and the MCP servers a tenant registers
(``core.agents.registry``). Lists are ``{data}``; registering and deleting answer ``null``, as Llama
Stack does. Whatever reaches an MCP server sends it the headers the request's provider data gives for
it (``provider_data``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..core.agents.mcp_tools import MAX_URL_CHARS
from ..core.agents.registry import GroupTool, ToolGroup
from ..core.errors import InvalidInput
from ..core.ratelimit import RouteClass
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .provider_data import PROVIDER_DATA, McpHeadersDep
from .ratelimit import charged_as
from .render import json_response

router = APIRouter(route_class=FrontDoorRoute, tags=["Tools"], responses=error_responses(400, 401, 404))

GROUP_ID = r"^[A-Za-z0-9_:.-]{1,128}$"
GroupId = Annotated[str, Path(pattern=GROUP_ID)]
ToolName = Annotated[str, Field(min_length=1, max_length=128)]
Uri = Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class McpEndpoint(_Closed):
    uri: Uri


class RegisterToolGroupRequest(_Closed):
    toolgroup_id: Annotated[str, Field(pattern=GROUP_ID)]
    provider_id: Annotated[str, Field(min_length=1, max_length=64)]
    mcp_endpoint: McpEndpoint | None = None
    args: Annotated[dict[str, Any], Field(max_length=64)] | None = None


class InvokeToolRequest(_Closed):
    tool_name: ToolName
    kwargs: Annotated[dict[str, Any], Field(max_length=256)]


def group_object(group: ToolGroup) -> dict[str, Any]:
    return {
        "identifier": group.id,
        "provider_resource_id": group.id,
        "provider_id": group.provider_id,
        "type": "tool_group",
        "args": group.args,
        "mcp_endpoint": None if group.mcp_uri is None else {"uri": group.mcp_uri},
    }


def _parameters(tool: GroupTool) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "parameter_type": p.parameter_type,
            "description": p.description,
            "required": p.required,
            "default": None,
        }
        for p in tool.spec.parameters
    ]


def tool_object(tool: GroupTool) -> dict[str, Any]:
    return {
        "identifier": tool.spec.name,
        "provider_resource_id": tool.spec.name,
        "provider_id": tool.group.provider_id,
        "type": "tool",
        "toolgroup_id": tool.group.id,
        "description": tool.spec.description,
        "parameters": _parameters(tool),
        "metadata": tool.metadata or {},
    }


def tool_def(tool: GroupTool) -> dict[str, Any]:
    return {
        "name": tool.spec.name,
        "description": tool.spec.description,
        "parameters": _parameters(tool),
        "metadata": tool.metadata,
    }


# Tool groups


@router.get("/toolgroups", summary="List tool groups")
async def list_tool_groups(services: ServicesDep, principal: PrincipalDep) -> Response:
    """The built-in groups, then the tenant's registered groups in the order they were registered."""
    groups = await services.tool_groups.list(principal.tenant)
    return json_response({"data": [group_object(group) for group in groups]})


@router.post("/toolgroups", summary="Register a tool group", responses=error_responses(424))
async def register_tool_group(
    body: RegisterToolGroupRequest, services: ServicesDep, principal: PrincipalDep, headers: McpHeadersDep
) -> Response:
    """An MCP server (``provider_id`` ``model-context-protocol``, ``mcp_endpoint``), whose tools are
    listed first (424 if it cannot list them); a name registered again is replaced."""
    await services.tool_groups.register(
        principal.tenant,
        body.toolgroup_id,
        body.provider_id,
        None if body.mcp_endpoint is None else body.mcp_endpoint.uri,
        body.args,
        headers,
    )
    return json_response(None)


@router.get("/toolgroups/{toolgroup_id}", summary="Retrieve a tool group")
async def get_tool_group(toolgroup_id: GroupId, services: ServicesDep, principal: PrincipalDep) -> Response:
    return json_response(group_object(await services.tool_groups.get(principal.tenant, toolgroup_id)))


@router.delete("/toolgroups/{toolgroup_id}", summary="Unregister a tool group")
async def delete_tool_group(
    toolgroup_id: GroupId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    await services.tool_groups.delete(principal.tenant, toolgroup_id)
    return json_response(None)


# Tools


@router.get("/tools", summary="List tools", responses=error_responses(424))
async def list_tools(
    services: ServicesDep,
    principal: PrincipalDep,
    headers: McpHeadersDep,
    toolgroup_id: Annotated[
        str | None, Query(max_length=256, description="A group, or a ``group/tool`` name: that group's.")
    ] = None,
) -> Response:
    """A registered group's tools are asked of its server."""
    tools = await services.tool_groups.tools(principal.tenant, toolgroup_id, headers)
    return json_response({"data": [tool_object(tool) for tool in tools]})


@router.get("/tools/{tool_name}", summary="Retrieve a tool", responses=error_responses(424))
async def get_tool(
    tool_name: Annotated[str, Path(max_length=128)],
    services: ServicesDep,
    principal: PrincipalDep,
    headers: McpHeadersDep,
) -> Response:
    return json_response(tool_object(await services.tool_groups.tool(principal.tenant, tool_name, headers)))


# The tool runtime


@router.get("/tool-runtime/list-tools", summary="List a tool group's tools", responses=error_responses(424))
async def list_runtime_tools(
    services: ServicesDep,
    principal: PrincipalDep,
    headers: McpHeadersDep,
    tool_group_id: Annotated[str | None, Query(max_length=256)] = None,
    mcp_endpoint: Annotated[
        str | None,
        Query(alias="mcp_endpoint[uri]", max_length=MAX_URL_CHARS, description="Any MCP server's tools."),
    ] = None,
) -> Response:
    """Those of a group (as ``GET /v1/tools``), or those of any MCP server (``mcp_endpoint``), as tool
    definitions."""
    if mcp_endpoint is not None:
        tools = await services.tool_groups.endpoint_tools(mcp_endpoint, headers)
    elif tool_group_id is not None:
        tools = await services.tool_groups.tools(principal.tenant, tool_group_id, headers)
    else:
        raise InvalidInput("Give tool_group_id or mcp_endpoint.", param="tool_group_id")
    return json_response({"data": [tool_def(tool) for tool in tools]})


@router.post("/tool-runtime/invoke", summary="Invoke a tool", responses=error_responses(424))
@charged_as(RouteClass.INFERENCE)  # a search embeds its query; an MCP call runs on another server
async def invoke_tool(
    body: InvokeToolRequest, services: ServicesDep, principal: PrincipalDep, headers: McpHeadersDep
) -> Response:
    """``knowledge_search`` (``query``, ``vector_db_ids``, ``query_config``), or a tool of a registered
    group, by its name → Llama Stack's ``ToolInvocationResult``."""
    result = await services.tool_groups.invoke(principal.tenant, body.tool_name, body.kwargs, headers)
    return json_response(
        {
            "content": result.content,
            "error_code": result.error_code,
            "error_message": result.error_message,
            "metadata": result.metadata,
        }
    )


FACE = Face(router, prefixes=("/v1",), cors_request_headers=(PROVIDER_DATA,))
