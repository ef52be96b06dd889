"""HTTP pieces shared by the faces that append request bodies to upload sessions."""

from __future__ import annotations

import re

from starlette.requests import Request

from ..core.errors import InvalidInput
from ..core.uploads import AppendResult
from .deps import Services
from .http import body_chunks, declared_length, header_int

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$", re.ASCII)


def offset_headers(offset: int) -> dict[str, str]:
    return {"Upload-Offset": str(offset), "Cache-Control": "no-store"}


def requested_offset(request: Request, size: int) -> int | None:
    """Where the client says its bytes go: ``Upload-Offset: N`` or ``Content-Range: bytes a-b/total``."""
    if (offset := header_int(request, "Upload-Offset")) is not None:
        return offset
    if (raw := request.headers.get("content-range")) is not None:
        match = _CONTENT_RANGE.fullmatch(raw.strip())
        if match is None or int(match[2]) < int(match[1]) or match[3] not in ("*", str(size)):
            raise InvalidInput(
                f"Content-Range must be 'bytes first-last/{size}' for this upload.", param="Content-Range"
            )
        length = declared_length(request)
        if length is not None and length != int(match[2]) - int(match[1]) + 1:
            raise InvalidInput("Content-Range does not match Content-Length.", param="Content-Range")
        return int(match[1])
    return None


async def append_body(
    request: Request, services: Services, tenant: str, bucket: str | None, upload_id: str
) -> AppendResult:
    """Append the request body to an upload session where the client says it goes."""
    session, _ = await services.uploads.get(tenant, bucket, upload_id)
    return await services.uploads.append(
        tenant,
        bucket,
        upload_id,
        body_chunks(request, services.settings.idle_timeout),
        expected_offset=requested_offset(request, session.size),
        length=declared_length(request),
    )
