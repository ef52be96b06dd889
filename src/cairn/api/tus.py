"""tus 1.0.0 at ``/v1/tus/``: the upload session engine with tus headers on the outside.

Extensions: creation, creation-with-upload, termination, checksum (sha1, sha256, md5) and expiration;
not creation-defer-length or concatenation. An upload becomes a Files API file (bucket ``files``,
``purpose`` from the metadata, default ``user_data``) or, with ``bucket`` and ``key`` in the metadata,
the object at that key. Responses that see the upload complete name the object in ``Cairn-File-Id``
and ``Cairn-File-Url``. URLs are relative unless ``CAIRN_PUBLIC_URL`` is set or a trusted proxy says
how clients reach Cairn (see ``public_base``)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import mimetypes
import re
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response

from ..core.errors import CairnError, ChecksumMismatch, InvalidInput, TooLarge
from ..core.files import BUCKET as FILES_BUCKET
from ..core.files import UPLOAD_PURPOSES
from ..core.keys import clean_mime_type, sanitize_filename, validate_bucket, validate_key
from ..core.ratelimit import RouteClass
from ..core.records import UploadSession
from ..core.uploads import AppendResult, ChunkDigest
from ..settings import Settings
from .deps import PrincipalDep, Services, ServicesDep
from .faces import Face
from .front_door import FrontDoorRoute
from .http import declared_length, header_int
from .ratelimit import charged_as
from .upload_sessions import append_at, offset_headers

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
DIGEST_SIZES = {"sha1": 20, "sha256": 32, "md5": 16}  # tus names, which are also hashlib's
CHECKSUM_MISMATCH_STATUS = 460
OFFSET_STREAM = "application/offset+octet-stream"
DEFAULT_PURPOSE = "user_data"
MAX_METADATA_CHARS = 4096  # kept verbatim with the upload, to echo on HEAD

_METADATA_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # printable ASCII but space and comma
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?", re.ASCII)

_ERROR_MEANINGS = {
    400: "A missing or malformed tus header, or unusable Upload-Metadata.",
    401: "Missing, malformed, unknown or revoked API key.",
    404: "No such upload for this tenant: never created, terminated or expired.",
    409: "Upload-Offset is not the upload's offset (the answer carries the current one), or it is complete.",
    412: "Tus-Resumable is missing or not 1.0.0 (the answer carries Tus-Version).",
    413: "Larger than Tus-Max-Size, or more bytes than remain of Upload-Length.",
    415: "A body whose Content-Type is not application/offset+octet-stream.",
    460: "The body does not match its Upload-Checksum; nothing of it was kept.",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors of a tus route (plain text, never the OpenAI envelope); every route
    but discovery can answer 400, 401 and 412."""
    return {
        status: {"description": _ERROR_MEANINGS[status], "content": {"text/plain": {}}}
        for status in (400, 401, 412, *statuses)
    }


def error_response(status: int, message: str, *, code: str, param: str | None = None) -> Response:
    """Errors under ``/v1/tus`` as tus servers send them: plain text with ``Tus-Resumable``; 460 for a
    chunk that does not match its ``Upload-Checksum``; ``Tus-Version`` with a 412."""
    if code == ChecksumMismatch.code:
        status = CHECKSUM_MISMATCH_STATUS
    headers = {"Tus-Resumable": TUS_VERSION, "X-Content-Type-Options": "nosniff"}
    if status == 412:
        headers["Tus-Version"] = TUS_VERSION
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return PlainTextResponse(f"{message}\n", status_code=status, headers=headers)


class TusRoute(FrontDoorRoute):
    render_error = staticmethod(error_response)

    def check_head(self, request: Request) -> None:
        """Every request but discovery names the protocol version, checked before the key."""
        if request.method != "OPTIONS" and request.headers.get("tus-resumable", "").strip() != TUS_VERSION:
            raise HTTPException(
                412, f"Send 'Tus-Resumable: {TUS_VERSION}': it is the only tus version spoken here."
            )


router = APIRouter(route_class=TusRoute, prefix="/v1/tus", tags=["tus"])


# --- Upload-Metadata ------------------------------------------------------------------------------


