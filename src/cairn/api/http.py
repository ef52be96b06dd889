"""The shared streaming toolkit: request bodies with an idle timeout, ranged and conditional downloads,
and safe ``Content-Disposition``. Status and headers are settled before ``http.response.start``."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator
from email.utils import formatdate
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..core.errors import InvalidInput, RequestTimeout
from ..core.objects import ObjectEngine
from ..core.records import ObjectRecord

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$", re.ASCII)
DOWNLOAD_HEADERS_READ = ("Accept-Ranges", "Content-Disposition", "Content-Range", "ETag")
"""What a browser page may read of a download, beyond the headers CORS always shows."""
_DIGITS = re.compile(r"[0-9]{1,19}")
_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\%]')

# Security headers on every download of user content.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}


def header_int(request: Request, name: str) -> int | None:
    """A non-negative integer header (ASCII digits only: ``str.isdigit`` also accepts '²'), or None."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw.strip()):
        raise InvalidInput(f"{name} must be a non-negative integer.", param=name)
    return int(raw)


def declared_length(request: Request) -> int | None:
    return header_int(request, "Content-Length")


async def body_chunks(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives. Raises ``RequestTimeout`` when no byte came for ``idle_timeout``
    seconds; ``ClientDisconnect`` propagates so callers keep or drop what arrived."""
    stream = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(idle_timeout):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise RequestTimeout(f"No request body data arrived for {idle_timeout:g} seconds.") from exc
        if chunk:
            yield chunk


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``attachment; filename="<ascii fallback>"; filename*=UTF-8''<percent-encoded>`` (RFC 6266)."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = _UNSAFE_ASCII.sub("_", fallback).strip() or "download"
    value = f'{disposition}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range as ``[start, end)``; None to ignore the header (not bytes, several ranges, bad syntax).
    Raises ``_Unsatisfiable`` for a well-formed range outside the object."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:  # no last bytes to send
            raise _Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, end


class _Unsatisfiable(Exception):
    pass


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


async def object_download(request: Request, engine: ObjectEngine, record: ObjectRecord) -> Response:
    """Stream an object with Range, ETag/If-None-Match, If-Range, HEAD and safe attachment headers."""
    etag = f'"{record.sha256}"'
    last_modified = formatdate(record.created_at, usegmt=True)
    headers = {
        **DOWNLOAD_HEADERS,
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": last_modified,
        "Content-Disposition": content_disposition(record.filename),
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)

    start, end, status = 0, record.bytes, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header is not None and (if_range is None or if_range.strip() in (etag, last_modified)):
        try:
            byte_range = _parse_range(range_header, record.bytes)
        except _Unsatisfiable:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{record.bytes}"})
        if byte_range is not None:
            start, end = byte_range
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{record.bytes}"
    headers["Content-Length"] = str(end - start)

    if request.method == "HEAD" or start == end:
        return Response(status_code=status, headers=headers, media_type=record.mime_type)
    chunks = engine.read(record, start, end)
    first = await chunks.__anext__()  # opens the blob now, so a missing blob is still a clean error
    return StreamingResponse(
        _prepend(first, chunks), status_code=status, headers=headers, media_type=record.mime_type
    )


async def _prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()
