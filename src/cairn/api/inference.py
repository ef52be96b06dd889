"""The OpenAI inference API: models, chat completions, completions and embeddings, as the ``openai``
client and Llama Stack's clients call them (``/v1`` and ``/v1/openai/v1``), and Llama Stack's
registration of a tenant's own models. Llama Stack's ``/v1/providers`` lists the providers
(``system``); stored chat completions are read back through ``stored_completions``.

A streamed answer is server-sent events in OpenAI's shape, ending with ``data: [DONE]``; an error after
the first event is one ``data: {"error": …}`` event in OpenAI's envelope, then the end."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from ..core.errors import CairnError, InvalidInput
from ..core.inference.catalog import Model
from ..core.ports.inference import Json, ModelType
from ..core.ratelimit import RouteClass
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses, status_for
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .inference_requests import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    RegisterModelRequest,
)
from .ratelimit import MeterDep, charged_as
from .render import json_response
from .sse import DONE, EventStreamResponse, frame

router = APIRouter(
    route_class=FrontDoorRoute, tags=["Inference"], responses=error_responses(400, 401, 404, 503)
)


class ModelObject(BaseModel):
    """OpenAI's model object, with Llama Stack's fields beside it so both kinds of client read it."""

    id: str
    object: Literal["model"] = "model"
    type: Literal["model"] = "model"
    created: int
    owned_by: str
    identifier: str
    provider_id: str
    provider_resource_id: str
    model_type: Literal["llm", "embedding"]
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


def model_object(model: Model) -> dict[str, Any]:
    metadata = dict(model.metadata)
    if model.context_length is not None:
        metadata["context_length"] = model.context_length
    if model.dimension is not None:
        metadata["embedding_dimension"] = model.dimension
    return {
        "id": model.identifier,
        "object": "model",
        "type": "model",
        "created": model.created,
        "owned_by": model.provider_id,
        "identifier": model.identifier,
        "provider_id": model.provider_id,
        "provider_resource_id": model.provider_model_id,
        "model_type": model.model_type.value,
        "metadata": metadata,
    }


@router.get("/models", response_model=ModelList, summary="List models")
@charged_as(None)  # discovery, like /v1/version: clients ask before every session
async def list_models(services: ServicesDep, principal: PrincipalDep) -> Response:
    models = await services.inference.catalog.list(principal.tenant)
    return json_response({"object": "list", "data": [model_object(model) for model in models]})


@router.get("/models/{model_id:path}", response_model=ModelObject, summary="Retrieve a model")
@charged_as(None)
async def retrieve_model(model_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    return json_response(
        model_object(await services.inference.catalog.get(model_id, tenant=principal.tenant))
    )


@router.post(
    "/models",
    response_model=ModelObject,
    summary="Register a model (Llama Stack)",
    responses=error_responses(409),
)
@charged_as(RouteClass.UPLOADS)  # a write that keeps a row, as an upload does
async def register_model(
    body: RegisterModelRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Name, for this tenant alone, a model a provider serves; requests naming it reach that model."""
    model = await services.inference.catalog.register(
        principal.tenant,
        body.model_id,
        provider_model_id=body.provider_model_id,
        provider_id=body.provider_id,
        model_type=None if body.model_type is None else ModelType(body.model_type),
        metadata=body.metadata or {},
    )
    return json_response(model_object(model))


@router.delete("/models/{model_id:path}", status_code=204, summary="Unregister a model (Llama Stack)")
@charged_as(RouteClass.DELETIONS)
async def unregister_model(model_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Remove a model this tenant registered; the providers' own models stay."""
    await services.inference.catalog.unregister(principal.tenant, model_id)
    return Response(status_code=204)


def _stream_error(exc: Exception) -> bytes:
    if isinstance(exc, CairnError):
        status, message, code, param = status_for(exc), exc.message, exc.code, exc.param
    else:
        status, message, code, param = 500, "The model failed while answering.", "internal_error", None
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return frame({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _event(chunk: Json | None) -> bytes:
    return DONE if chunk is None else frame(chunk)


def _event_stream(request: Request, chunks: AsyncGenerator[Json, None]) -> EventStreamResponse:
    """The chunks as server-sent events. OpenAI's stream ends with ``data: [DONE]``; Llama Stack's (its
    routes under ``/v1/openai/v1``) ends without, and its client fails on one."""
    done = LLAMA_STACK_PREFIX + "/" not in request.url.path.lower()

    async def events() -> AsyncIterator[Json | None]:
        async with contextlib.aclosing(chunks):  # closing the events closes the model's work
            async for chunk in chunks:
                yield chunk
        if done:
            yield None

    return EventStreamResponse(events(), _event, render_error=_stream_error)


@router.post("/chat/completions", summary="Create a chat completion")
@charged_as(RouteClass.INFERENCE)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, meter: MeterDep
) -> Response:
    """``store: true`` keeps the completion (a stream only once it ran to its end) for
    ``GET /v1/chat/completions``; by default nothing is kept, as with OpenAI."""
    if body.stream:
        return _event_stream(request, meter.stream(services.inference.chat_stream, body.for_router()))
    return json_response(await meter.whole(services.inference.chat, body.for_router()))


@router.post("/completions", summary="Create a completion (legacy)")
@charged_as(RouteClass.INFERENCE)
async def create_completion(
    body: CompletionRequest, request: Request, services: ServicesDep, meter: MeterDep
) -> Response:
    if body.stream:
        return _event_stream(request, meter.stream(services.inference.complete_stream, body.for_router()))
    return json_response(await meter.whole(services.inference.complete, body.for_router()))


@router.post("/embeddings", summary="Create embeddings")
@charged_as(RouteClass.INFERENCE)
async def create_embeddings(body: EmbeddingRequest, services: ServicesDep, meter: MeterDep) -> Response:
    model = await services.inference.catalog.get(body.model, ModelType.EMBEDDING, tenant=meter.tenant)
    if body.dimensions is not None and body.dimensions != model.dimension:
        raise InvalidInput(
            f"The model `{model.identifier}` gives {model.dimension} dimensions and cannot shorten them.",
            param="dimensions",
        )
    model, embedded = await services.inference.embed(model.identifier, body.inputs(), meter.tenant)
    await meter.spend(embedded.prompt_tokens)
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, body.encoding_format)}
        for index, vector in enumerate(embedded.vectors)
    ]
    usage = {"prompt_tokens": embedded.prompt_tokens, "total_tokens": embedded.prompt_tokens}
    return json_response({"object": "list", "data": data, "model": model.identifier, "usage": usage})


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))