def parse_metadata(raw: str | None) -> dict[str, bytes]:
    """``Upload-Metadata: key base64,key2 base64,key3``: unique keys, standard base64 values (which may
    be left out)."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_METADATA_CHARS:
        raise InvalidInput(
            f"Upload-Metadata may be at most {MAX_METADATA_CHARS} characters.", param="Upload-Metadata"
        )
    pairs: dict[str, bytes] = {}
    for item in raw.split(","):
        key, *value = item.strip().split(" ")
        if not _METADATA_KEY.fullmatch(key) or len(value) > 1:
            raise InvalidInput(
                "Upload-Metadata must be comma-separated 'key base64value' pairs.", param="Upload-Metadata"
            )
        if key in pairs:
            raise InvalidInput(f"Upload-Metadata names '{key[:80]}' twice.", param="Upload-Metadata")
        try:
            pairs[key] = base64.b64decode(value[0] if value else "", validate=True)
        except binascii.Error as exc:
            raise InvalidInput(
                f"The Upload-Metadata value of '{key[:80]}' is not base64.", param="Upload-Metadata"
            ) from exc
    return pairs


def _text(metadata: dict[str, bytes], *names: str) -> str | None:
    """The first of ``names`` present in the metadata, as text."""
    for name in names:
        if name in metadata:
            try:
                return metadata[name].decode()
            except UnicodeDecodeError as exc:
                raise InvalidInput(
                    f"The Upload-Metadata value of '{name}' is not UTF-8.", param="Upload-Metadata"
                ) from exc
    return None


@dataclass(frozen=True, slots=True)
class _Target:
    bucket: str
    key: str | None  # None: a Files API file, keyed by its id
    filename: str | None
    mime_type: str
    purpose: str | None


def _target(metadata: dict[str, bytes]) -> _Target:
    """Where the upload lands and what it is called, from the metadata tus clients send (tus-js-client:
    ``filename``, ``filetype``; Uppy also ``name``, ``type``)."""
    name = _text(metadata, "filename", "name")
    filename = sanitize_filename(name) if name else None
    mime_type = (
        clean_mime_type(_text(metadata, "filetype", "type", "content-type"))
        or (filename and mimetypes.guess_type(filename)[0])
        or "application/octet-stream"
    )
    bucket, key, purpose = (_text(metadata, field) for field in ("bucket", "key", "purpose"))
    if bucket is None and key is None:
        if purpose is not None and purpose not in UPLOAD_PURPOSES:
            raise InvalidInput(
                f"Invalid purpose '{purpose[:80]}'. Expected one of: {', '.join(UPLOAD_PURPOSES)}.",
                param="purpose",
            )
        return _Target(FILES_BUCKET, None, filename, mime_type, purpose or DEFAULT_PURPOSE)
    if bucket is None or key is None:
        raise InvalidInput(
            "Upload-Metadata needs both 'bucket' and 'key', or neither.", param="Upload-Metadata"
        )
    if purpose is not None:
        raise InvalidInput(
            "'purpose' is for Files API uploads, not with 'bucket' and 'key'.", param="purpose"
        )
    return _Target(validate_bucket(bucket), validate_key(key), filename, mime_type, None)


def _echo_metadata(session: UploadSession) -> str:
    """The creation metadata as the client sent it; for an upload made through another face, what
    Cairn knows of it, in ``Upload-Metadata`` form."""
    if session.client_metadata:
        return session.client_metadata
    fields = {"filename": session.filename, "filetype": session.mime_type}
    if session.key:
        fields.update(bucket=session.bucket, key=session.key)
    else:
        fields["purpose"] = session.purpose
    return ",".join(f"{name} {base64.b64encode(value.encode()).decode()}" for name, value in fields.items())


# --- URLs behind proxies --------------------------------------------------------------------------


def public_base(request: Request, settings: Settings) -> str:
    """The base of absolute URLs: ``CAIRN_PUBLIC_URL``; else the scheme and host that a trusted proxy
    forwarded; else ``""``, so that URLs stay relative and right behind any proxy that keeps paths."""
    if settings.server.public_url:
        return settings.server.public_url
    if not _from_trusted_proxy(request, settings):
        return ""
    proto, host = _forwarded(request)
    if proto is None and host is None:
        return ""
    host = host or request.headers.get("host", "")
    return f"{proto or request.url.scheme}://{host}" if _HOST.fullmatch(host) else ""


def _from_trusted_proxy(request: Request, settings: Settings) -> bool:
    if request.client is None or not settings.server.trusted_proxies:
        return False
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    return any(peer in network for network in settings.server.trusted_proxies)


def _forwarded(request: Request) -> tuple[str | None, str | None]:
    """The scheme and host the client used: from the first (client-side) element of ``Forwarded``
    (RFC 7239), else the first values of ``X-Forwarded-Proto`` / ``X-Forwarded-Host``. Anything that
    is not http(s) or a host[:port] is dropped."""
    proto = host = None
    if (forwarded := request.headers.get("forwarded")) is not None:
        for pair in forwarded.split(",", 1)[0].split(";"):
            name, _, value = pair.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "proto":
                proto = value
            elif name == "host":
                host = value
    proto = proto or _first(request.headers.get("x-forwarded-proto"))
    host = host or _first(request.headers.get("x-forwarded-host"))
    proto = proto.lower() if proto and proto.lower() in ("http", "https") else None
    return proto, (host if host and _HOST.fullmatch(host) else None)


def _first(value: str | None) -> str | None:
    return (value.split(",", 1)[0].strip() or None) if value else None


# --- headers --------------------------------------------------------------------------------------


def _state_headers(
    request: Request, services: Services, session: UploadSession, offset: int, object_id: str | None
) -> dict[str, str]:
    headers = {
        "Tus-Resumable": TUS_VERSION,
        **offset_headers(offset),
        "Upload-Expires": formatdate(session.expires_at, usegmt=True),
    }
    if object_id is not None:
        headers["Cairn-File-Id"] = object_id
        headers["Cairn-File-Url"] = f"{public_base(request, services.settings)}/v1/files/{object_id}/content"
    return headers


def _result_headers(request: Request, services: Services, result: AppendResult) -> dict[str, str]:
    object_id = None if result.completed is None else result.completed.id
    return _state_headers(request, services, result.session, result.offset, object_id)


def _require_offset_stream(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != OFFSET_STREAM:
        raise HTTPException(415, f"Upload bytes must be sent as Content-Type: {OFFSET_STREAM}.")


def _chunk_digest(request: Request) -> ChunkDigest | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` for this request's body."""
    raw = request.headers.get("upload-checksum")
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in DIGEST_SIZES:
        raise InvalidInput(
            f"Unsupported checksum algorithm '{algorithm[:40]}'; use one of {', '.join(DIGEST_SIZES)}.",
            param="Upload-Checksum",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != DIGEST_SIZES[algorithm]:
        raise InvalidInput(
            f"Upload-Checksum must be '{algorithm} <base64 of the {DIGEST_SIZES[algorithm]}-byte digest>'.",
            param="Upload-Checksum",
        )
    return ChunkDigest(algorithm, digest)


def _has_body(request: Request) -> bool:
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    return chunked or (declared_length(request) or 0) > 0


# --- routes ---------------------------------------------------------------------------------------


_DISCOVERY: dict[str, Any] = {
    "status_code": 204,
    "response_class": Response,
    "summary": "tus discovery",
    "description": "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm. No API key needed.",
}


@router.options("/", **_DISCOVERY)
@router.options("", operation_id="discover_v1_tus_unslashed", **_DISCOVERY)
async def discover(services: ServicesDep) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(services.settings.limits.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(DIGEST_SIZES),
        },
    )


