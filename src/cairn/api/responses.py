"""OpenAI's Responses API (``client.responses``: create, stream, retrieve, delete, cancel, input items)
and Llama Stack's list of responses, under ``/v1`` and ``/v1/openai/v1``, on the agent loop
(``core.responses``).

A streamed response is server-sent events as OpenAI sends them: ``event: <type>`` and ``data: <json>``
per event, each with its ``sequence_number``, no ``[DONE]``. A failure after the first event is the
``response.failed`` event the service writes, or, for one it did not foresee, an ``error`` event.

WebSocket mode (``client.responses.connect()``): on one socket, ``response.create`` messages (the body of
``POST /v1/responses`` with ``"type": "response.create"``) run one after another, each answered with its
stream events as JSON messages; a bad message is answered with an ``error`` message and the socket stays
open. The socket holds its last response, so the next may continue it by ``previous_response_id`` even
with ``store: false``. The key is the handshake's ``Authorization`` header; without keys, only a loopback
page may open a socket (a browser lets any page try)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.responses import Response

from ..core.errors import CairnError, InvalidInput, RateLimited
from ..core.inference.limits import Meter
from ..core.ports.inference import Json
from ..core.ratelimit import RouteClass
from ..core.records import StoredResponse
from ..core.responses.include import shown_item, shown_response
from ..core.responses.service import MAX_PAGE, Run
from .deps import PrincipalDep, Services, ServicesDep
from .errors import error_responses, status_for
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute, refuse_browser_attacks
from .ratelimit import MeterDep, charged_as
from .render import cursor_page, json_response
from .response_requests import CreateResponseRequest, Include, ResponseContext
from .sse import EventStreamResponse, frame

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/responses",
    tags=["Responses"],
    responses=error_responses(400, 401, 404, 503),
)

POLICY_VIOLATION = 1008  # the WebSocket close code for a refused key or origin
ResponseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Cursor = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,256}$", description="An id from the previous page.")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE}.")]
OrderQuery = Annotated[Literal["asc", "desc"], Query(description="By creation.")]
IncludeQuery = Annotated[
    list[Include] | None,
    Query(
        alias="include[]", max_length=16, description="What to show that is kept but not shown by default."
    ),
]


def _event(event: dict[str, Any]) -> bytes:
    return frame(event, event=event["type"])


def _stream_error(exc: Exception) -> bytes:
    if isinstance(exc, CairnError):
        code, message, param = exc.code, exc.message, exc.param
    else:
        code, message, param = "internal_error", "The response failed.", None
    return frame({"type": "error", "code": code, "message": message, "param": param}, event="error")


@router.post("", summary="Create a response", responses=error_responses(424))
@charged_as(RouteClass.INFERENCE)
async def create_response(body: CreateResponseRequest, services: ServicesDep, meter: MeterDep) -> Response:
    """Runs the model (and the tools this server runs) to the response's end; with ``stream: true`` the
    events go out as they happen, and a client that leaves stops the model (the response is
    ``cancelled``). A background response's tokens count against the budget of no request."""
    responses = services.responses
    run = await responses.start(meter.tenant, body.for_service())
    if body.background:
        queued = await responses.submit(run)
        if not body.stream:
            return json_response(queued)
        replay = responses.log.replay(meter.tenant, queued["id"], after=-1)
        return EventStreamResponse(replay, _event, render_error=_stream_error)
    if body.stream:
        return EventStreamResponse(
            _metered(responses.events(run), run, meter), _event, render_error=_stream_error
        )
    answer = await responses.finish(run)
    await meter.spend(_tokens(run))
    return json_response(answer)


async def _metered(events: AsyncGenerator[Json, None], run: Run, meter: Meter) -> AsyncGenerator[Json, None]:
    """A streamed response in one of the tenant's places for open streams, its tokens spent at its end."""
    with meter.limits.stream_place(meter.tenant):
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            await meter.spend(_tokens(run))


def _tokens(run: Run) -> int:
    usage = run.response.get("usage") or {}
    return int(usage.get("total_tokens") or 0)


@router.post("/input_tokens", summary="Count a response's input tokens", responses=error_responses(424))
@charged_as(RouteClass.INFERENCE)
async def count_input_tokens(body: ResponseContext, services: ServicesDep, meter: MeterDep) -> Response:
    """The tokens the model would read for this input, counted by the model itself (it reads the input
    and writes one token); nothing is kept."""
    tokens = await services.responses.input_tokens(meter.tenant, body.for_service())
    await meter.spend(tokens + 1)
    return json_response({"object": "response.input_tokens", "input_tokens": tokens})


