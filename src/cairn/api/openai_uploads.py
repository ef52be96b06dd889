"""The OpenAI Uploads API: a large file arrives as parts (up to 64 MiB each, in parallel, in any order),
then ``complete`` joins them in the order given into one Files API file. Parts and joining are the upload
session engine's; this face speaks OpenAI's objects and statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..core.errors import InvalidInput, TooLarge, UploadCompleted
from ..core.files import BUCKET, EXPIRES_MAX_SECONDS, EXPIRES_MIN_SECONDS, UPLOAD_PURPOSES, purpose_of
from ..core.keys import clean_mime_type, sanitize_filename
from ..core.ratelimit import RouteClass
from ..core.records import ObjectRecord, UploadSession
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .http import body_chunks, declared_length
from .multipart import MAX_FORM_OVERHEAD_BYTES, FilePart, boundary_of, read_form
from .openai_objects import FileObject, file_object
from .ratelimit import charged_as
from .render import json_response

MAX_PART_BYTES = 64 << 20  # OpenAI's limit, and the openai client's default part size

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/uploads",
    tags=["Uploads"],
    responses=error_responses(400, 401, 404, 503),
)


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(strict=True)

    anchor: Literal["created_at"]
    seconds: int = Field(ge=EXPIRES_MIN_SECONDS, le=EXPIRES_MAX_SECONDS)


class CreateUpload(BaseModel):
    model_config = ConfigDict(strict=True)

    bytes: int = Field(ge=0, description="The exact size of the file.")
    filename: str
    mime_type: str
    purpose: str = Field(description=f"One of: {', '.join(UPLOAD_PURPOSES)}.")
    expires_after: ExpiresAfter | None = Field(None, description="How long the completed file lives.")


class CompleteUpload(BaseModel):
    model_config = ConfigDict(strict=True)

    part_ids: list[str] = Field(max_length=10_000, description="The parts, in the order they join.")
    md5: str | None = Field(None, description="Hex md5 of the whole file; checked before it appears.")


class UploadObject(BaseModel):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None


class UploadPart(BaseModel):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


def upload_object(session: UploadSession, status: str, file: ObjectRecord | None = None) -> dict[str, Any]:
    return {
        "id": session.id,
        "object": "upload",
        "bytes": session.size,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "filename": session.filename,
        "purpose": session.purpose,
        "status": status,
        "file": None if file is None else file_object(file),
    }


@router.post("", response_model=UploadObject, summary="Start an upload", responses=error_responses(413, 507))
async def create_upload(body: CreateUpload, services: ServicesDep, principal: PrincipalDep) -> Response:
    mime_type = clean_mime_type(body.mime_type)
    if mime_type is None:
        raise InvalidInput("mime_type must look like 'type/subtype'.", param="mime_type")
    result = await services.uploads.create(
        tenant=principal.tenant,
        bucket=BUCKET,
        key=None,
        mime_type=mime_type,
        size=body.bytes,
        filename=sanitize_filename(body.filename),
        purpose=purpose_of({"purpose": body.purpose}),
        object_expires_after=None if body.expires_after is None else body.expires_after.seconds,
        in_parts=True,
    )
    return json_response(upload_object(result.session, "pending"))


_PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/{upload_id}/parts",
    response_model=UploadPart,
    openapi_extra=_PART_BODY,
    summary="Add a part (at most 64 MiB)",
    description="Parts may arrive in parallel and in any order; `complete` says their order.",
    responses=error_responses(408, 409, 413, 507),
)
@charged_as(None)
async def add_part(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    length = declared_length(request)
    if length is not None and length > MAX_PART_BYTES + MAX_FORM_OVERHEAD_BYTES:
        raise TooLarge(f"A part may hold at most {MAX_PART_BYTES} bytes.")
    part_id: str | None = None

    async def on_file(_part: FilePart, _fields: dict[str, str], data: AsyncIterator[bytes]) -> None:
        nonlocal part_id
        part_id = await services.uploads.add_part(
            principal.tenant, BUCKET, upload_id, data, max_bytes=MAX_PART_BYTES
        )

    try:
        await read_form(
            body_chunks(request, services.settings.limits.idle_timeout),
            boundary_of(request.headers.get("content-type", "")),
            file_field="data",
            on_file=on_file,
        )
    except BaseException:
        if part_id is not None:  # the rest of the form failed: the client will send the part again
            with anyio.CancelScope(shield=True):
                await services.uploads.drop_part(upload_id, part_id)
        raise
    if part_id is None:
        raise InvalidInput("Missing required parameter: 'data'.", param="data")
    return json_response(
        {"id": part_id, "object": "upload.part", "created_at": services.objects.now(), "upload_id": upload_id}
    )


@router.post(
    "/{upload_id}/complete",
    response_model=UploadObject,
    summary="Join the parts into a file",
    description="`part_ids` in the order the bytes join; they must add up to the upload's `bytes`. "
    "A wrong `md5` or count leaves the parts in place for another try.",
    responses=error_responses(409, 423, 507),
)
@charged_as(None)
async def complete_upload(
    upload_id: str, body: CompleteUpload, services: ServicesDep, principal: PrincipalDep
) -> Response:
    session, _ = await services.uploads.get(principal.tenant, BUCKET, upload_id)
    if session.object_id is not None and session.size == 0 and not body.part_ids:
        record = await services.objects.get(
            principal.tenant, BUCKET, session.object_id
        )  # empty: done at once
    else:
        record = await services.uploads.complete_parts(
            principal.tenant, BUCKET, upload_id, body.part_ids, md5=body.md5
        )
    return json_response(upload_object(session, "completed", record))


@router.post(
    "/{upload_id}/cancel",
    response_model=UploadObject,
    summary="Cancel an upload; its parts are dropped",
    responses=error_responses(409, 423),
)
@charged_as(RouteClass.DELETIONS)
async def cancel_upload(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    session, _ = await services.uploads.get(principal.tenant, BUCKET, upload_id)
    if session.object_id is not None:
        raise UploadCompleted("This upload is already complete; delete its file instead.")
    await services.uploads.cancel(principal.tenant, BUCKET, upload_id)
    return json_response(upload_object(session, "cancelled"))


FACE = Face(router, prefixes=("/v1",))