_CREATE: dict[str, Any] = {
    "status_code": 201,
    "response_class": Response,
    "summary": "Create an upload",
    "description": "`Upload-Length` (required), `Upload-Metadata` (`filename`, `filetype`, and `bucket` + "
    "`key` or `purpose`). A body sent as application/offset+octet-stream is its first bytes. 201 with "
    "`Location`.",
    "responses": _errors(413, 415, 460),
}


@router.post("/", **_CREATE)
@router.post("", operation_id="create_upload_v1_tus_unslashed", **_CREATE)
async def create_upload(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    for unsupported in ("Upload-Defer-Length", "Upload-Concat"):
        if unsupported in request.headers:
            raise InvalidInput(f"{unsupported} is not supported: send Upload-Length.", param=unsupported)
    size = header_int(request, "Upload-Length")
    if size is None:
        raise InvalidInput("Upload-Length is required.", param="Upload-Length")
    target = _target(parse_metadata(request.headers.get("upload-metadata")))
    with_body = _has_body(request)
    digest = None
    if with_body:
        _require_offset_stream(request)
        digest = _chunk_digest(request)
        length = declared_length(request)
        if length is not None and length > size:
            raise TooLarge(f"The body has {length} bytes, but Upload-Length is {size}.")
    result = await services.uploads.create(
        tenant=principal.tenant,
        bucket=target.bucket,
        key=target.key,
        mime_type=target.mime_type,
        size=size,
        filename=target.filename,
        purpose=target.purpose,
        client_metadata=request.headers.get("upload-metadata"),
    )
    upload_id = result.session.id
    if with_body and result.completed is None:
        try:
            result = await append_at(
                request, services, principal.tenant, None, upload_id, offset=0, digest=digest
            )
        except BaseException:  # the client never learns the upload's URL: leave nothing behind
            with anyio.CancelScope(shield=True), contextlib.suppress(CairnError):
                await services.uploads.cancel(principal.tenant, None, upload_id)
            raise
    location = f"{public_base(request, services.settings)}/v1/tus/{upload_id}"
    return Response(
        status_code=201, headers={"Location": location, **_result_headers(request, services, result)}
    )


@router.head(
    "/{upload_id}",
    status_code=200,
    response_class=Response,
    summary="An upload's offset",
    description="`Upload-Offset`, `Upload-Length`, `Upload-Metadata`, `Upload-Expires`; once complete, "
    "`Cairn-File-Id` and `Cairn-File-Url`.",
    responses=_errors(404),
)
async def upload_status(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    session, offset = await services.uploads.get(principal.tenant, None, upload_id)
    headers = _state_headers(request, services, session, offset, session.object_id)
    headers.update({"Upload-Length": str(session.size), "Upload-Metadata": _echo_metadata(session)})
    return Response(status_code=200, headers=headers)


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    summary="Append bytes",
    description="Body as application/offset+octet-stream at `Upload-Offset`, optional `Upload-Checksum`. "
    "204 with the new `Upload-Offset`; the completing append also names the object.",
    responses=_errors(404, 409, 413, 415, 460),
)
@charged_as(None)
async def append(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    _require_offset_stream(request)
    offset = header_int(request, "Upload-Offset")
    if offset is None:
        raise InvalidInput("Upload-Offset is required.", param="Upload-Offset")
    digest = _chunk_digest(request)
    result = await append_at(
        request, services, principal.tenant, None, upload_id, offset=offset, digest=digest
    )
    return Response(status_code=204, headers=_result_headers(request, services, result))


@router.delete(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    summary="Terminate an upload",
    description="Drops the staged bytes; a completed upload's object stays (delete it through /v1/files).",
    responses=_errors(404),
)
async def terminate(upload_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    await services.uploads.cancel(principal.tenant, None, upload_id)
    return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})


def _charge_of_override(override: str) -> RouteClass | None:
    """A POST is charged as the method it stands for (``X-HTTP-Method-Override``): only this route
    honours the header, so no other route can swap budgets with it."""
    return {"DELETE": RouteClass.DELETIONS, "PATCH": None}.get(override.strip().upper(), RouteClass.UPLOADS)


@router.post(
    "/{upload_id}",
    response_class=Response,
    summary="PATCH or DELETE through X-HTTP-Method-Override",
    description="For clients that cannot send PATCH or DELETE; answers as those do.",
    responses=_errors(404, 409, 413, 415, 460),
)
@charged_as(_charge_of_override)
async def method_override(
    upload_id: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    method = request.headers.get("x-http-method-override", "").strip().upper()
    if method == "PATCH":
        return await append(upload_id, request, services, principal)
    if method == "DELETE":
        return await terminate(upload_id, services, principal)
    raise HTTPException(
        405,
        "POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE.",
        {"Allow": "HEAD, PATCH, DELETE"},
    )


FACE = Face(
    router,
    cors_request_headers=(
        "Tus-Resumable",
        "Upload-Length",
        "Upload-Offset",
        "Upload-Metadata",
        "Upload-Checksum",
        "Upload-Defer-Length",
        "Upload-Concat",
        "X-HTTP-Method-Override",
    ),
    cors_response_headers=(
        "Location",
        "Tus-Resumable",
        "Tus-Version",
        "Tus-Extension",
        "Tus-Max-Size",
        "Tus-Checksum-Algorithm",
        "Upload-Offset",
        "Upload-Length",
        "Upload-Metadata",
        "Upload-Expires",
        "Cairn-File-Id",
        "Cairn-File-Url",
    ),
)