@router.websocket("")
async def responses_socket(socket: WebSocket) -> None:
    services: Services = socket.app.state.services
    try:
        if await services.api_keys.open_mode():
            refuse_browser_attacks(socket)
        tenant = (await services.api_keys.authenticate(socket.headers.get("authorization"))).tenant
    except CairnError:
        await socket.close(code=POLICY_VIOLATION)
        return
    await socket.accept()
    held: StoredResponse | None = None
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await socket.receive_text()
            try:
                body = _create_message(message, services.settings.limits.max_json_bytes)
                meter = await _socket_meter(services, tenant)
                run = await services.responses.start(tenant, body.for_service(), kept=held)
            except CairnError as exc:
                await socket.send_text(_error_message(exc))
                continue
            events = _metered(services.responses.events(run), run, meter)
            async with contextlib.aclosing(events):
                async for event in events:
                    await socket.send_bytes(orjson.dumps(event))
            held = services.responses.row_of(run)


async def _socket_meter(services: Services, tenant: str) -> Meter:
    """Each response.create on a socket is charged as ``POST /v1/responses`` is: one inference request,
    and its tokens."""
    if services.rate_limiter is not None:
        decision = await services.rate_limiter.charge(tenant, RouteClass.INFERENCE)
        if decision is not None and not decision.allowed:
            raise RateLimited(
                f"Too many inference requests: this tenant may make {decision.limit} per minute.",
                retry_after=decision.retry_after,
            )
    meter = services.inference_limits.meter(tenant, lambda decision: None)
    await meter.admit()
    return meter


def _create_message(message: str, limit: int) -> CreateResponseRequest:
    if len(message) > limit:
        raise InvalidInput(f"A message may be at most {limit} bytes.")
    try:
        fields = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The message is not valid JSON: {exc}.") from None
    if not isinstance(fields, dict) or fields.pop("type", None) != "response.create":
        raise InvalidInput("Send response.create messages.", param="type")
    if fields.get("background") or fields.get("stream") is False:
        raise InvalidInput("On a socket a response streams, in the foreground.", param="background")
    fields.pop("stream", None)
    try:
        return CreateResponseRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(first["msg"], param=".".join(str(part) for part in first["loc"])) from None


def _error_message(exc: CairnError) -> str:
    """OpenAI's WebSocket error: the envelope's fields under ``error``, with the HTTP status they mean."""
    status = status_for(exc)
    kind = "invalid_request_error" if status < 500 else "server_error"
    error = {"type": kind, "code": exc.code, "message": exc.message, "param": exc.param}
    return orjson.dumps({"type": "error", "error": error, "status": status}).decode()


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
    data = [shown_response(row.response, ()) for row in page.items]
    return cursor_page(data, page.has_more)


@router.get("/{response_id}", summary="Retrieve a response")
async def retrieve_response(
    response_id: ResponseId,
    services: ServicesDep,
    principal: PrincipalDep,
    stream: Annotated[bool, Query(description="Stream a background response's events again.")] = False,
    starting_after: Annotated[
        int | None, Query(ge=-1, description="With stream: the events after this sequence number.")
    ] = None,
    include: IncludeQuery = None,
) -> Response:
    """The response as kept, showing what ``include`` asks for; with ``stream``, a background
    response's events again, as its create's ``include`` showed them."""
    row = await services.responses.get(principal.tenant, response_id)
    if not stream:
        return json_response(shown_response(row.response, include or ()))
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
    cancelled = await services.responses.cancel(principal.tenant, response_id)
    return json_response(shown_response(cancelled.response, ()))


@router.get("/{response_id}/input_items", summary="List a response's input items")
async def list_input_items(
    response_id: ResponseId,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Cursor = None,
    limit: Limit = 20,
    order: OrderQuery = "desc",
    include: IncludeQuery = None,
) -> Response:
    page = await services.responses.input_items(
        principal.tenant, response_id, after=after, limit=limit, order=order
    )
    data = [shown_item(item, include or ()) for item in page.items]
    return cursor_page(data, page.has_more)


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))
