"""OpenAI's Responses API (``client.responses``: create, stream, retrieve, delete, cancel, input items)
and Llama Stack's list of responses, under ``/v1`` and ``/v1/openai/v1``, on the agent loop
(``core.responses``).

A streamed response is server-sent events as OpenAI sends them: ``event: <type>`` and ``data: <json>``
per event, each with its ``sequence_number``, no ``[DONE]``. A failure after the first event is the
``response.failed`` event the service writes, or, for one it did not foresee, an ``error`` event."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from ..core.errors import CairnError, InvalidInput
from ..core.ratelimit import RouteClass
from ..core.responses.service import MAX_PAGE
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .ratelimit import MeterDep, charged_as
from .render import json_response
from .response_requests import CreateResponseRequest, ResponseContext
from .sse import EventStreamResponse, frame

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/responses",
    tags=["Responses"],
    responses=error_responses(400, 401, 404, 503),
)

ResponseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Cursor = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,256}$", description="An id from the previous page.")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE}.")]
OrderQuery = Annotated[Literal["asc", "desc"], Query(description="By creation.")]


def _event(event: dict[str, Any]) -> bytes:
    return frame(event, event=event["type"])


def _stream_error(exc: Exception) -> bytes:
    if isinstance(exc, CairnError):
        code, message, param = exc.code, exc.message, exc.param
    else:
        code, message, param = "internal_error", "The response failed.", None
    return frame({"type": "error", "code": code, "message": message, "param": param}, event="error")


@router.post("", summary="Create a response")
@charged_as(RouteClass.INFERENCE)
async def create_response(body: CreateResponseRequest, services: ServicesDep, meter: MeterDep) -> Response:
    """Runs the model (and the tools this server runs) to the response's end; with ``stream: true`` the
    events go out as they happen, and a client that leaves stops the model (the response is
    ``cancelled``)."""
    await meter.admit()
    responses = services.responses
    run = await responses.start(meter.tenant, body.for_service())
    if body.background:
        queued = await responses.submit(run)
        if not body.stream:
            return json_response(queued)
        replay = responses.log.replay(meter.tenant, queued["id"], after=-1)
        return EventStreamResponse(replay, _event, render_error=_stream_error)
    if body.stream:
        return EventStreamResponse(responses.events(run), _event, render_error=_stream_error)
    answer = await responses.finish(run)
    usage = answer.get("usage") or {}
    await meter.spend(usage.get("total_tokens") or 0)
    return json_response(answer)


@router.post("/input_tokens", summary="Count a response's input tokens")
@charged_as(RouteClass.INFERENCE)
async def count_input_tokens(body: ResponseContext, services: ServicesDep, meter: MeterDep) -> Response:
    """The tokens the model would read for this input, counted by the model itself (it reads the input
    and writes one token); nothing is kept."""
    await meter.admit()
    tokens = await services.responses.input_tokens(meter.tenant, body.for_service())
    await meter.spend(tokens + 1)
    return json_response({"object": "response.input_tokens", "input_tokens": tokens})


@router.get("", summary="List responses (Llama Stack)")
async def list_responses(
    services: ServicesDep,
    principal: PrincipalDep,
    after: Cursor = None,
    limit: Limit = 50,
    order: OrderQuery = "desc",
    model: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    page = await services.responses.list(principal.tenant, after=after, limit=limit, order=order, model=model)
    data = [row.response for row in page.items]
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        }
    )


@router.get("/{response_id}", summary="Retrieve a response")
async def retrieve_response(
    response_id: ResponseId,
    services: ServicesDep,
    principal: PrincipalDep,
    stream: Annotated[bool, Query(description="Stream a background response's events again.")] = False,
    starting_after: Annotated[
        int | None, Query(ge=-1, description="With stream: the events after this sequence number.")
    ] = None,
) -> Response:
    row = await services.responses.get(principal.tenant, response_id)
    if not stream:
        return json_response(row.response)
    if not row.response.get("background"):
        raise InvalidInput("Only a background response can be streamed again.", param="stream")
    after = -1 if starting_after is None else starting_after
    replay = services.responses.log.replay(principal.tenant, response_id, after=after)
    return EventStreamResponse(replay, _event, render_error=_stream_error)


@router.delete("/{response_id}", summary="Delete a response")
async def delete_response(
    response_id: ResponseId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    await services.responses.delete(principal.tenant, response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})


@router.post("/{response_id}/cancel", summary="Cancel a background response")
@charged_as(RouteClass.DELETIONS)
async def cancel_response(
    response_id: ResponseId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response((await services.responses.cancel(principal.tenant, response_id)).response)


@router.get("/{response_id}/input_items", summary="List a response's input items")
async def list_input_items(
    response_id: ResponseId,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Cursor = None,
    limit: Limit = 20,
    order: OrderQuery = "desc",
) -> Response:
    page = await services.responses.input_items(
        principal.tenant, response_id, after=after, limit=limit, order=order
    )
    data = page.items
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0].get("id") if data else None,
            "last_id": data[-1].get("id") if data else None,
            "has_more": page.has_more,
        }
    )


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))
