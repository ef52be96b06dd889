"""Llama Stack's Agents API (``client.agents`` of ``llama-stack-client`` 0.2, ``client.alpha.agents`` of
0.3): agents, their sessions, turns streamed or whole, resumed with the client's tool results, and
their steps, under ``/v1`` and ``/v1alpha``, on the agent loop (``core.agents``).

A streamed turn is server-sent events as Llama Stack sends them: ``data: {"event": {"payload": …}}``
per event, no ``event:`` line and no ``[DONE]``; a failure after the first event is one
``data: {"error": {"message": …}}``. Lists are Llama Stack's pages: ``start_index`` and ``limit`` in,
``{data, has_more}`` out. Errors before any event are OpenAI's envelope, with their status. An agent's
creation, a turn and a resume send the MCP servers of their tool groups the headers the request's
provider data gives for them (``provider_data``)."""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from ..core.agents.service import MAX_PAGE, TurnRun
from ..core.agents.steps import iso
from ..core.errors import CairnError, InvalidInput
from ..core.inference.limits import Meter
from ..core.ratelimit import RouteClass
from ..core.records import AgentRecord, AgentSessionRecord
from ..settings import Settings
from .agent_requests import CreateAgentRequest, CreateSessionRequest, CreateTurnRequest, ResumeTurnRequest
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .provider_data import PROVIDER_DATA, McpHeadersDep
from .ratelimit import MeterDep, charged_as
from .render import json_response
from .sse import EventStreamResponse, frame
from .tus import public_base

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/agents",
    tags=["Agents"],
    responses=error_responses(400, 401, 404, 503),
)

Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
StartIndex = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE}.")]
TURN = "/{agent_id}/session/{session_id}/turn/{turn_id}"
FILE_CONTENT = re.compile(r"(?:/v1/openai)?/v1/files/([A-Za-z0-9_-]{1,128})/content")


def agent_object(agent: AgentRecord) -> dict[str, Any]:
    return {"agent_id": agent.id, "agent_config": agent.config, "created_at": iso(agent.created_at)}


def session_object(session: AgentSessionRecord, turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "session_name": session.name,
        "turns": turns,
        "started_at": iso(session.started_at),
    }


def _own_file(content: Any, request: Request, settings: Settings) -> Any:
    """A document's content, where it is this server's URL of a file (``/v1/files/{id}/content``,
    relative or at the address the client called or the public one): ``{"uri": id}``, as the service
    reads a file."""
    uri = content.get("uri") if isinstance(content, dict) else None
    if isinstance(content, str) and content.startswith(("http://", "https://")):
        uri = content
    if uri is None:
        return content
    given = urllib.parse.urlsplit(uri)
    called = urllib.parse.urlsplit(str(request.base_url))
    origins = {"", f"{called.scheme}://{called.netloc}", public_base(request, settings)}
    origin = f"{given.scheme}://{given.netloc}" if given.scheme or given.netloc else ""
    named = FILE_CONTENT.fullmatch(given.path)
    if named is None or given.query or given.fragment or origin not in origins:
        return content
    return {"uri": named[1]}


def _event(payload: dict[str, Any]) -> bytes:
    return frame({"event": {"payload": payload}})


def _stream_error(exc: Exception) -> bytes:
    message = exc.message if isinstance(exc, CairnError) else "The turn failed."
    return frame({"error": {"message": message}})


async def _answer(run: TurnRun, stream: bool | None, services: ServicesDep, meter: Meter) -> Response:
    """The turn whole, or its events in one of the tenant's places for open streams; its tokens spent
    at its end either way."""
    if stream:
        return EventStreamResponse(_metered(run, services, meter), _event, render_error=_stream_error)
    turn = await services.agents.finish(run)
    await meter.spend(run.tokens)
    return json_response(turn)


async def _metered(run: TurnRun, services: ServicesDep, meter: Meter) -> AsyncGenerator[dict[str, Any], None]:
    with meter.limits.stream_place(meter.tenant):
        try:
            async with contextlib.aclosing(services.agents.events(run)) as events:
                async for payload in events:
                    yield payload
        finally:
            await meter.spend(run.tokens)


# Agents


@router.post("", summary="Create an agent")
async def create_agent(
    body: CreateAgentRequest, services: ServicesDep, principal: PrincipalDep, headers: McpHeadersDep
) -> Response:
    """The configuration checked whole (its model, tools, settings) → ``{agent_id}``."""
    config = body.agent_config.model_dump(mode="json")
    agent = await services.agents.create(principal.tenant, config, headers)
    return json_response({"agent_id": agent.id})


@router.get("", summary="List agents")
async def list_agents(
    services: ServicesDep, principal: PrincipalDep, start_index: StartIndex = 0, limit: Limit = MAX_PAGE
) -> Response:
    page = await services.agents.list(principal.tenant, start_index=start_index, limit=limit)
    return json_response({"data": [agent_object(agent) for agent in page.items], "has_more": page.has_more})


