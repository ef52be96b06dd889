"""The OpenAI Files API: objects in the tenant's bucket ``files``, keyed by object id."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from ..core.errors import InvalidInput
from ..core.files import BUCKET, EXPIRES_MAX_SECONDS, EXPIRES_MIN_SECONDS, UPLOAD_PURPOSES, purpose_of
from ..core.keys import sanitize_filename
from ..core.objects import StagedBlob
from ..core.records import ObjectRecord
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import LLAMA_STACK_PREFIX, FrontDoorRoute
from .http import DOWNLOAD_HEADERS_READ, object_download
from .multipart import FilePart, upload_form
from .openai_objects import FileObject, file_object
from .render import cursor_page, json_response

LISTED_PURPOSES = (*UPLOAD_PURPOSES, "assistants_output", "batch_output", "fine-tune-results")
MAX_LIMIT = 10_000

router = APIRouter(route_class=FrontDoorRoute, tags=["Files"], responses=error_responses(400, 401, 404, 503))


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def _expires_after(fields: dict[str, str]) -> int | None:
    """Seconds from ``expires_after``, sent as a JSON string or as bracket fields."""
    if "expires_after" in fields:
        try:
            value = json.loads(fields["expires_after"])
        except ValueError as exc:
            raise InvalidInput("expires_after must be a JSON object.", param="expires_after") from exc
        if not isinstance(value, dict):
            raise InvalidInput("expires_after must be a JSON object.", param="expires_after")
        anchor, seconds = value.get("anchor"), value.get("seconds")
    elif "expires_after[anchor]" in fields or "expires_after[seconds]" in fields:
        anchor, seconds = fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
    else:
        return None
    if anchor != "created_at":
        raise InvalidInput("expires_after.anchor must be 'created_at'.", param="expires_after.anchor")
    try:
        seconds = int(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            "expires_after.seconds must be an integer.", param="expires_after.seconds"
        ) from exc
    if not EXPIRES_MIN_SECONDS <= seconds <= EXPIRES_MAX_SECONDS:
        raise InvalidInput(
            f"expires_after.seconds must be between {EXPIRES_MIN_SECONDS} and {EXPIRES_MAX_SECONDS}.",
            param="expires_after.seconds",
        )
    return seconds


_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES)},
                        "expires_after": {
                            "type": "string",
                            "description": 'JSON {"anchor": "created_at", "seconds": 3600..2592000}; '
                            "bracket fields expires_after[anchor] / expires_after[seconds] are accepted too.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/files",
    response_model=FileObject,
    openapi_extra=_MULTIPART_BODY,
    summary="Upload a file",
    responses=error_responses(408, 413, 507),
)
async def create_file(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """Streams the multipart body into storage: the file is never held in memory or spooled whole.
    At `/v1/files`, a body sent as `application/json` starts a bucket upload instead (`POST /v1/buckets`)."""

    def check(part: FilePart, fields_so_far: dict[str, str]) -> None:
        sanitize_filename(part.filename)
        if "purpose" in fields_so_far:
            purpose_of(fields_so_far)
        _expires_after(fields_so_far)

    async def store(fields: dict[str, str], upload: FilePart, staged: StagedBlob) -> ObjectRecord:
        filename = sanitize_filename(upload.filename)
        return await services.objects.commit(
            staged,
            tenant=principal.tenant,
            bucket=BUCKET,
            filename=filename,
            mime_type=upload.mime_type(filename),
            purpose=purpose_of(fields),
            expires_after=_expires_after(fields),
        )

    return json_response(file_object(await upload_form(request, services, check=check, store=store)))


@router.get("/files", response_model=FileList, summary="List files")
async def list_files(
    services: ServicesDep,
    principal: PrincipalDep,
    after: Annotated[
        str | None, Query(description="Object id to continue after.", pattern=r"^[A-Za-z0-9_-]{1,128}$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
    order: Annotated[Literal["asc", "desc"], Query(description="By creation time.")] = "desc",
    purpose: Annotated[str | None, Query()] = None,
) -> Response:
    if purpose is not None and purpose not in LISTED_PURPOSES:
        raise InvalidInput(f"Invalid value for 'purpose': '{purpose}'.", param="purpose")
    page = await services.objects.list(
        principal.tenant, BUCKET, purpose=purpose, after=after, limit=limit, order=order
    )
    data = [file_object(record) for record in page.items]
    return cursor_page(data, page.has_more)


@router.get("/files/{file_id}", response_model=FileObject, summary="Retrieve a file")
async def retrieve_file(file_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    return json_response(file_object(await services.objects.get(principal.tenant, None, file_id)))


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete a file")
async def delete_file(file_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    record = await services.objects.delete(principal.tenant, None, file_id)  # any of the tenant's objects
    return json_response({"id": record.id, "object": "file", "deleted": True})


_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"*/*": {}}, "description": "The bytes, with the media type given at upload."},
    206: {"description": "One byte range (Range: bytes=a-b)."},
    304: {"description": "If-None-Match matched the ETag (the sha256)."},
    416: {"description": "Range not satisfiable."},
}


@router.get(
    "/files/{file_id}/content",
    summary="Download a file's bytes",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
)
@router.head(
    "/files/{file_id}/content",
    summary="A file's download headers",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
)
async def file_content(
    file_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    record = await services.objects.get(principal.tenant, None, file_id)  # artifacts download here too
    return await object_download(request, services.objects, record)


FACE = Face(
    router,
    prefixes=("/v1", LLAMA_STACK_PREFIX),
    cors_response_headers=DOWNLOAD_HEADERS_READ,
)
