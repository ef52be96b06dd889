"""OpenAI's Vector Stores API (``client.vector_stores``: stores, search, files, file batches), under
``/v1`` and Llama Stack's ``/v1/openai/v1``, on the vector store service (``core.vectors.stores``).

Any Cairn object can be attached by its id, whatever face it came through. Attaching answers at once
with the file ``in_progress``; its ingestion runs as a durable job. A search answers OpenAI's
``vector_store.search_results.page``; ``next_page`` is a token to send back as ``page`` with the same
query for the page after."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from starlette.responses import Response

from ..core.errors import InvalidInput
from ..core.ratelimit import RouteClass
from ..core.records import FileCounts, Page, VectorFileStatus, VectorStoreFileRecord
from ..core.vectors.search import SearchPage
from ..core.vectors.stores import MAX_PAGE, FileBatch, FileSpec, VectorStore
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .ratelimit import charged_as
from .render import cursor_page, json_response
from .vector_store_requests import (
    AttachFileRequest,
    CreateFileBatchRequest,
    CreateVectorStoreRequest,
    SearchRequest,
    UpdateFileRequest,
    UpdateVectorStoreRequest,
)

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/vector_stores",
    tags=["Vector stores"],
    responses=error_responses(400, 401, 404, 503),
)

Id = r"^[A-Za-z0-9_-]{1,128}$"
StoreId = Annotated[str, Path(pattern=Id)]
FileId = Annotated[str, Path(pattern=Id)]
BatchId = Annotated[str, Path(pattern=Id)]
Cursor = Annotated[str | None, Query(pattern=Id, description="An id from the previous page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"1 to {MAX_PAGE}.")]
OrderQuery = Annotated[Literal["asc", "desc"], Query(description="By creation time.")]
StatusFilter = Annotated[
    Literal["in_progress", "completed", "failed", "cancelled"] | None,
    Query(description="Only the files in this state."),
]


@dataclass(frozen=True)
class FileListing:
    """The query of a list of files, as the service takes it."""

    status: VectorFileStatus | None
    after: str | None
    before: str | None
    limit: int
    order: Literal["asc", "desc"]


def file_listing(
    after: Cursor = None,
    before: Cursor = None,
    limit: Limit = 20,
    order: OrderQuery = "desc",
    filter: StatusFilter = None,
) -> FileListing:
    return FileListing(None if filter is None else VectorFileStatus(filter), after, before, limit, order)


FileListingDep = Annotated[FileListing, Depends(file_listing)]


def _counts(counts: FileCounts) -> dict[str, int]:
    return {
        "in_progress": counts.in_progress,
        "completed": counts.completed,
        "failed": counts.failed,
        "cancelled": counts.cancelled,
        "total": counts.total,
    }


def store_object(store: VectorStore) -> dict[str, Any]:
    record = store.record
    expires_after = None
    if record.expires_after_days is not None:
        expires_after = {"anchor": "last_active_at", "days": record.expires_after_days}
    described = {} if record.description is None else {"description": record.description}
    return {
        "id": record.id,
        "object": "vector_store",
        "created_at": record.created_at,
        "name": record.name,
        "usage_bytes": store.usage_bytes,
        "file_counts": _counts(store.file_counts),
        "status": store.status,
        "expires_after": expires_after,
        "expires_at": record.expires_at,
        "last_active_at": record.last_active_at,
        "metadata": record.metadata,
        **described,
    }


def file_object(file: VectorStoreFileRecord) -> dict[str, Any]:
    return {
        "id": file.file_id,
        "object": "vector_store.file",
        "usage_bytes": file.usage_bytes,
        "created_at": file.created_at,
        "vector_store_id": file.store_id,
        "status": file.status.value,
        "last_error": file.last_error,
        "chunking_strategy": file.chunking_strategy,
        "attributes": file.attributes,
    }


def batch_object(batch: FileBatch) -> dict[str, Any]:
    return {
        "id": batch.record.id,
        "object": "vector_store.files_batch",
        "created_at": batch.record.created_at,
        "vector_store_id": batch.record.store_id,
        "status": batch.status,
        "file_counts": _counts(batch.file_counts),
    }


def search_page_object(page: SearchPage) -> dict[str, Any]:
    return {
        "object": "vector_store.search_results.page",
        "search_query": page.search_query,
        "data": [
            {
                "file_id": hit.file_id,
                "filename": hit.filename,
                "score": hit.score,
                "attributes": hit.attributes,
                "content": [{"type": "text", "text": hit.text}],
            }
            for hit in page.hits
        ],
        "has_more": page.has_more,
        "next_page": page.next_page,
    }


def _files(page: Page[VectorStoreFileRecord]) -> Response:
    return cursor_page([file_object(file) for file in page.items], page.has_more)


# Stores


@router.post("", summary="Create a vector store")
async def create_vector_store(
    body: CreateVectorStoreRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Llama Stack's ``embedding_model``, ``embedding_dimension`` and ``provider_id`` may be given too
    (``extra_body``); the store embeds with that model, by default the configured one, for its life."""
    vector_stores = services.vector_stores
    if body.provider_id is not None and body.provider_id != vector_stores.index.provider_id:
        raise InvalidInput(
            f"No vector provider '{body.provider_id}': this server's is '{vector_stores.index.provider_id}'.",
            param="provider_id",
        )
    store = await vector_stores.create(
        principal.tenant,
        name=body.name,
        description=body.description,
        metadata=body.metadata,
        expires_after=body.expires_after,
        file_ids=body.file_ids,
        chunking_strategy=body.chunking_strategy,
        embedding_model=body.embedding_model,
        embedding_dimension=body.embedding_dimension,
    )
    return json_response(store_object(store))


