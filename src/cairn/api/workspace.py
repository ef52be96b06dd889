"""The workspace face, ``/api/v1/files``: upload into folders, list a folder, download a file or a whole
folder as a streamed zip. A view of the tenant's bucket ``workspace`` (``core.workspace``); every error
leaves as ``{"success": false, "error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from ..core.keys import sanitize_filename
from ..core.objects import StagedBlob
from ..core.records import ObjectRecord
from ..core.workspace import Workspace, folder_path
from ..core.zipstream import archive_size, stream_archive
from .deps import PrincipalDep, ServicesDep
from .errors import ERROR_MEANINGS
from .faces import Face
from .front_door import FrontDoorRoute
from .http import DOWNLOAD_HEADERS, DOWNLOAD_HEADERS_READ, content_disposition, object_download
from .multipart import FilePart, upload_form
from .render import json_response

MAX_LIST_LIMIT = 10_000


class WorkspaceErrorBody(BaseModel):
    code: str
    message: str


class WorkspaceError(BaseModel):
    success: Literal[False] = False
    error: WorkspaceErrorBody


def error_response(status: int, message: str, *, code: str, param: str | None = None) -> Response:
    """The workspace envelope: ``{"success": false, "error": {"code", "message"}}``."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"success": False, "error": {"code": code, "message": message}}
    return json_response(body, status_code=status, headers=headers)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": WorkspaceError, "description": ERROR_MEANINGS[status]} for status in statuses}


class WorkspaceRoute(FrontDoorRoute):
    render_error = staticmethod(error_response)


router = APIRouter(
    route_class=WorkspaceRoute,
    prefix="/api/v1/files",
    tags=["Workspace"],
    responses=_errors(400, 401, 404, 503),
)


class Uploaded(BaseModel):
    success: Literal[True] = True
    path: str
    filename: str
    size: int
    sha256: str


class Item(BaseModel):
    name: str
    is_dir: bool
    size: int
    modified_at: float
    path: str


class Listing(BaseModel):
    success: Literal[True] = True
    base: str
    items: list[Item]
    next_cursor: str | None = None


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "filename": {"type": "string", "description": "Overrides the uploaded name."},
                        "dir": {"type": "string", "description": "Folder under the root; absent: the root."},
                    },
                }
            }
        },
    }
}


@router.post(
    "/upload",
    response_model=Uploaded,
    openapi_extra=_UPLOAD_BODY,
    summary="Upload a file into a folder",
    description="Streams the file into storage; a file already at the path is replaced atomically.",
    responses=_errors(408, 409, 413, 507),
)
async def upload(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    def check(part: FilePart, fields_so_far: dict[str, str]) -> None:
        folder_path(fields_so_far.get("dir"), param="dir")  # refuse before the body when we can
        if "filename" in fields_so_far:
            sanitize_filename(fields_so_far["filename"])

    async def store(fields: dict[str, str], upload: FilePart, staged: StagedBlob) -> ObjectRecord:
        name = sanitize_filename(fields.get("filename") or upload.filename)
        return await Workspace(services.objects, principal.tenant).put(
            staged,
            folder=folder_path(fields.get("dir"), param="dir"),
            name=name,
            mime_type=upload.mime_type(name),
        )

    record = await upload_form(request, services, check=check, store=store)
    return json_response(
        {
            "success": True,
            "path": record.key,
            "filename": record.filename,
            "size": record.bytes,
            "sha256": record.sha256,
        }
    )


@router.get(
    "",
    response_model=Listing,
    summary="List a folder",
    description="Items in the byte order of their paths (a folder's path counted with its trailing '/'). "
    "With more than `limit` items, `next_cursor` continues the listing; it is absent on the last page.",
)
async def list_folder(
    services: ServicesDep,
    principal: PrincipalDep,
    path: Annotated[
        str | None, Query(description="A folder under the root; absent or '.': the root.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = MAX_LIST_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="`next_cursor` of the last page.")
    ] = None,
) -> Response:
    folder = folder_path(path, param="path")
    listing = await Workspace(services.objects, principal.tenant).list(folder, limit=limit, cursor=cursor)
    body: dict[str, Any] = {"success": True, "base": listing.base, "items": listing.items}
    if listing.next_cursor is not None:
        body["next_cursor"] = listing.next_cursor
    return json_response(body)


_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"*/*": {}, "application/zip": {}},
        "description": "A file's bytes, or a folder as a zip (stored entries under `user_upload/`).",
    },
    206: {"description": "One byte range of a file (Range: bytes=a-b)."},
    304: {"description": "If-None-Match matched the file's ETag (its sha256)."},
    416: {"description": "Range not satisfiable."},
    **_errors(413),
}


@router.get(
    "/download",
    summary="Download a file, or a folder as a zip",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
)
@router.head(
    "/download",
    summary="A download's headers",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
)
async def download(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    path: Annotated[str, Query(description="A file or a folder; '.' is the root.")],
) -> Response:
    target = folder_path(path, param="path")
    workspace = Workspace(services.objects, principal.tenant)
    if (record := await workspace.find_file(target)) is not None:
        return await object_download(request, services.objects, record)
    entries = await workspace.zip_entries(target)
    name = (target.rsplit("/", 1)[-1] if target else "workspace") + ".zip"
    headers = {
        **DOWNLOAD_HEADERS,
        "Accept-Ranges": "none",
        "Content-Length": str(archive_size(entries)),
        "Content-Disposition": content_disposition(name),
    }
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/zip")
    return StreamingResponse(stream_archive(entries), headers=headers, media_type="application/zip")


FACE = Face(router, cors_response_headers=DOWNLOAD_HEADERS_READ)
