"""Llama Stack's vector-io (``client.vector_io``): ``POST /v1/vector-io/insert`` and
``POST /v1/vector-io/query`` on the tenant's vector stores, through the service of
``core.vectors.raw_chunks`` (which says how inserted chunks live in a store).

``vector_db_id`` names a store made with ``POST /v1/vector_stores`` (``vector_store_id`` is taken as its
synonym). A chunk's ``content`` is a string or text parts (joined by a space, as Llama Stack joins them);
an image is refused, as a store holds text. Newer clients' ``stored_chunk_id`` is taken as ``chunk_id``.
Bodies are checked for shape and size here; unknown fields are refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..core.errors import InvalidInput
from ..core.ratelimit import RouteClass
from ..core.vectors.raw_chunks import (
    DEFAULT_ALPHA,
    DEFAULT_CHUNKS,
    MAX_CHUNK_CHARS,
    MAX_CHUNK_ID_CHARS,
    MAX_CHUNKS,
    QueriedChunk,
    RawChunk,
)
from ..core.vectors.search import MAX_QUERY_CHARS, MAX_RESULTS, RRF_K
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .ratelimit import charged_as
from .render import json_response

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/vector-io",
    tags=["Vector IO"],
    responses=error_responses(400, 401, 404, 503),
)

MAX_PARTS = 64  # text parts of one content
MAX_DIMENSION = 65_536
MAX_METADATA_KEYS = 64

StoreId = Annotated[str, Field(min_length=1, max_length=128)]
ChunkId = Annotated[str, Field(min_length=1, max_length=MAX_CHUNK_ID_CHARS)]
Metadata = Annotated[dict[Annotated[str, Field(max_length=256)], Any], Field(max_length=MAX_METADATA_KEYS)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Closed):
    type: Literal["text"]
    text: Annotated[str, Field(max_length=MAX_CHUNK_CHARS)]


class ImagePart(_Closed):
    """Read only to be refused by name."""

    type: Literal["image"]
    image: dict[str, Any]


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]
Content = (
    Annotated[str, Field(max_length=MAX_CHUNK_CHARS)]
    | Part
    | Annotated[list[Part], Field(max_length=MAX_PARTS)]
)

QueryContent = (
    Annotated[str, Field(max_length=MAX_QUERY_CHARS)]
    | Part
    | Annotated[list[Part], Field(max_length=MAX_PARTS)]
)


class Chunk(_Closed):
    content: Content
    metadata: Metadata = {}
    embedding: Annotated[list[float], Field(min_length=1, max_length=MAX_DIMENSION)] | None = None
    chunk_id: ChunkId | None = None
    stored_chunk_id: ChunkId | None = None
    chunk_metadata: Metadata | None = None


class _OfStore(_Closed):
    vector_db_id: StoreId | None = None
    vector_store_id: StoreId | None = None

    def store_id(self) -> str:
        names = {name for name in (self.vector_db_id, self.vector_store_id) if name is not None}
        if len(names) != 1:
            raise InvalidInput("Name the vector store once, as vector_db_id.", param="vector_db_id")
        return names.pop()


class InsertRequest(_OfStore):
    chunks: Annotated[list[Chunk], Field(max_length=MAX_CHUNKS)]
    ttl_seconds: int | None = None
    """Refused: chunks stay until their document is inserted again or detached, or the store deleted."""


class RRFRanker(_Closed):
    type: Literal["rrf"]
    impact_factor: float = RRF_K


class WeightedRanker(_Closed):
    type: Literal["weighted"]
    alpha: Annotated[float, Field(ge=0, le=1)] = DEFAULT_ALPHA
    """The weight of the vector score; the keyword score has ``1 - alpha``."""


class QueryParams(_Closed):
    max_chunks: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = DEFAULT_CHUNKS
    mode: Literal["vector", "keyword", "hybrid"] | None = None
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0
    ranker: Annotated[RRFRanker | WeightedRanker, Field(discriminator="type")] | None = None


class QueryRequest(_OfStore):
    query: QueryContent
    params: QueryParams | None = None


def _text(content: str | TextPart | ImagePart | list[TextPart | ImagePart], param: str) -> str:
    """A string, or the text parts joined by a space; an image is refused."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = [part.text for part in parts if isinstance(part, TextPart)]
    if len(texts) < len(parts):
        raise InvalidInput(
            "Images are not supported: a vector store holds text. Give the content as text.", param=param
        )
    return " ".join(texts)


def _chunk_id(chunk: Chunk, param: str) -> str | None:
    if chunk.chunk_id and chunk.stored_chunk_id and chunk.chunk_id != chunk.stored_chunk_id:
        raise InvalidInput("chunk_id and stored_chunk_id differ: give one.", param=param)
    return chunk.chunk_id or chunk.stored_chunk_id


def _chunk_object(chunk: QueriedChunk) -> dict[str, Any]:
    shown: dict[str, Any] = {"content": chunk.text, "metadata": chunk.metadata, "chunk_id": chunk.chunk_id}
    if chunk.chunk_metadata is not None:
        shown["chunk_metadata"] = chunk.chunk_metadata
    return shown


@router.post("/insert", summary="Insert chunks into a vector store")
@charged_as(RouteClass.INFERENCE)  # chunks without an embedding are embedded by a model
async def insert_chunks(body: InsertRequest, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Each chunk names its document in ``metadata.document_id``; the chunks an insert gives for a
    document replace that document's chunks. Chunks without an ``embedding`` are embedded with the
    store's model; one that has an embedding must have the store's dimension."""
    chunks = [
        RawChunk(
            text=_text(chunk.content, f"chunks[{at}].content"),
            metadata=chunk.metadata,
            embedding=chunk.embedding,
            chunk_id=_chunk_id(chunk, f"chunks[{at}].chunk_id"),
            chunk_metadata=chunk.chunk_metadata,
        )
        for at, chunk in enumerate(body.chunks)
    ]
    await services.vector_io.insert(principal.tenant, body.store_id(), chunks, ttl_seconds=body.ttl_seconds)
    return json_response(None)


@router.post("/query", summary="Query a vector store's chunks")
@charged_as(RouteClass.INFERENCE)  # the query is embedded by a model
async def query_chunks(body: QueryRequest, services: ServicesDep, principal: PrincipalDep) -> Response:
    """``params``: ``max_chunks`` (1 to 50, default 3), ``mode`` (``vector``, the default, ``keyword``
    or ``hybrid``), ``score_threshold`` (scores lie in [0, 1] in every mode) and, for ``hybrid``,
    ``ranker``: ``{"type": "rrf"}`` (the default) or ``{"type": "weighted", "alpha": a}``. Every chunk
    of the store is searched, those of its attached files too."""
    params = body.params or QueryParams()
    ranker = params.ranker or RRFRanker(type="rrf")
    found = await services.vector_io.query(
        principal.tenant,
        body.store_id(),
        _text(body.query, "query"),
        max_chunks=params.max_chunks,
        mode=params.mode or "vector",
        score_threshold=params.score_threshold,
        ranker=ranker.type,
        alpha=ranker.alpha if isinstance(ranker, WeightedRanker) else DEFAULT_ALPHA,
        impact_factor=ranker.impact_factor if isinstance(ranker, RRFRanker) else RRF_K,
    )
    return json_response(
        {"chunks": [_chunk_object(chunk) for chunk in found], "scores": [chunk.score for chunk in found]}
    )


FACE = Face(router, prefixes=("/v1",))