@router.get("", summary="List vector stores")
async def list_vector_stores(
    services: ServicesDep,
    principal: PrincipalDep,
    after: Cursor = None,
    before: Cursor = None,
    limit: Limit = 20,
    order: OrderQuery = "desc",
) -> Response:
    page = await services.vector_stores.list(
        principal.tenant, after=after, before=before, limit=limit, order=order
    )
    return cursor_page([store_object(store) for store in page.items], page.has_more)


@router.get("/{vector_store_id}", summary="Retrieve a vector store")
async def retrieve_vector_store(
    vector_store_id: StoreId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response(store_object(await services.vector_stores.get(principal.tenant, vector_store_id)))


@router.post("/{vector_store_id}", summary="Modify a vector store")
@charged_as(RouteClass.UPLOADS)
async def modify_vector_store(
    vector_store_id: StoreId, body: UpdateVectorStoreRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """What is left out stays; ``expires_after: null`` makes the store never expire."""
    store = await services.vector_stores.update(
        principal.tenant,
        vector_store_id,
        name=body.name,
        metadata=body.metadata,
        expires_after=body.expires_after if "expires_after" in body.model_fields_set else ...,
    )
    return json_response(store_object(store))


@router.delete("/{vector_store_id}", summary="Delete a vector store")
async def delete_vector_store(
    vector_store_id: StoreId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The store, its chunks and its attachments go; the files themselves stay."""
    await services.vector_stores.delete(principal.tenant, vector_store_id)
    return json_response({"id": vector_store_id, "object": "vector_store.deleted", "deleted": True})


@router.post("/{vector_store_id}/search", summary="Search a vector store")
@charged_as(RouteClass.INFERENCE)  # the query is embedded by a model (and rewritten, if asked)
async def search_vector_store(
    vector_store_id: StoreId, body: SearchRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """``search_mode`` (Llama Stack's) is ``vector`` (the default), ``keyword`` or ``hybrid``; scores lie
    in [0, 1] in every mode. ``ranking_options.ranker`` is ``auto``, ``default-2024-11-15``,
    ``weighted`` or ``rrf``; ``hybrid_search`` weighs a hybrid search's two lists."""
    page = await services.vector_stores.search(
        principal.tenant,
        vector_store_id,
        body.query,
        filters=body.filters,
        max_num_results=body.max_num_results,
        ranking_options=body.ranking_options,
        rewrite_query=body.rewrite_query,
        search_mode=body.search_mode,
        page=body.page,
    )
    return json_response(search_page_object(page))


# Files


@router.post("/{vector_store_id}/files", summary="Attach a file to a vector store")
async def attach_file(
    vector_store_id: StoreId, body: AttachFileRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Answers at once, ``in_progress``; the file is extracted, chunked and embedded by a durable job.
    Attaching a file that is already attached changes nothing."""
    file = await services.vector_stores.attach_file(
        principal.tenant,
        vector_store_id,
        body.file_id,
        attributes=body.attributes,
        chunking_strategy=body.chunking_strategy,
    )
    return json_response(file_object(file))


@router.get("/{vector_store_id}/files", summary="List a vector store's files")
async def list_files(
    vector_store_id: StoreId, listing: FileListingDep, services: ServicesDep, principal: PrincipalDep
) -> Response:
    page = await services.vector_stores.list_files(principal.tenant, vector_store_id, **asdict(listing))
    return _files(page)


@router.get("/{vector_store_id}/files/{file_id}", summary="Retrieve a vector store file")
async def retrieve_file(
    vector_store_id: StoreId, file_id: FileId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response(
        file_object(await services.vector_stores.get_file(principal.tenant, vector_store_id, file_id))
    )


@router.post("/{vector_store_id}/files/{file_id}", summary="Update a vector store file's attributes")
@charged_as(RouteClass.UPLOADS)
async def update_file(
    vector_store_id: StoreId,
    file_id: FileId,
    body: UpdateFileRequest,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    """The attributes, in place of the old (null: none); searches filter on them at once."""
    file = await services.vector_stores.update_file_attributes(
        principal.tenant, vector_store_id, file_id, body.attributes
    )
    return json_response(file_object(file))


@router.delete("/{vector_store_id}/files/{file_id}", summary="Detach a file from a vector store")
async def detach_file(
    vector_store_id: StoreId, file_id: FileId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Its chunks leave the store; the file itself stays (``DELETE /v1/files/{id}`` deletes it, and
    detaches it from every store)."""
    await services.vector_stores.detach_file(principal.tenant, vector_store_id, file_id)
    return json_response({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})


@router.get("/{vector_store_id}/files/{file_id}/content", summary="Retrieve a vector store file's text")
async def file_content(
    vector_store_id: StoreId, file_id: FileId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """The text the ingestion extracted from the file, as one page."""
    text = await services.vector_stores.file_content(principal.tenant, vector_store_id, file_id)
    return json_response(
        {
            "object": "vector_store.file_content.page",
            "data": [{"type": "text", "text": text}],
            "has_more": False,
            "next_page": None,
        }
    )


# Batches


@router.post("/{vector_store_id}/file_batches", summary="Attach a batch of files")
async def create_file_batch(
    vector_store_id: StoreId, body: CreateFileBatchRequest, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """``file_ids`` with one ``attributes`` and ``chunking_strategy`` for all, or ``files`` each with
    its own: up to 2,000 files, all checked before any is attached."""
    files = None
    if body.files is not None:
        files = [FileSpec(f.file_id, f.attributes, f.chunking_strategy) for f in body.files]
    batch = await services.vector_stores.create_batch(
        principal.tenant,
        vector_store_id,
        file_ids=body.file_ids,
        files=files,
        attributes=body.attributes,
        chunking_strategy=body.chunking_strategy,
    )
    return json_response(batch_object(batch))


@router.get("/{vector_store_id}/file_batches/{batch_id}", summary="Retrieve a file batch")
async def retrieve_file_batch(
    vector_store_id: StoreId, batch_id: BatchId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    return json_response(
        batch_object(await services.vector_stores.get_batch(principal.tenant, vector_store_id, batch_id))
    )


@router.post("/{vector_store_id}/file_batches/{batch_id}/cancel", summary="Cancel a file batch")
@charged_as(RouteClass.DELETIONS)
async def cancel_file_batch(
    vector_store_id: StoreId, batch_id: BatchId, services: ServicesDep, principal: PrincipalDep
) -> Response:
    """Its files not yet ingested end ``cancelled``; those done stay."""
    batch = await services.vector_stores.cancel_batch(principal.tenant, vector_store_id, batch_id)
    return json_response(batch_object(batch))


@router.get("/{vector_store_id}/file_batches/{batch_id}/files", summary="List a file batch's files")
async def list_batch_files(
    vector_store_id: StoreId,
    batch_id: BatchId,
    listing: FileListingDep,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    page = await services.vector_stores.list_batch_files(
        principal.tenant, vector_store_id, batch_id, **asdict(listing)
    )
    return _files(page)


FACE = Face(router, prefixes=("/v1", LLAMA_STACK_PREFIX))
