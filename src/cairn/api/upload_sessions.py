"""HTTP pieces shared by the faces that append request bodies to upload sessions."""

from __future__ import annotations

import re

from starlette.requests import Request

from ..core.errors import InvalidInput
from ..core.uploads import AppendResult, ChunkDigest
from .deps import Services
from .http import body_chunks, declared_length, header_int

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$", re.ASCII)


def offset_headers(offset: int) -> dict[str, str]:
    return {"Upload-Offset": str(offset), "Cache-Control": "no-store"}


def requested_offset(request: Request) -> tuple[int | None, int | None]:
    """Where the client says its bytes go, and the total size it says the upload has, from
    ``Upload-Offset: N`` or ``Content-Range: bytes first-last/total`` (``total`` may be ``*``)."""
    if (offset := header_int(request, "Upload-Offset")) is not None:
        return offset, None
    if (raw := request.headers.get("content-range")) is not None:
        match = _CONTENT_RANGE.fullmatch(raw.strip())
        if match is None or int(match[2]) < int(match[1]):
            raise InvalidInput("Content-Range must be 'bytes first-last/total'.", param="Content-Range")
        length = declared_length(request)
        if length is not None and length != int(match[2]) - int(match[1]) + 1:
            raise InvalidInput("Content-Range does not match Content-Length.", param="Content-Range")
        return int(match[1]), None if match[3] == "*" else int(match[3])
    return None, None


async def append_body(
    request: Request, services: Services, tenant: str, bucket: str | None, upload_id: str
) -> AppendResult:
    """Append the request body to an upload session where the client says it goes."""
    offset, total = requested_offset(request)
    return await append_at(request, services, tenant, bucket, upload_id, offset=offset, total=total)


async def append_at(
    request: Request,
    services: Services,
    tenant: str,
    bucket: str | None,
    upload_id: str,
    *,
    offset: int | None,
    total: int | None = None,
    digest: ChunkDigest | None = None,
) -> AppendResult:
    """Append the request body at ``offset`` (None: wherever the upload stands)."""
    return await services.uploads.append(
        tenant,
        bucket,
        upload_id,
        body_chunks(request, services.settings.limits.idle_timeout),
        expected_offset=offset,
        expected_size=total,
        length=declared_length(request),
        chunk_digest=digest,
    )
