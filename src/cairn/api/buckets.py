"""The Buckets API: keyed objects in any named bucket of the tenant, uploaded through upload sessions.
The bucket ``artifacts`` is the Artifacts API's, ``files`` the Files API's (keys there are file ids)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..core.errors import InvalidInput
from ..core.keys import clean_mime_type, validate_bucket, validate_object_key
from ..core.paths import validate_path_prefix
from ..core.records import ObjectRecord, UploadSession
from .deps import PrincipalDep, ServicesDep
from .errors import error_responses
from .faces import Face
from .front_door import FrontDoorRoute
from .ratelimit import charged_as
from .render import json_response, key_listing_response
from .upload_sessions import append_body, offset_headers

MAX_LIST_LIMIT = 1000

router = APIRouter(
    route_class=FrontDoorRoute,
    prefix="/v1/buckets",
    tags=["Buckets"],
    responses=error_responses(400, 401, 404, 503),
)


class CreateUpload(BaseModel):
    model_config = ConfigDict(strict=True)

    bucket: str = Field(description="a-zA-Z0-9_-, 1-64 characters.")
    key: str = Field(description="Where the object will live, e.g. 'runs/42/out.csv'.")
    mime_type: str
    size: int = Field(ge=0, description="Exact size in bytes; 0 completes at once.")


class UploadStatus(BaseModel):
    id: str
    url: str
    offset: int
    size: int


class BucketObject(BaseModel):
    bucket: str
    key: str
    mime_type: str
    url: str
    bytes: int
    created_at: int


class BucketList(BaseModel):
    data: list[dict[str, str]]


class ObjectList(BaseModel):
    data: list[BucketObject]
    prefixes: list[str]
    has_more: bool
    url: str | None


def bucket_object(record: ObjectRecord) -> dict[str, Any]:
    return {
        "bucket": record.bucket,
        "key": record.key,
        "mime_type": record.mime_type,
        "url": f"/v1/files/{record.id}/content",
        "bytes": record.bytes,
        "created_at": record.created_at,
    }


def upload_status(session: UploadSession, offset: int) -> dict[str, Any]:
    return {
        "id": session.id,
        "url": f"/v1/buckets/session:{session.id}",
        "offset": offset,
        "size": session.size,
    }


@router.post(
    "", response_model=UploadStatus, summary="Start an upload into a bucket", responses=error_responses(413)
)
async def create_upload(body: CreateUpload, services: ServicesDep, principal: PrincipalDep) -> Response:
    mime_type = clean_mime_type(body.mime_type)
    if mime_type is None:
        raise InvalidInput("mime_type must look like 'type/subtype'.", param="mime_type")
    result = await services.uploads.create(
        tenant=principal.tenant,
        bucket=validate_bucket(body.bucket),
        key=validate_object_key(body.key),
        mime_type=mime_type,
        size=body.size,
    )
    return json_response(upload_status(result.session, result.offset), headers=offset_headers(result.offset))


@router.post(
    "/session:{upload_id}",
    response_model=BucketObject | None,
    summary="Append bytes to an upload",
    description="As `POST /v1/artifacts/sessions/{id}`: the object once complete, `null` before.",
    responses=error_responses(408, 409, 413, 423),
)
@charged_as(None)
async def append(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    result = await append_body(request, services, principal.tenant, None, upload_id)
    content = None if result.completed is None else bucket_object(result.completed)
    return json_response(content, headers=offset_headers(result.offset))


@router.get("/session:{upload_id}", response_model=UploadStatus, summary="An upload's offset")
async def get_upload(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    session, offset = await services.uploads.get(principal.tenant, None, upload_id)
    return json_response(upload_status(session, offset), headers=offset_headers(offset))


@router.get("", response_model=BucketList, summary="The tenant's buckets that hold objects")
async def list_buckets(services: ServicesDep, principal: PrincipalDep) -> Response:
    return json_response(
        {"data": [{"name": name} for name in await services.objects.list_buckets(principal.tenant)]}
    )


@router.get("/{bucket}", response_model=ObjectList, summary="A bucket's objects in key order")
async def list_objects(
    bucket: str,
    services: ServicesDep,
    principal: PrincipalDep,
    start_index: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    prefix: Annotated[
        str, Query(description="Only keys that start with it; any characters a key may hold.")
    ] = "",
    delimiter: Annotated[str, Query(pattern=r"^/?$")] = "",
) -> Response:
    prefix = validate_path_prefix(prefix, param="prefix")
    listing = await services.objects.list_keys(
        principal.tenant,
        validate_bucket(bucket),
        prefix=prefix,
        delimiter=delimiter,
        start_index=start_index,
        limit=limit,
    )
    return key_listing_response(
        listing,
        bucket_object,
        path=f"/v1/buckets/{bucket}",
        start_index=start_index,
        limit=limit,
        prefix=prefix,
        delimiter=delimiter,
    )


@router.get("/{bucket}/{key:path}", response_model=BucketObject, summary="An object's metadata")
async def get_object(bucket: str, key: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    record = await services.objects.get_by_key(
        principal.tenant, validate_bucket(bucket), validate_object_key(key)
    )
    return json_response(bucket_object(record))


@router.delete("/{bucket}/{key:path}", response_model=BucketObject, summary="Delete an object")
async def delete_object(bucket: str, key: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    record = await services.objects.delete_by_key(
        principal.tenant, validate_bucket(bucket), validate_object_key(key)
    )
    return json_response(bucket_object(record))


FACE = Face(router, cors_request_headers=("Upload-Offset",), cors_response_headers=("Upload-Offset",))
