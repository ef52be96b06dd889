"""The Buckets API where Llama Stack's upload-session document puts it, under ``/v1/files``, beside the
OpenAI Files API that owns that path: the endpoints of ``/v1/buckets`` (``api.buckets``), at the paths
OpenAI's routes leave free. ``POST /v1/files`` with a body declared as JSON starts an upload session (a
file upload is multipart); a first segment that is a bucket name is a bucket, since no bucket name starts
as file ids do (``keys.OBJECT_ID_PREFIX``); any other segment is left to OpenAI's routes, as a file id.
``GET /v1/files`` stays OpenAI's list of files, so the buckets are listed at ``/v1/buckets`` only."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Scope

from ..core.keys import BUCKET_PATTERN
from . import buckets
from .faces import Face
from .front_door import FrontDoorRoute, is_json


class BucketName(Convertor[str]):
    regex = BUCKET_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("bucket", BucketName())


class JsonBodyRoute(FrontDoorRoute):
    """Takes a request only if its body is declared as JSON; any other goes on to the next route of the
    same path (at ``POST /v1/files``: OpenAI's multipart upload)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.NONE or is_json(Headers(scope=scope).get("content-type", "")):
            return match, child_scope
        return Match.NONE, {}


router = APIRouter(route_class=FrontDoorRoute, prefix="/v1/files")
router.add_api_route("", buckets.create_upload, methods=["POST"], route_class_override=JsonBodyRoute)
router.add_api_route("/session:{upload_id}", buckets.append, methods=["POST"])
router.add_api_route("/session:{upload_id}", buckets.get_upload, methods=["GET"])
router.add_api_route("/{bucket:bucket}", buckets.list_objects, methods=["GET"])
router.add_api_route("/{bucket:bucket}/{key:path}", buckets.get_object, methods=["GET"])
router.add_api_route("/{bucket:bucket}/{key:path}", buckets.delete_object, methods=["DELETE"])

FACE = Face(
    router,
    in_openapi=False,
    cors_request_headers=buckets.FACE.cors_request_headers,
    cors_response_headers=buckets.FACE.cors_response_headers,
)
