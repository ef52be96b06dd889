"""Llama Stack's tool groups and tools as its client reads them around agents (``client.toolgroups``,
``client.tools``; the ``Agent`` helper lists the tools of each group it is given): the groups this
server runs for agents (``core.agents.toolgroups``), under ``/v1``. Lists are ``{data}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from ..core.agents.toolgroups import GROUPS, PROVIDER, ToolSpec, group_of
from ..core.errors import NotFound
from .deps import PrincipalDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .render import json_response

router = APIRouter(route_class=FrontDoorRoute, tags=["Tools"], responses=error_responses(400, 401, 404))

GroupId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_:.-]{1,128}$")]


def group_object(group: str) -> dict[str, Any]:
    return {
        "identifier": group,
        "provider_resource_id": group,
        "provider_id": PROVIDER,
        "type": "tool_group",
        "args": None,
        "mcp_endpoint": None,
    }


def tool_object(group: str, tool: ToolSpec) -> dict[str, Any]:
    return {
        "identifier": tool.name,
        "provider_resource_id": tool.name,
        "provider_id": PROVIDER,
        "type": "tool",
        "toolgroup_id": group,
        "description": tool.description,
        "parameters": [
            {
                "name": p.name,
                "parameter_type": p.parameter_type,
                "description": p.description,
                "required": p.required,
                "default": None,
            }
            for p in tool.parameters
        ],
        "metadata": {},
    }


def _group(name: str) -> str:
    group = group_of(name)
    if group not in GROUPS:
        raise NotFound(f"Tool group '{name[:128]}' not found.", param="toolgroup_id")
    return group


@router.get("/toolgroups", summary="List tool groups")
async def list_tool_groups(_: PrincipalDep) -> Response:
    return json_response({"data": [group_object(group) for group in GROUPS]})


@router.get("/toolgroups/{toolgroup_id}", summary="Retrieve a tool group")
async def get_tool_group(toolgroup_id: GroupId, _: PrincipalDep) -> Response:
    return json_response(group_object(_group(toolgroup_id)))


@router.get("/tools", summary="List tools")
async def list_tools(
    _: PrincipalDep,
    toolgroup_id: Annotated[
        str | None, Query(max_length=256, description="A group, or a ``group/tool`` name: that group's.")
    ] = None,
) -> Response:
    groups = [_group(toolgroup_id)] if toolgroup_id is not None else list(GROUPS)
    return json_response({"data": [tool_object(group, tool) for group in groups for tool in GROUPS[group]]})


@router.get("/tools/{tool_name}", summary="Retrieve a tool")
async def get_tool(tool_name: Annotated[str, Path(max_length=64)], _: PrincipalDep) -> Response:
    for group, tools in GROUPS.items():
        for tool in tools:
            if tool.name == tool_name:
                return json_response(tool_object(group, tool))
    raise NotFound(f"Tool '{tool_name}' not found.", param="tool_name")


FACE = Face(router, prefixes=("/v1",))