@router.get("/{agent_id}", summary="Retrieve an agent")
async def get_agent(agent_id: Id, services: ServicesDep, principal: PrincipalDep) -> Response:
    return json_response(agent_object(await services.agents.get(principal.tenant, agent_id)))


@router.delete("/{agent_id}", summary="Delete an agent")
async def delete_agent(agent_id: Id, services: ServicesDep, principal: PrincipalDep) -> Response:
    """The agent, its sessions and their turns."""
    await services.agents.delete(principal.tenant, agent_id)
    return json_response(None)


# Sessions


@router.post("/{agent_id}/session", summary="Create a session")
async def create_session(
    agent_id: Id, body: CreateSessionRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    session = await services.agents.create_session(principal.tenant, agent_id, body.session_name)
    return json_response({"session_id": session.id})


@router.get("/{agent_id}/sessions", summary="List an agent's sessions")
async def list_sessions(
    agent_id: Id,
    services: ServicesDep,
    principal: PrincipalDep,
    start_index: StartIndex = 0,
    limit: Limit = MAX_PAGE,
) -> Response:
    """Each session without its turns (``turns`` empty, as Llama Stack lists them): retrieve one for
    them."""
    page = await services.agents.list_sessions(
        principal.tenant, agent_id, start_index=start_index, limit=limit
    )
    data = [session_object(session, []) for session in page.items]
    return json_response({"data": data, "has_more": page.has_more})


@router.get("/{agent_id}/session/{session_id}", summary="Retrieve a session and its turns")
async def get_session(
    agent_id: Id,
    session_id: Id,
    services: ServicesDep,
    principal: PrincipalDep,
    turn_ids: Annotated[
        list[Annotated[str, Query(max_length=MAX_PAGE * 65)]] | None,
        Query(max_length=MAX_PAGE, description="Only these turns: repeated, or separated by commas."),
    ] = None,
) -> Response:
    """The turns in the order they happened."""
    wanted = None if turn_ids is None else [one for given in turn_ids for one in given.split(",") if one]
    if wanted is not None and len(wanted) > MAX_PAGE:
        raise InvalidInput(f"At most {MAX_PAGE} turn_ids.", param="turn_ids")
    session, turns = await services.agents.get_session(principal.tenant, agent_id, session_id, wanted)
    return json_response(session_object(session, turns))


@router.delete("/{agent_id}/session/{session_id}", summary="Delete a session")
async def delete_session(
    agent_id: Id, session_id: Id, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The session and its turns."""
    await services.agents.delete_session(principal.tenant, agent_id, session_id)
    return json_response(None)


# Turns


@router.post("/{agent_id}/session/{session_id}/turn", summary="Create a turn")
@charged_as(RouteClass.INFERENCE)
async def create_turn(
    agent_id: Id,
    session_id: Id,
    body: CreateTurnRequest,
    request: Request,
    services: ServicesDep,
    meter: MeterDep,
    headers: McpHeadersDep,
) -> Response:
    """The ``Turn``, or with ``stream: true`` its events as they happen (a client that leaves stops the
    model, and the turn is not kept). ``documents`` go into the session's memory first."""
    turn = body.model_dump(mode="json", exclude={"stream"})
    for document in turn["documents"] or ():
        document["content"] = _own_file(document["content"], request, services.settings)
    run = await services.agents.start_turn(meter.tenant, agent_id, session_id, turn, headers)
    return await _answer(run, body.stream, services, meter)


@router.get(TURN, summary="Retrieve a turn")
async def get_turn(
    agent_id: Id, session_id: Id, turn_id: Id, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response(await services.agents.get_turn(principal.tenant, agent_id, session_id, turn_id))


@router.post(TURN + "/resume", summary="Resume a turn with tool results")
@charged_as(RouteClass.INFERENCE)
async def resume_turn(
    agent_id: Id,
    session_id: Id,
    turn_id: Id,
    body: ResumeTurnRequest,
    services: ServicesDep,
    meter: MeterDep,
    headers: McpHeadersDep,
) -> Response:
    """``tool_responses``: one per pending call of a turn that awaits input, no other; the same turn
    runs on, streamed or whole."""
    responses = [response.model_dump(mode="json") for response in body.tool_responses]
    run = await services.agents.resume(meter.tenant, agent_id, session_id, turn_id, responses, headers)
    return await _answer(run, body.stream, services, meter)


@router.get(TURN + "/step/{step_id}", summary="Retrieve a step")
async def get_step(
    agent_id: Id,
    session_id: Id,
    turn_id: Id,
    step_id: Id,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    step = await services.agents.get_step(principal.tenant, agent_id, session_id, turn_id, step_id)
    return json_response({"step": step})


FACE = Face(router, prefixes=("/v1", "/v1alpha"), cors_request_headers=(PROVIDER_DATA,))
