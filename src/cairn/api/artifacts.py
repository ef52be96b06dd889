"""The Artifacts API: keyed objects (``runs/42/out.csv``) in the tenant's bucket ``artifacts``, uploaded
through resumable upload sessions. Every artifact is also a file: ``/v1/files/{id}/content`` serves it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..core.errors import CairnError, InvalidInput
from ..core.keys import clean_mime_type, validate_key
from ..core.ratelimit import RouteClass
from ..core.records import ObjectRecord, UploadSession
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses, status_for
from .faces import Face
from .front_door import FrontDoorRoute
from .ratelimit import charged_as
from .render import json_response, key_listing_response
from .upload_sessions import append_body, offset_headers

BUCKET = "artifacts"
RESERVED = ("sessions", "bulk")
MAX_LIST_LIMIT = 1000

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/v1/artifacts",
    tags=["Artifacts"],
    responses=error_responses(400, 401, 404, 503),
)


class CreateUpload(BaseModel):
    model_config = ConfigDict(strict=True)

    key: str = Field(description="Where the artifact will live, e.g. 'runs/42/out.csv'.")
    mime_type: str
    size: int = Field(ge=0, description="Exact size in bytes; 0 completes at once.")
    sha256: str | None = Field(None, description="Hex digest the bytes must match at completion.")


class UploadStatus(BaseModel):
    id: str
    uri: str
    offset: int
    size: int
    key: str
    mime_type: str
    expires_at: int


class Artifact(BaseModel):
    id: str
    key: str
    mime_type: str
    uri: str
    size: int
    created_at: int
    sha256: str


class ArtifactList(BaseModel):
    data: list[Artifact]
    prefixes: list[str]
    has_more: bool
    url: str | None


class BulkKey(BaseModel):
    key: str


class BulkDelete(BaseModel):
    artifacts: list[BulkKey] = Field(min_length=1, max_length=1000)


def artifact(record: ObjectRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "key": record.key,
        "mime_type": record.mime_type,
        "uri": f"/v1/files/{record.id}/content",
        "size": record.bytes,
        "created_at": record.created_at,
        "sha256": record.sha256,
    }


def upload_status(session: UploadSession, offset: int) -> dict[str, Any]:
    return {
        "id": session.id,
        "uri": f"/v1/artifacts/sessions/{session.id}",
        "offset": offset,
        "size": session.size,
        "key": session.key,
        "mime_type": session.mime_type,
        "expires_at": session.expires_at,
    }


@router.post(
    "", response_model=UploadStatus, summary="Start an artifact upload", responses=error_responses(413, 507)
)
async def create_upload(body: CreateUpload, services: ServicesDep, principal: PrincipalDep) -> Response:
    mime_type = clean_mime_type(body.mime_type)
    if mime_type is None:
        raise InvalidInput("mime_type must look like 'type/subtype'.", param="mime_type")
    result = await services.uploads.create(
        tenant=principal.tenant,
        bucket=BUCKET,
        key=validate_key(body.key, reserved=RESERVED),
        mime_type=mime_type,
        size=body.size,
        sha256=body.sha256,
    )
    return json_response(upload_status(result.session, result.offset), headers=offset_headers(result.offset))


@router.post(
    "/sessions/{upload_id}",
    response_model=Artifact | None,
    summary="Append bytes to an upload",
    description="The raw body is appended at the current offset, or where `Upload-Offset` or `Content-Range` "
    "say (409 with the current `Upload-Offset` if that is not the current offset). Answers the artifact once "
    "the upload is complete, `null` before.",
    responses=error_responses(408, 409, 413, 423, 507),
)
@charged_as(None)
async def append(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    result = await append_body(request, services, principal.tenant, BUCKET, upload_id)
    content = None if result.completed is None else artifact(result.completed)
    return json_response(content, headers=offset_headers(result.offset))


@router.get("/sessions/{upload_id}", response_model=UploadStatus, summary="An upload's offset")
async def get_upload(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    session, offset = await services.uploads.get(principal.tenant, BUCKET, upload_id)
    return json_response(upload_status(session, offset), headers=offset_headers(offset))


@router.delete("/sessions/{upload_id}", summary="Cancel an upload and drop its staged bytes")
async def cancel_upload(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    await services.uploads.cancel(principal.tenant, BUCKET, upload_id)
    return json_response({"id": upload_id, "deleted": True})


@router.post("/bulk", summary="Delete many artifacts; one result per key, never all or nothing")
@charged_as(RouteClass.DELETIONS)
async def bulk_delete(body: BulkDelete, services: ServicesDep, principal: PrincipalDep) -> Response:
    results = []
    for item in body.artifacts:
        try:
            await services.objects.delete_by_key(
                principal.tenant, BUCKET, validate_key(item.key, reserved=RESERVED)
            )
            results.append({"key": item.key, "deleted": True})
        except CairnError as exc:
            if status_for(exc) >= 500:
                raise
            results.append(
                {"key": item.key, "deleted": False, "error": {"code": exc.code, "message": exc.message}}
            )
    return json_response({"data": results})


@router.get("", response_model=ArtifactList, summary="List artifacts by key, optionally folder by folder")
async def list_artifacts(
    services: ServicesDep,
    principal: PrincipalDep,
    start_index: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    prefix: Annotated[str, Query(max_length=1024, pattern=r"^[A-Za-z0-9_.\-/]*$")] = "",
    delimiter: Annotated[str, Query(pattern=r"^/?$", description="'/' folds keys into folders.")] = "",
) -> Response:
    listing = await services.objects.list_keys(
        principal.tenant, BUCKET, prefix=prefix, delimiter=delimiter, start_index=start_index, limit=limit
    )
    return key_listing_response(
        listing,
        artifact,
        path="/v1/artifacts",
        start_index=start_index,
        limit=limit,
        prefix=prefix,
        delimiter=delimiter,
    )


@router.get("/{key:path}", response_model=Artifact, summary="An artifact's metadata")
async def get_artifact(key: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    record = await services.objects.get_by_key(principal.tenant, BUCKET, validate_key(key, reserved=RESERVED))
    return json_response(artifact(record))


@router.delete("/{key:path}", summary="Delete an artifact")
async def delete_artifact(key: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    await services.objects.delete_by_key(principal.tenant, BUCKET, validate_key(key, reserved=RESERVED))
    return json_response({"key": key, "deleted": True})


FACE = Face(router, cors_request_headers=("Upload-Offset",), cors_response_headers=("Upload-Offset",))
